#!/usr/bin/env bash
# The King James Bible (Debian's bible-kjv-text, read with its `bible` program) as one verse per line:
# BOOK<TAB>CHAPTER<TAB>VERSE<TAB>TEXT on stdout. `bible` prints "Book N" headers, then verses as "  N text" wrapped at
# 80 columns. Shared by kjv_text.sh (the quick start's corpus) and kjv_chats.sh (its fine-tuning conversations).
set -euo pipefail
command -v bible > /dev/null || { echo "the bible program is missing (scripts/setup.sh installs bible-kjv)" >&2; exit 1; }
bible "Gen1:1-Rev22:21" | awk '
  function flush() { if (text != "") printf "%s\t%s\t%s\t%s\n", book, chapter, verse, text; text = "" }
  /^[0-9]* ?[A-Z][a-z]+( of [A-Za-z]+)? [0-9]+$/ { flush(); chapter = $NF; $NF = ""; sub(/ $/, ""); book = $0; next }
  /^  [0-9]+ / { flush(); verse = $1; sub(/^  [0-9]+ /, ""); text = $0; next }
  /^$/ { next }
  { text = text " " $0 }
  END { flush() }'
