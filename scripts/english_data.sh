# Sourced by the demonstrations that pre-train on the English corpus (scripts/sft_demo.sh, qlora_demo.sh,
# quant_table.sh): english_data OUT BIN makes, where missing, OUT/corpus (Debian's English text through
# bench/tokenizer_corpus.mjs, 60 MB, every 25th MB held out), OUT/tok8k.json (an 8,192-token BPE trained on it) and
# OUT/data (the training text tokenized into shards; the report in OUT/prepare-report.json).
english_data() {
  local out=$1 bin=$2
  [ -s "$out/corpus/train_en.txt" ] || node bench/tokenizer_corpus.mjs "$out/corpus" 60 0
  [ -s "$out/tok8k.json" ] || $bin tokenizer train --input "$out/corpus/train_en.txt" --vocab-size 8192 -o "$out/tok8k.json"
  [ -s "$out/data/data.json" ] || $bin prepare --input "$out/corpus/train_en.txt" --tokenizer "$out/tok8k.json" -o "$out/data" --json > "$out/prepare-report.json"
}
