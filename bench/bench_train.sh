#!/usr/bin/env bash
# Training speed, side by side: the same GPT-2-style model (vocab 8192, context 256, 6 layers, 6 heads, d_model 384,
# batch 8, fp32, AdamW, clipping) trained by PyTorch 1.13 (Debian, OpenBLAS, 2 threads) and by `llmforge pretrain`
# (2 threads), in one run. Prints tokens/s, achieved GFLOP/s (6·N per token for the weights + 12·L·T·d for attention)
# and peak memory of both, and the ratio. Run alone on an idle machine.
# Usage: bench/bench_train.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
work=bench/work/train
mkdir -p "$work"
bin=build/llmforge
[ -x "$bin" ] || { echo "build llmforge first" >&2; exit 2; }
# data with an 8192-token vocabulary (content does not change the speed): Debian's fortunes
if [ ! -s "$work/data/data.json" ]; then
  scripts/fortunes_text.sh "$work/text.txt"
  $bin tokenizer train --input "$work/text.txt" --vocab-size 8192 -o "$work/tok.json" -q >/dev/null
  $bin prepare --input "$work/text.txt" --tokenizer "$work/tok.json" -o "$work/data" -q >/dev/null
fi
flops_per_token=$(python3 -c "L,d,V,T=6,384,8192,256;print(6*(12*L*d*d+V*d)+12*L*T*d)")
# PyTorch at its best: OpenBLAS with the core type this environment sets, and with its AVX-512 (SkylakeX) kernels
t1=$(OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_train.py --steps "$steps")
t2=$(OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_train.py --steps "$steps")
torch_json=$(python3 -c "import json,sys;a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]);print(json.dumps(a if a['tokens_per_s']>=b['tokens_per_s'] else b))" "$t1" "$t2")
echo "PyTorch: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} $(echo "$t1" | cut -c1-40)...; SkylakeX $(echo "$t2" | cut -c1-40)..." >&2
rm -rf "$work/run"
/usr/bin/time -f "%M" -o "$work/rss.txt" $bin pretrain --preset gpt2-tiny --layers 6 --d-model 384 --heads 6 --d-ff 1536 --data "$work/data" \
  -o "$work/run" --steps $((steps + 3)) --batch-size 8 --seq-len 256 --eval-every 0 --save-every 0 --warmup 1 -t 2 -q >/dev/null
ours_tps=$(python3 -c "
import json,statistics
m=[json.loads(l) for l in open('$work/run/metrics.jsonl')][3:]
print(len(m)*8*256/sum(8*256/x['tokens_per_s'] for x in m))")
ours_rss=$(python3 -c "print($(cat "$work/rss.txt")/1024)")
python3 - "$torch_json" "$ours_tps" "$ours_rss" "$flops_per_token" <<'PY'
import json, sys
t = json.loads(sys.argv[1]); o, rss, fpt = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"{'':10s} {'tokens/s':>10s} {'GFLOP/s':>9s} {'peak MiB':>9s}")
print(f"{'PyTorch':10s} {t['tokens_per_s']:10.0f} {t['gflops']:9.1f} {t['peak_rss_mib']:9.0f}")
print(f"{'llmforge':10s} {o:10.0f} {o*fpt/1e9:9.1f} {rss:9.0f}")
print(f"ratio llmforge/PyTorch: {o/t['tokens_per_s']:.2f}x tokens/s, {rss/t['peak_rss_mib']:.2f}x memory  (GEMM ceiling ≈ 210 GFLOP/s on 2 threads)")
PY
