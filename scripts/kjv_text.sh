#!/usr/bin/env bash
# Writes the King James Bible as plain text to OUT: one chapter per paragraph (a document for `llmforge prepare`), one
# verse per line, without the verse numbers. Used by the quick start (scripts/run.sh).  Usage: scripts/kjv_text.sh OUT
set -euo pipefail
out=$1
"$(dirname "$0")/kjv_verses.sh" | awk -F'\t' '{ key = $1 " " $2; if (NR > 1 && key != last) print ""; last = key; print $4 }' > "$out"
[ -s "$out" ] || { echo "no text came out of bible-kjv" >&2; exit 1; }
