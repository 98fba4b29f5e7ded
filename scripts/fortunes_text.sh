#!/usr/bin/env bash
# Writes Debian's English fortunes (package `fortunes`) as plain text to OUT, one fortune per paragraph.
# Used by the quick start and the training benchmarks.  Usage: scripts/fortunes_text.sh OUT
set -euo pipefail
out=$1
for f in /usr/share/games/fortunes/*; do
  case "$f" in *.dat|*.u8|*/chinese|*/song100|*/tang300) continue ;; esac
  [ -f "$f" ] && sed 's/^%$//' "$f"
done > "$out"
[ -s "$out" ] || { echo "no fortunes under /usr/share/games/fortunes (run scripts/setup.sh)" >&2; exit 1; }
