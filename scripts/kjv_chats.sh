#!/usr/bin/env bash
# Conversations for a first supervised fine-tuning of the quick start's model: "Recite Genesis 1:3." answered with the
# verse, from Debian's bible-kjv (every EVERY-th verse; default 7), one {"messages": [...]} per line (OpenAI's form,
# what `llmforge sft` reads).  Usage: scripts/kjv_chats.sh OUT [EVERY]
set -euo pipefail
out=$1
every=${2:-7}
"$(dirname "$0")/kjv_verses.sh" | awk -F'\t' -v every="$every" '
  (NR - 1) % every == 0 {
    text = $4; gsub(/\\/, "\\\\", text); gsub(/"/, "\\\"", text)
    printf "{\"messages\": [{\"role\": \"user\", \"content\": \"Recite %s %s:%s.\"}, {\"role\": \"assistant\", \"content\": \"%s\"}]}\n", $1, $2, $3, text
  }' > "$out"
[ -s "$out" ] || { echo "no conversations came out of bible-kjv" >&2; exit 1; }
