#!/usr/bin/env bash
# Tokenizer speed, side by side: npm tiktoken (the anchor) and llmforge encode the same ≥10 MB of real text with the
# same vocabulary (cl100k_base) in one run, single-threaded and with 2 threads; prints throughput and the ratio, and
# checks both produce the same number of tokens. Run alone on an idle machine.
# Usage: bench/bench_tokenizer.sh [REPEATS]   (needs scripts/setup.sh and a build in build/)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
work=bench/work
mkdir -p "$work"
bin=build/llmforge
[ -x "$bin" ] || { echo "build llmforge first (cmake --build build)" >&2; exit 2; }

# The text: Debian documentation (README/NEWS-style .txt/.md), English fortunes, and classical Chinese poems, ~12 MB.
text=$work/tokenizer_bench.txt
if [ ! -s "$text" ]; then
  { (set +o pipefail; find /usr/share/doc -type f \( -name '*.txt' -o -name '*.md' \) | sort | xargs cat 2>/dev/null | head -c 7500000)
    cat /usr/share/games/fortunes/*.u8 2>/dev/null
    node -e '
      const fs=require("fs"),p=require("path");const d="tests/npm/node_modules/chinese-poetry/dist/quantangshi";
      let out="";for(const f of fs.readdirSync(d).sort()){if(!f.endsWith(".json"))continue;
        for(const x of JSON.parse(fs.readFileSync(p.join(d,f),"utf8")))out+=[x.title,x.author,...(x.paragraphs||[])].join("\n")+"\n\n";
        if(out.length>700000)break;}process.stdout.write(out);'
  } > "$text.tmp"
  # keep valid UTF-8 only, so both sides see the same characters
  iconv -f UTF-8 -t UTF-8 -c "$text.tmp" > "$text" && rm -f "$text.tmp"
fi
ranks=$work/cl100k_base.tiktoken
if [ ! -s "$ranks" ]; then
  node tests/tokenizer/tiktoken_ranks.mjs cl100k_base "$ranks"
fi
bytes=$(stat -c %s "$text")
echo "text: $text ($bytes bytes); vocabulary cl100k_base; $(nproc) cores; best of $reps" >&2

best() {  # best mb_per_s of $reps runs of a command printing the JSON line; echoes "mbps tokens"
  local b=0 tok=0
  for _ in $(seq "$reps"); do
    local line; line=$("$@" | tail -1)
    local m; m=$(echo "$line" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["mb_per_s"],d["tokens"])')
    tok=${m#* }; m=${m% *}
    b=$(python3 -c "print(max($b,$m))")
  done
  echo "$b $tok"
}
printf "%-10s %14s %14s %8s %10s\n" threads "tiktoken MB/s" "llmforge MB/s" ratio tokens
for t in 1 2; do
  read -r a at < <(best node bench/tiktoken_encode.mjs "$text" "$t")
  read -r o ot < <(best "$bin" tokenize --tokenizer "$ranks" -f "$text" --count --json -t "$t")
  [ "$at" = "$ot" ] || { echo "token counts differ: tiktoken $at, llmforge $ot" >&2; exit 1; }
  printf "%-10s %14.2f %14.2f %7.2fx %10s\n" "$t" "$a" "$o" "$(python3 -c "print($o/$a)")" "$ot"
done
