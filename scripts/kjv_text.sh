#!/usr/bin/env bash
# Writes the King James Bible (Debian's bible-kjv-text, read with its `bible` program) as plain text to OUT: one
# chapter per paragraph (a document for `llmforge prepare`), one verse per line, without the verse numbers.
# Used by the quick start (scripts/run.sh).  Usage: scripts/kjv_text.sh OUT
set -euo pipefail
out=$1
command -v bible > /dev/null || { echo "the bible program is missing (scripts/setup.sh installs bible-kjv)" >&2; exit 1; }
# `bible` prints "Book N" headers, then verses as "  N text" wrapped at 80 columns
bible "Gen1:1-Rev22:21" | awk '
  /^[0-9]* ?[A-Z][a-z]+( of [A-Za-z]+)? [0-9]+$/ { if (verse != "") print verse; verse = ""; if (started) print ""; started = 1; next }
  /^  [0-9]+ / { if (verse != "") print verse; sub(/^  [0-9]+ /, ""); verse = $0; next }
  /^$/ { next }
  { verse = verse " " $0 }
  END { if (verse != "") print verse }' > "$out"
[ -s "$out" ] || { echo "no text came out of bible-kjv" >&2; exit 1; }
