#!/usr/bin/env python3
"""The quality table of scripts/quant_table.sh: per type and mix, the file's size and bits per weight, llmforge's
perplexity and KL divergence to the f16 model on the held-out chunks, and llama-perplexity's figures for the same files
beside them where they were measured. Writes the Markdown table to stdout and the plot of perplexity against bits per
weight (and of the mean KL divergence against it) to OUT/ppl_vs_bpw.svg.

    python3 scripts/quant_report.py runs/quant-table > runs/quant-table/report.md
"""
import json
import math
import os
import re
import sys


def llama_figures(path):
    """Final perplexity, mean / 99th-percentile KL divergence and same-top-token % from llama-perplexity's output."""
    if not os.path.exists(path):
        return None
    text = open(path, encoding="utf-8", errors="replace").read()
    f = {}
    m = re.search(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", text) or re.search(r"Final estimate: PPL = ([0-9.]+)", text)
    if m:
        f["ppl"] = float(m.group(1))
    for key, pat in (("kl_mean", r"Mean\s+KLD:\s*([0-9.eE+-]+)"), ("kl_p99", r"99\.0%\s+KLD:\s*([0-9.eE+-]+)"),
                     ("same_top", r"Same top p:\s*([0-9.]+)")):
        m = re.search(pat, text)
        if m:
            f[key] = float(m.group(1))
    return f


def panel(points, y_of, ylabel, ticks, left, top, width, height):
    """One scatter panel: x = bits per weight, y = y_of(point) on a log scale; returns SVG elements."""
    xs = [p[1] for p in points]
    ys = [math.log(y_of(p)) for p in points]
    xa, xb = math.floor(min(xs)) - 0.5, math.ceil(max(xs)) + 0.5
    ya, yb = min(ys), max(ys)
    pad = (yb - ya) * 0.08 or 0.05
    ya, yb = ya - pad, yb + pad
    px = lambda x: left + (x - xa) / (xb - xa) * width
    py = lambda y: top + (yb - y) / (yb - ya) * height
    bottom = top + height
    out = [f'<line x1="{left}" y1="{bottom}" x2="{left + width}" y2="{bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>']
    for b in range(int(math.ceil(xa)), int(math.floor(xb)) + 1):
        out.append(f'<line x1="{px(b):.1f}" y1="{bottom}" x2="{px(b):.1f}" y2="{bottom + 4}" stroke="black"/>')
        out.append(f'<text x="{px(b):.1f}" y="{bottom + 16}" text-anchor="middle">{b}</text>')
    for k in range(5):
        y = ya + (yb - ya) * k / 4
        out.append(f'<line x1="{left - 4}" y1="{py(y):.1f}" x2="{left}" y2="{py(y):.1f}" stroke="black"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{ticks(math.exp(y))}</text>')
    out.append(f'<text x="{left + width / 2}" y="{bottom + 36}" text-anchor="middle">bits per weight (whole file)</text>')
    out.append(f'<text x="{left - 58}" y="{top + height / 2}" text-anchor="middle" transform="rotate(-90 {left - 58} {top + height / 2})">'
               f'{ylabel}</text>')
    # labels alternate right/left of their dots by bits per weight, so that neighbours do not overwrite each other
    for k, p in enumerate(sorted(points, key=lambda p: p[1])):
        name, x = p[0], p[1]
        color = "#c0392b" if "imatrix" in name else ("#2c3e50" if name != "f16" else "#27ae60")
        cx, cy = px(x), py(math.log(y_of(p)))
        right = k % 2 == 0
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}"/>')
        out.append(f'<text x="{cx + (6 if right else -6):.1f}" y="{cy + 4:.1f}" fill="{color}" '
                   f'text-anchor="{"start" if right else "end"}">{name}</text>')
    return out


def svg_plot(points, path):
    """Two panels against bits per weight, one labelled dot per file: held-out perplexity, and the mean KL divergence
    from the f16 model (files other than f16). Plain SVG, no plotting library."""
    W, H = 1100, 460
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    out += panel(points, lambda p: p[2], "held-out perplexity (log scale)", lambda v: f"{v:.2f}", 90, 20, 430, 380)
    quant = [p for p in points if p[0] != "f16"]
    out += panel(quant, lambda p: p[3], "mean KL divergence from f16 (log scale)", lambda v: f"{v:.1e}", 650, 20, 430, 380)
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    out = sys.argv[1]
    sc = os.path.join(out, "scores")
    types = ["f16"] + [f[: -len(".llmforge.json")] for f in sorted(os.listdir(sc)) if f.endswith(".llmforge.json") and f != "f16.llmforge.json"]
    n_params = None
    rows = []
    for t in types:
        q = os.path.join(sc, f"{t}.quantize.json")
        size = os.path.getsize(os.path.join(out, "models", f"{t}.gguf"))
        bpw = None
        if os.path.exists(q):
            d = json.load(open(q))
            n_params = d["n_params"]
            bpw = d["bpw_out"]
        ours = json.load(open(os.path.join(sc, f"{t}.llmforge.json")))
        rows.append((t, size, bpw, ours, llama_figures(os.path.join(sc, f"{t}.llama.txt"))))
    rows = [(t, size, bpw if bpw is not None else size * 8 / n_params, o, l) for t, size, bpw, o, l in rows]
    rows.sort(key=lambda r: -r[2])
    chunks = rows[0][3]["n_chunks"]
    print(f"{chunks} held-out chunks of {rows[0][3]['n_ctx']} tokens ({rows[0][3]['tokens_scored']} tokens scored); "
          f"{n_params:,} parameters; KL divergence of each file's next-token distribution from the f16 model's, per token.\n")
    print("| file | size (MiB) | bits/weight | PPL llmforge | PPL llama.cpp | mean KLD llmforge | mean KLD llama.cpp | "
          "KLD p99 llmforge | KLD p99 llama.cpp | same top token llmforge | same top token llama.cpp |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v, f: (f % v) if v is not None else "–"
    for t, size, bpw, o, l in rows:
        kl = o.get("kl_divergence", {})
        l = l or {}
        print(f"| {t} | {size / 2**20:.1f} | {bpw:.2f} | {o['ppl']:.4f} | {fmt(l.get('ppl'), '%.4f')} | "
              f"{kl.get('mean', 0):.6f} | {fmt(l.get('kl_mean'), '%.6f')} | {kl.get('p99', 0):.5f} | {fmt(l.get('kl_p99'), '%.5f')} | "
              f"{100 * kl.get('same_top', 1):.2f} % | {fmt(l.get('same_top'), '%.2f %%')} |")
    by = {t: o for t, _, _, o, _ in rows}
    for t in ("Q4_K_M", "Q3_K_M"):
        if t in by and f"{t}-imatrix" in by:
            a, b = by[t]["kl_divergence"]["mean"], by[f"{t}-imatrix"]["kl_divergence"]["mean"]
            print(f"\n{t}: mean KL divergence {a:.6f} without the importance matrix, {b:.6f} with it ({b / a:.3f}x).", end="")
    print()
    svg_plot([(t, bpw, o["ppl"], o.get("kl_divergence", {}).get("mean", 0)) for t, _, bpw, o, _ in rows], os.path.join(out, "ppl_vs_bpw.svg"))


if __name__ == "__main__":
    main()
