#!/usr/bin/env bash
# llmforge quantize against llama.cpp's llama-quantize: for a TinyLlama-shaped and a GPT-2-shaped random f32 model
# (`llmforge init --preset tinyllama-mini / gpt2-mini`: every row a multiple of 256), every type and mix, without and
# with the same importance matrix (made by llama-imatrix on the model), must give the same tensors — names, types and
# data, byte for byte. `llmforge imatrix` must agree with llama-imatrix and feed llama-quantize; llama.cpp then loads
# and runs our files, and `llmforge perplexity` on them prints llama-perplexity's values — to the digit for Q8_0,
# Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M and Q6_K. Rows that are not whole blocks (llama-tiny) fall back to
# the same types as in llama-quantize.
#
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin tests/anchor/llamacpp_quantize.sh [TYPE...]
#
# llama.cpp is an anchor built outside the project from the public snapshot ggerganov/llama.cpp (c392e50); nothing of
# it enters the project. Not part of the default test suite (CI has no llama.cpp build; the block formats themselves
# are checked in CI against ggml's library from npm, tests/unit/test_quants_ggml.cpp).
set -euo pipefail
cd "$(dirname "$0")/../.."
LBIN=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp\'s build/bin}
BIN=${LLMFORGE_BIN:-build/llmforge}
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 20000 /usr/share/common-licenses/GPL-3 > "$work/text.txt"
status=0
for preset in tinyllama-mini gpt2-mini; do
  "$BIN" init --preset $preset --dtype f32 --seed 5 -o "$work/$preset.gguf" 2>/dev/null
  "$LBIN/llama-imatrix" -m "$work/$preset.gguf" -f "$work/text.txt" -o "$work/$preset.imatrix" -c 128 --chunks 8 -t 2 >"$work/imatrix.log" 2>&1 \
    || { tail -5 "$work/imatrix.log"; exit 1; }
  for t in "${types[@]}" Q2_K_S; do
    for im in "" "$work/$preset.imatrix"; do
      [ "$t" = Q2_K_S ] && [ -z "$im" ] && continue   # Q2_K_S needs an importance matrix (both tools refuse without)
      ours="$work/ours.gguf"; theirs="$work/theirs.gguf"
      if [ -n "$im" ]; then
        "$BIN" quantize --imatrix "$im" "$work/$preset.gguf" "$ours" "$t" 2>/dev/null >/dev/null
        "$LBIN/llama-quantize" --imatrix "$im" "$work/$preset.gguf" "$theirs" "$t" >"$work/q.log" 2>&1 || { tail -3 "$work/q.log"; exit 1; }
      else
        "$BIN" quantize "$work/$preset.gguf" "$ours" "$t" 2>/dev/null >/dev/null
        "$LBIN/llama-quantize" "$work/$preset.gguf" "$theirs" "$t" >"$work/q.log" 2>&1 || { tail -3 "$work/q.log"; exit 1; }
      fi
      label="$preset $t${im:+ +imatrix}"
      if ! /usr/bin/python3 - "$ours" "$theirs" "$label" <<'PY'
import sys
sys.path.insert(0, "tests/reference")
import gguf_raw
ours_meta, ours = gguf_raw.read(sys.argv[1])
theirs_meta, theirs = gguf_raw.read(sys.argv[2])
label = sys.argv[3]
bad = []
if [t[0] for t in ours] != [t[0] for t in theirs]:
    bad.append("tensor order differs")
th = {t[0]: t for t in theirs}
types = {}
for name, ne, typ, data in ours:
    if name not in th:
        bad.append(f"{name}: not in llama-quantize's file"); continue
    _, ne2, typ2, data2 = th[name]
    if ne != ne2 or typ != typ2:
        bad.append(f"{name}: {gguf_raw.NAMES.get(typ, typ)} {ne} vs {gguf_raw.NAMES.get(typ2, typ2)} {ne2}")
    elif data != data2:
        first = next(i for i in range(len(data)) if data[i] != data2[i])
        bad.append(f"{name} ({gguf_raw.NAMES.get(typ, typ)}): data differs from byte {first}")
    types[gguf_raw.NAMES.get(typ, typ)] = types.get(gguf_raw.NAMES.get(typ, typ), 0) + 1
for k in ("general.file_type", "general.quantization_version"):
    if ours_meta.get(k) != theirs_meta.get(k):
        bad.append(f"{k}: {ours_meta.get(k)} vs {theirs_meta.get(k)}")
mix = " ".join(f"{k}×{v}" for k, v in sorted(types.items()))
if bad:
    print(f"FAIL {label}: " + "; ".join(bad[:6]) + (f" (+{len(bad) - 6} more)" if len(bad) > 6 else ""))
    sys.exit(1)
print(f"ok   {label}: {len(ours)} tensors identical ({mix})")
PY
      then status=1; fi
    done
  done
  # either tool's importance matrix feeds either tool's quantiser: llmforge imatrix's file against llama-imatrix's
  # (same entries and call counts, mean squares within 0.1 %), and both quantisers give the same bytes with it
  "$BIN" imatrix -m "$work/$preset.gguf" -f "$work/text.txt" -o "$work/ours.imatrix" -c 128 --chunks 8 -t 2 >/dev/null 2>&1
  "$BIN" quantize --imatrix "$work/ours.imatrix" "$work/$preset.gguf" "$work/ours.gguf" Q3_K_M >/dev/null 2>&1
  "$LBIN/llama-quantize" --imatrix "$work/ours.imatrix" "$work/$preset.gguf" "$work/theirs.gguf" Q3_K_M >/dev/null 2>&1
  if /usr/bin/python3 - "$work/ours.imatrix" "$work/$preset.imatrix" "$work/ours.gguf" "$work/theirs.gguf" "$preset" <<'PY'
import struct, sys
sys.path.insert(0, "tests/reference")
import gguf_raw

def read(p):
    b = open(p, "rb").read(); off = 0
    def i32():
        nonlocal off
        v = struct.unpack_from("<i", b, off)[0]; off += 4; return v
    d = {}
    for _ in range(i32()):
        n = i32(); name = b[off:off + n].decode(); off += n
        ncall, nv = i32(), i32()
        d[name] = (ncall, struct.unpack_from(f"<{nv}f", b, off)); off += 4 * nv
    return d

ours, theirs = read(sys.argv[1]), read(sys.argv[2])
same_q = all(a[3] == b[3] for a, b in zip(gguf_raw.read(sys.argv[3])[1], gguf_raw.read(sys.argv[4])[1]))
worst = max(abs(x / ours[k][0] - y / theirs[k][0]) / max(abs(y / theirs[k][0]), 1e-20)
            for k in theirs for x, y in zip(ours[k][1], theirs[k][1]))
ok = set(ours) == set(theirs) and all(ours[k][0] == theirs[k][0] for k in theirs) and worst < 1e-3 and same_q
print(("ok   " if ok else "FAIL ") + f"{sys.argv[5]}: llmforge imatrix vs llama-imatrix: {len(ours)} entries, "
      f"max relative difference {worst:.1e}; llama-quantize and llmforge quantize give the same Q3_K_M with it: {same_q}")
sys.exit(0 if ok else 1)
PY
  then :; else status=1; fi
  # the same numbers: llmforge perplexity on our quantised files prints llama-perplexity's values (ggml arithmetic)
  # to the digit: our kernels sum as ggml's do (Q4_0 in its repacked order, IQ4_NL in tinyBLAS's, the others in
  # vec_dot's)
  # within 0.1 % elsewhere
  if [ "$preset" = tinyllama-mini ]; then
    for t in Q8_0 Q4_K_M Q5_K_M Q6_K Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL Q2_K Q3_K_M IQ4_XS; do
      "$BIN" quantize "$work/$preset.gguf" "$work/ppl.gguf" $t >/dev/null 2>&1
      "$LBIN/llama-perplexity" -m "$work/ppl.gguf" -f "$work/text.txt" -c 128 --chunks 8 -t 2 > "$work/lp.out" 2>&1
      "$BIN" perplexity -m "$work/ppl.gguf" -f "$work/text.txt" -c 128 --chunks 8 -t 2 > "$work/op.out" 2>/dev/null
      theirs=$(grep -o '\[[0-9]*\][0-9.]*' "$work/lp.out" | tr '\n' ' '); ours=$(grep -o '\[[0-9]*\][0-9.]*' "$work/op.out" | tr '\n' ' ')
      lf=$(grep -o 'Final estimate: PPL = [0-9.]*' "$work/lp.out" | grep -o '[0-9.]*$'); of=$(grep -o 'Final estimate: PPL = [0-9.]*' "$work/op.out" | grep -o '[0-9.]*$')
      if [ "$theirs" = "$ours" ] && [ "$lf" = "$of" ]; then
        echo "ok   $preset $t: llama-perplexity's printed values to the digit (final $of)"
      else
        echo "FAIL $preset $t: final $of vs llama-perplexity's $lf"; status=1
      fi
    done
  fi
  # llama.cpp loads and runs our Q4_K_M file
  "$BIN" quantize "$work/$preset.gguf" "$work/ours.gguf" Q4_K_M >/dev/null 2>&1
  if "$LBIN/llama-perplexity" -m "$work/ours.gguf" -f "$work/text.txt" -c 128 --chunks 2 -t 2 >"$work/ppl.log" 2>&1; then
    echo "ok   $preset: llama-perplexity runs our Q4_K_M file ($(grep -o 'Final estimate: PPL = [0-9.]*' "$work/ppl.log"))"
  else
    echo "FAIL $preset: llama-perplexity on our Q4_K_M file"; tail -3 "$work/ppl.log"; status=1
  fi
done
# llama.cpp's fallbacks for rows that are not whole blocks (Q4_K → Q5_0, Q6_K → Q8_0, Q2_K/Q3_K/IQ4_XS → IQ4_NL, then
# F16): llama-tiny's rows of 64 and 172 values
"$BIN" init --preset llama-tiny --dtype f32 --seed 5 -o "$work/tiny.gguf" 2>/dev/null
for t in Q2_K Q3_K_M Q4_K_M IQ4_XS Q6_K; do
  "$BIN" quantize "$work/tiny.gguf" "$work/ours.gguf" "$t" >/dev/null 2>&1
  "$LBIN/llama-quantize" "$work/tiny.gguf" "$work/theirs.gguf" "$t" >/dev/null 2>&1
  if /usr/bin/python3 - "$work/ours.gguf" "$work/theirs.gguf" "$t" <<'PY'
import sys
sys.path.insert(0, "tests/reference")
import gguf_raw
a, b = gguf_raw.read(sys.argv[1])[1], gguf_raw.read(sys.argv[2])[1]
ok = [x[0] for x in a] == [y[0] for y in b] and all(x[2] == y[2] and x[3] == y[3] for x, y in zip(a, b))
kinds = " ".join(sorted({gguf_raw.NAMES.get(x[2], str(x[2])) for x in a}))
print(("ok   " if ok else "FAIL ") + f"llama-tiny {sys.argv[3]} (fallbacks): {len(a)} tensors {'identical' if ok else 'differ'} ({kinds})")
sys.exit(0 if ok else 1)
PY
  then :; else status=1; fi
done
exit $status
