#!/usr/bin/env bash
# Training speed, side by side: the same GPT-2-style model (vocab 8192, context 256, 6 layers, 6 heads, d_model 384,
# batch 8, AdamW, clipping) trained by PyTorch 1.13 (Debian, OpenBLAS, 2 threads, fp32) and by `llmforge pretrain`
# (2 threads) in fp32 and with bf16 matrix products (f32 master weights), in one run, each the better of two
# interleaved runs. Prints tokens/s, achieved GFLOP/s
# (6·N per token for the weights + 12·L·T·d for attention) and peak memory of each, and the ratios. Run alone on an
# idle machine.
#   bench/bench_train.sh [STEPS]          speed (default 10 measured steps)
#   bench/bench_train.sh --curve [STEPS]  loss curves over STEPS (default 200) steps: llmforge bf16 against fp32 with the
#                                         same seed, beside fp32 with another seed (the run-to-run noise)
set -euo pipefail
cd "$(dirname "$0")/.."
curve=0
if [ "${1:-}" = "--curve" ]; then curve=1; shift; fi
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
model=(--preset gpt2-tiny --layers 6 --d-model 384 --heads 6 --d-ff 1536 --batch-size 8 --seq-len 256 -t 2)

if [ "$curve" = 1 ]; then
  steps=${1:-200}
  for run in "f32 1" "bf16 1" "f32 2"; do
    set -- $run
    rm -rf "$work/curve_$1_$2"
    echo "llmforge pretrain --precision $1 --seed $2: $steps steps" >&2
    $bin pretrain "${model[@]}" --data "$work/data" -o "$work/curve_$1_$2" --steps "$steps" --warmup 20 --lr 1e-3 \
      --eval-every 0 --save-every 0 --precision "$1" --seed "$2" -q >/dev/null
  done
  python3 - "$work" "$steps" <<'PY'
import json, sys
w, steps = sys.argv[1], int(sys.argv[2])
def losses(name): return [json.loads(l)["loss"] for l in open(f"{w}/{name}/metrics.jsonl") if "loss" in json.loads(l)]
a, b, c = losses("curve_f32_1"), losses("curve_bf16_1"), losses("curve_f32_2")
n = min(len(a), len(b), len(c))
tail = max(1, n // 4)
mean = lambda v: sum(v) / len(v)
d_bf = [abs(x - y) for x, y in zip(a[:n], b[:n])]
d_seed = [abs(x - y) for x, y in zip(a[:n], c[:n])]
print(f"steps {n}; loss at steps 1, {n//2}, {n}:")
for name, v in (("fp32 seed 1", a), ("bf16 seed 1", b), ("fp32 seed 2", c)):
    print(f"  {name:12s} {v[0]:.4f} {v[n//2-1]:.4f} {v[n-1]:.4f}   mean of last {tail}: {mean(v[n-tail:n]):.4f}")
print(f"|bf16 − fp32| same seed:   mean {mean(d_bf):.4f}, max {max(d_bf):.4f}, last-{tail} means differ by {abs(mean(a[n-tail:n]) - mean(b[n-tail:n])):.4f}")
print(f"|fp32 − fp32| other seed:  mean {mean(d_seed):.4f}, max {max(d_seed):.4f}, last-{tail} means differ by {abs(mean(a[n-tail:n]) - mean(c[n-tail:n])):.4f}")
print("bf16 curve within run-to-run noise:", "yes" if mean(d_bf) <= mean(d_seed) else "NO")
PY
  exit 0
fi

steps=${1:-10}
flops_per_token=$(python3 -c "L,d,V,T=6,384,8192,256;print(6*(12*L*d*d+V*d)+12*L*T*d)")
ours() {  # precision → "tokens/s peak-MiB" over the steps after 3 warm-up steps
  rm -rf "$work/run"
  /usr/bin/time -f "%M" -o "$work/rss.txt" $bin pretrain "${model[@]}" --data "$work/data" -o "$work/run" --steps $((steps + 3)) \
    --eval-every 0 --save-every 0 --warmup 1 --precision "$1" -q >/dev/null
  python3 -c "
import json
m=[json.loads(l) for l in open('$work/run/metrics.jsonl')][3:]
print(len(m)*8*256/sum(8*256/x['tokens_per_s'] for x in m), $(cat "$work/rss.txt")/1024)"
}
best() { python3 -c "import sys;a,b=sys.argv[1].split(),sys.argv[2].split();print(' '.join(a if float(a[0])>=float(b[0]) else b))" "$1" "$2"; }
# Each contender runs twice, interleaved (the machine's speed drifts over minutes of full load), and keeps its better
# run: PyTorch once with the OpenBLAS core type this environment sets and once with its AVX-512 (SkylakeX) kernels.
t1=$(OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_train.py --steps "$steps")
f1=$(ours f32)
b1=$(ours bf16)
t2=$(OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_train.py --steps "$steps")
b2=$(ours bf16)
f2=$(ours f32)
torch_json=$(python3 -c "import json,sys;a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]);print(json.dumps(a if a['tokens_per_s']>=b['tokens_per_s'] else b))" "$t1" "$t2")
echo "PyTorch: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto} $(echo "$t1" | cut -c1-40)...; SkylakeX $(echo "$t2" | cut -c1-40)..." >&2
echo "llmforge fp32: $f1 / $f2; bf16: $b1 / $b2 (tokens/s, peak MiB)" >&2
f32=$(best "$f1" "$f2")
bf16=$(best "$b1" "$b2")
python3 - "$torch_json" "$f32" "$bf16" "$flops_per_token" <<'PY'
import json, sys
t = json.loads(sys.argv[1]); fpt = float(sys.argv[4])
rows = [("PyTorch fp32", t["tokens_per_s"], t["peak_rss_mib"])]
for name, arg in (("llmforge fp32", sys.argv[2]), ("llmforge bf16", sys.argv[3])):
    tps, rss = map(float, arg.split())
    rows.append((name, tps, rss))
print(f"{'':14s} {'tokens/s':>10s} {'GFLOP/s':>9s} {'peak MiB':>9s} {'vs PyTorch':>11s}")
for name, tps, rss in rows:
    print(f"{name:14s} {tps:10.0f} {tps*fpt/1e9:9.1f} {rss:9.0f} {tps/rows[0][1]:10.2f}x")
print(f"memory llmforge fp32 / PyTorch: {rows[1][2]/rows[0][2]:.2f}x  (OpenBLAS SGEMM ceiling ≈ 210 GFLOP/s on 2 threads)")
PY
