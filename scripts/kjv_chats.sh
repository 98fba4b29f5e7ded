#!/usr/bin/env bash
# Conversations for a first supervised fine-tuning of the quick start's model: "Recite Genesis 1:3." answered with the
# verse, from Debian's bible-kjv (every EVERY-th verse; default 7), one {"messages": [...]} per line (OpenAI's form,
# what `llmforge sft` reads).  Usage: scripts/kjv_chats.sh OUT [EVERY]
set -euo pipefail
out=$1
every=${2:-7}
command -v bible > /dev/null || { echo "the bible program is missing (scripts/setup.sh installs bible-kjv)" >&2; exit 1; }
bible "Gen1:1-Rev22:21" | awk -v every="$every" '
  function flush() {
    if (text == "" || (n++ % every) != 0) return
    gsub(/\\/, "\\\\", text); gsub(/"/, "\\\"", text)
    printf "{\"messages\": [{\"role\": \"user\", \"content\": \"Recite %s %s:%s.\"}, {\"role\": \"assistant\", \"content\": \"%s\"}]}\n", book, chapter, verse, text
  }
  /^[0-9]* ?[A-Z][a-z]+( of [A-Za-z]+)? [0-9]+$/ { flush(); text = ""; chapter = $NF; $NF = ""; sub(/ $/, ""); book = $0; next }
  /^  [0-9]+ / { flush(); verse = $1; sub(/^  [0-9]+ /, ""); text = $0; next }
  /^$/ { next }
  { text = text " " $0 }
  END { flush() }' > "$out"
[ -s "$out" ] || { echo "no conversations came out of bible-kjv" >&2; exit 1; }
