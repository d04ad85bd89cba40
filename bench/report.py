#!/usr/bin/env python3
"""report.py - turn a sweep's results into the benchmark report: tables, charts, growth rates.

Reads OUT/results.json and OUT/machine.json (bench/sweep.py) and writes
  - the generated section of docs/benchmarks.md (between its BEGIN/END REPORT markers; the
    hand-written sections around it are kept): the machine and its measured ceilings, every example
    network side by side for the three engines, the sweeps, the measured growth of time and memory
    with H, B and T against O(B*T*H^2) and the memory plan's predicted bytes, and the targets;
  - docs/images/bench-speedup-vs-H.png, bench-time-vs-T.png, bench-memory-vs-T.png (and
    bench-all-networks.png), drawn with matplotlib;
  - OUT/report.json: the numbers the text quotes (ratios, fitted exponents).

  python3 bench/report.py --out out/bench --doc docs/benchmarks.md --images docs/images
"""
import argparse
import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BEGIN = "<!-- BEGIN REPORT: written by bench/report.py from a sweep; edits here are lost -->"
END = "<!-- END REPORT -->"
ENGINES = ["generated", "generic", "pytorch"]
LABEL = {"generated": "dopa generated C++", "generic": "dopa generic executor",
         "pytorch": "PyTorch formulation"}
COLOR = {"generated": "tab:green", "generic": "tab:orange", "pytorch": "tab:blue"}



def save_figure(fig, path):
    """Saved beside `path` and renamed over it: an interrupted run keeps the previous picture."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fig.savefig(tmp, dpi=110, format=os.path.splitext(str(path))[1].lstrip(".") or "png")
    os.replace(tmp, path)

def load(out):
    results = json.loads((Path(out) / "results.json").read_text())
    machine = json.loads((Path(out) / "machine.json").read_text())
    return results, machine


def index(results):
    return {(r["network"], r["H"], r["batch"], r["steps"], r["engine"]): r for r in results}


def ok(r):
    return r is not None and r.get("status") == "ok"


def fmt_s(r):
    if r is None:
        return "not run"
    if not ok(r):
        return r["status"] + (f" ({r.get('reason')})" if r.get("reason") else "")
    return f"{r['median_s']:.4g} ({r['min_s']:.4g}–{r['max_s']:.4g})"


def fmt_mb(r):
    return f"{r['peak_rss_bytes'] / 1e6:,.0f}" if ok(r) else "–"


def ratio(a, b):
    return b["median_s"] / a["median_s"] if ok(a) and ok(b) else None


def fmt_x(x):
    return f"{x:.1f}×" if x else "–"


def fit_exponent(xs, ys):
    """Least-squares slope of log y against log x: y ~ x^slope."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def series(idx, net, var, engine, base, values, field="median_s"):
    xs, ys, rs = [], [], []
    for v in values:
        h, b, t = (v if var == "H" else base[0], v if var == "B" else base[1],
                   v if var == "T" else base[2])
        r = idx.get((net, h, b, t, engine))
        if ok(r):
            xs.append(v)
            ys.append(r[field] if field != "plan" else r.get("plan", {}).get("predicted_bytes", 0))
            rs.append(r)
    return xs, ys, rs


def base_of(results, net):
    """The H, B, T the one-factor sweeps of `net` varied around (sweep.py --base)."""
    for r in results:
        if r["network"] == net and r.get("group", "").startswith("sweep") and "base" in r:
            return tuple(r["base"])
    return (200, 30, 120)


def sweep_values(results, net, group, var):
    col = {"H": "H", "B": "batch", "T": "steps"}[var]
    # A one-factor sweep's group, or the full grid (sweep.py --full: group "sweep"), which holds
    # every one-factor line too; the runs themselves are looked up by their sizes (idx).
    vals = sorted({r[col] for r in results
                   if r["network"] == net and r.get("group") in (group, "sweep")})
    base = dict(zip("HBT", base_of(results, net)))[var]
    return sorted(set(vals) | ({base} if vals else set()))


def charts(results, idx, net, images):
    paths = {}
    base = base_of(results, net)
    hs = sweep_values(results, net, "sweep-H", "H")
    ts = sweep_values(results, net, "sweep-T", "T")
    name = net.replace("/", " ")
    if hs:
        fig, ax = plt.subplots(figsize=(6, 4))
        for other in ("generic", "pytorch"):
            xs, ys = [], []
            for h in hs:
                g = idx.get((net, h, base[1], base[2], "generated"))
                o = idx.get((net, h, base[1], base[2], other))
                if ok(g) and ok(o):
                    xs.append(h)
                    ys.append(o["median_s"] / g["median_s"])
            if xs:
                ax.plot(xs, ys, "o-", color=COLOR[other], label=f"vs {LABEL[other]}")
        ax.set_xscale("log")
        ax.set_xticks(hs)
        ax.set_xticklabels([str(h) for h in hs])
        ax.set_xlabel("hidden size H")
        ax.set_ylabel("speedup of the generated code (×)")
        ax.set_title(f"{name}: speedup, B={base[1]}, T={base[2]}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        paths["speedup"] = images / "bench-speedup-vs-H.png"
        save_figure(fig, paths["speedup"])
        plt.close(fig)
    if ts:
        for kind, field, ylabel, fname in (
                ("time", "median_s", "seconds per training iteration", "bench-time-vs-T.png"),
                ("memory", "peak_rss_bytes", "peak RSS (MB)", "bench-memory-vs-T.png")):
            fig, ax = plt.subplots(figsize=(6, 4))
            for e in ENGINES:
                xs, ys, _ = series(idx, net, "T", e, base, ts, field)
                if xs:
                    ys = [y / 1e6 for y in ys] if kind == "memory" else ys
                    ax.plot(xs, ys, "o-", color=COLOR[e], label=LABEL[e])
            if kind == "memory":
                xs, ys, _ = series(idx, net, "T", "generated", base, ts, "plan")
                if xs:
                    ax.plot(xs, [y / 1e6 for y in ys], "x--", color=COLOR["generated"],
                            label="memory plan's prediction (executor)")
            ax.set_yscale("log")
            ax.set_xlabel("steps per episode T")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name}: {kind} vs T, H={base[0]}, B={base[1]}")
            ax.grid(alpha=0.3, which="both")
            ax.legend()
            fig.tight_layout()
            paths[kind] = images / fname
            save_figure(fig, paths[kind])
            plt.close(fig)
    return paths


def all_networks_chart(rows, images):
    nets = [r[0] for r in rows]
    if not nets:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.27
    for k, e in enumerate(ENGINES):
        vals = [r[1][e]["median_s"] if ok(r[1][e]) else 0 for r in rows]
        ax.bar([i + (k - 1) * width for i in range(len(nets))], vals, width, color=COLOR[e],
               label=LABEL[e])
    ax.set_yscale("log")
    ax.set_xticks(range(len(nets)))
    ax.set_xticklabels([n.replace("/", "\n") for n in nets], fontsize=8)
    ax.set_ylabel("seconds per training iteration")
    ax.set_title("every example network at the paper's dims (missing bar: not run, see table)")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = images / "bench-all-networks.png"
    save_figure(fig, path)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--doc", default="docs/benchmarks.md")
    ap.add_argument("--images", default="docs/images")
    ap.add_argument("--command", default="bash bench/report.sh")
    a = ap.parse_args()
    results, machine = load(a.out)
    idx = index(results)
    images = Path(a.images)
    images.mkdir(parents=True, exist_ok=True)
    doc_dir = Path(a.doc).resolve().parent
    rel = lambda p: os.path.relpath(Path(p).resolve(), doc_dir)
    summary = {}
    threads = machine["machine"]["threads"]
    peak = machine["fma_f32_GFLOPs"]
    py = next((r["pytorch"] for r in results if ok(r) and r["engine"] == "pytorch"), None)

    L = [BEGIN, "", "## Generated vs generic vs PyTorch: the sweep", ""]
    L.append(f"Written by `bench/report.py` from one run of `{a.command}`. Machine: "
             f"{machine['machine']['cpu']}, {machine['machine']['cores']} cores; every engine "
             f"with {threads} threads, each run in its own process. Measured ceilings in the same "
             f"run (`dopa bench --probe`): triad bandwidth **{machine['triad_GBps']:.1f} GB/s**, "
             f"float32 FMA throughput **{peak:.0f} GFLOP/s**.")
    if py:
        blas = ", ".join(Path(p).name for p in py["blas"]) or "unknown"
        L.append(f"PyTorch {py['version']} (Debian's python3-torch): the BLAS loaded was {blas} "
                 f"({Path(py['blas'][0]).parent.name if py['blas'] else ''}), with "
                 f"{py['intraop_threads']} intra-op threads and {py['interop_threads']} inter-op "
                 "thread (the alternatives tried are listed below the report).")
    L += ["", "One training iteration: an episode of T forward steps on fixed random inputs, BPTT "
          "of Σ_t ⟨dY_t, Y_t⟩ through the whole episode, global gradient-norm clipping and an "
          "Adam step (`dopa bench`, `bench/reference/bench_iteration.py`). Times are the median "
          "(min–max) seconds over the measured iterations after a warm-up one. GFLOP/s counts "
          "the same FLOPs for every engine (the forward and backward graphs of the spec, "
          "`ir::countFlops`: no recomputation counted); % of peak is against the FMA probe.", ""]

    # Every network at its paper dims.
    rows = []
    for r in results:
        if r.get("group") == "paper" and r["engine"] == "generated":
            key = (r["network"], r["H"], r["batch"], r["steps"])
            rows.append((r["network"], {e: idx.get(key + (e,)) for e in ENGINES}, key))
    L += ["### Every example network at the paper's dims", "",
          "| network | H | B×T | generated s | generic s | PyTorch s | vs generic | vs PyTorch "
          "| RSS MB gen / generic / PyTorch | generated GFLOP/s (% peak) |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for net, rs, key in rows:
        g = rs["generated"]
        gf = f"{g['gflops']:.1f} ({100 * g['gflops'] / peak:.1f}%)" if ok(g) else "–"
        L.append(f"| {net} | {key[1]} | {key[2]}×{key[3]} | {fmt_s(g)} | {fmt_s(rs['generic'])} | "
                 f"{fmt_s(rs['pytorch'])} | {fmt_x(ratio(g, rs['generic']))} | "
                 f"{fmt_x(ratio(g, rs['pytorch']))} | {fmt_mb(g)} / {fmt_mb(rs['generic'])} / "
                 f"{fmt_mb(rs['pytorch'])} | {gf} |")
        summary.setdefault("paper", {})[net] = {
            "vs_generic": ratio(g, rs["generic"]), "vs_pytorch": ratio(g, rs["pytorch"]),
            "generated_s": g["median_s"] if ok(g) else None,
            "generated_rss_mb": g["peak_rss_bytes"] / 1e6 if ok(g) else None}
    chart = all_networks_chart(rows, images)
    if chart:
        L += ["", f"![every network]({rel(chart)})"]

    # Sweeps.
    sweep_nets = sorted({r["network"] for r in results if r.get("group", "").startswith("sweep")})
    for net in sweep_nets:
        base = base_of(results, net)
        L += ["", f"### Sweeps: {net} (one factor at a time around H={base[0]}, B={base[1]}, "
              f"T={base[2]})", "",
              "| H | B | T | generated s | generic s | PyTorch s | vs generic | vs PyTorch | "
              "RSS MB gen / generic / PyTorch | plan's predicted MB | generated GFLOP/s (% peak) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        keys = sorted({(r["H"], r["batch"], r["steps"]) for r in results
                       if r["network"] == net and (r.get("group", "").startswith("sweep") or
                                                   (r["H"], r["batch"], r["steps"]) == base)})
        for h, b, t in keys:
            rs = {e: idx.get((net, h, b, t, e)) for e in ENGINES}
            g = rs["generated"]
            plan = f"{g['plan']['predicted_bytes'] / 1e6:.1f}" if ok(g) and "plan" in g else "–"
            gf = f"{g['gflops']:.1f} ({100 * g['gflops'] / peak:.1f}%)" if ok(g) else "–"
            L.append(f"| {h} | {b} | {t} | {fmt_s(g)} | {fmt_s(rs['generic'])} | "
                     f"{fmt_s(rs['pytorch'])} | {fmt_x(ratio(g, rs['generic']))} | "
                     f"{fmt_x(ratio(g, rs['pytorch']))} | {fmt_mb(g)} / {fmt_mb(rs['generic'])} / "
                     f"{fmt_mb(rs['pytorch'])} | {plan} | {gf} |")
        paths = charts(results, idx, net, images)
        for k in ("speedup", "time", "memory"):
            if k in paths:
                L += ["", f"![{k}]({rel(paths[k])})"]

        # Growth: fitted exponents against the expected O(B*T*H^2) time.
        L += ["", f"**How cost grows ({net})**: exponents of least-squares fits of log(cost) on "
              "log(size), one factor varied at a time. The work is O(B·T·H²): expected time "
              "exponents H 2, B 1, T 1. Memory: the generic executor and PyTorch keep every step "
              "(expected T 1); the generated code keeps checkpoints chosen by its plan.", "",
              "| engine | time ~ H^a | time ~ B^a | time ~ T^a | peak RSS ~ T^a |", "|---|---|---|---|---|"]
        growth = {}
        for e in ENGINES:
            row = {}
            for var, group in (("H", "sweep-H"), ("B", "sweep-B"), ("T", "sweep-T")):
                vals = sweep_values(results, net, group, var)
                xs, ys, _ = series(idx, net, var, e, base, vals)
                row[var] = fit_exponent(xs, ys)
                if var == "T":
                    xs, ys, _ = series(idx, net, "T", e, base, vals, "peak_rss_bytes")
                    row["memT"] = fit_exponent(xs, ys)
            growth[e] = row
            f = lambda v: f"{v:.2f}" if v is not None else "–"
            L.append(f"| {LABEL[e]} | {f(row['H'])} | {f(row['B'])} | {f(row['T'])} | {f(row['memT'])} |")
        summary.setdefault("growth", {})[net] = growth
        # The plan's prediction against what the executor held.
        planrows = [r for r in results if r["network"] == net and ok(r) and r["engine"] == "generated"
                    and "plan" in r]
        if planrows:
            worst = max(abs(r["plan"]["measured_peak_held_bytes"] - r["plan"]["predicted_bytes"]) /
                        max(1, r["plan"]["predicted_bytes"]) for r in planrows)
            L += ["", f"The memory plan's predicted bytes against the bytes the generated executor "
                  f"held at its peak, over all {len(planrows)} generated runs of {net}: largest "
                  f"relative difference {100 * worst:.2f}%. Peak RSS adds the process (code, "
                  "parameters, Adam's moments, the workload's inputs and output gradients)."]

    # Targets.
    head = {e: idx.get(("cue_reward/modul", 200, 30, 120, e)) for e in ENGINES}
    if ok(head["generated"]):
        g = head["generated"]
        vp, vg = ratio(g, head["pytorch"]), ratio(g, head["generic"])
        mb = g["peak_rss_bytes"] / 1e6
        L += ["", "### Targets (cue-reward modul, B=30, H=200, T=120)", "",
              "| target | measured | met |", "|---|---|---|",
              f"| ≥ 20× faster than PyTorch | {fmt_x(vp)} | {'yes' if vp and vp >= 20 else 'no'} |",
              f"| ≥ 10× faster than the generic executor | {fmt_x(vg)} | {'yes' if vg and vg >= 10 else 'no'} |",
              f"| peak RSS ≤ 90 MB | {mb:.1f} MB | {'yes' if mb <= 90 else 'no'} |"]
        summary["targets"] = {"vs_pytorch": vp, "vs_generic": vg, "generated_rss_mb": mb}
    # Microbenchmarks and the profile, when the run made them.
    micro = Path(a.out) / "micro.json"
    if micro.exists():
        bm = json.loads(micro.read_text())["benchmarks"]
        L += ["", "### Microbenchmarks of the fused kernels (Google Benchmark)", "",
              "`build/bench/dopa_microbench`: the generated step functions of one batch element "
              "on one thread. Synapses/s counts H×H entries per step: flat while an element's "
              "traces stay in cache, lower once they stream from memory.", "",
              "| benchmark | time per call (µs) | steps/s | synapses/s (G) |", "|---|---|---|---|"]
        for b in bm:
            L.append(f"| {b['name']} | {b['real_time']:.1f} | {b.get('steps/s', 0):,.0f} | "
                     f"{b.get('synapses/s', 0) / 1e9:.2f} |")
    perf = Path(a.out) / "perf-generated.txt"
    if perf.exists() and perf.read_text().strip():
        L += ["", "### Where the generated code's time goes (cue-reward modul, B=30, H=200, T=120)", "",
              "`perf record` of `dopa bench cue_reward/modul` (5 iterations and a warm-up, self time "
              "per symbol, top 15):", "", "```"]
        L += [" ".join(line.split()) for line in perf.read_text().splitlines()]
        L += ["```"]
    skipped = [r for r in results if r.get("status") != "ok"]
    if skipped:
        L += ["", "Not measured in this sweep:"]
        for r in skipped:
            L.append(f"- {r['network']} H={r['H']} B={r['batch']} T={r['steps']} {r['engine']}: "
                     f"{r['status']} ({r.get('reason') or '; '.join(r.get('error', []))})")
    L += ["", END]

    doc = Path(a.doc)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = "\n".join(L)
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + block + post
    else:  # after the title and its first paragraph
        head_end = text.find("\n## ")
        head_end = len(text) if head_end < 0 else head_end
        text = text[:head_end].rstrip() + "\n\n" + block + "\n" + text[head_end:]
    tmp = str(doc) + ".tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, doc)
    json_path = Path(a.out) / "report.json"
    Path(str(json_path) + ".tmp").write_text(json.dumps(summary, indent=1))
    os.replace(str(json_path) + ".tmp", json_path)
    print(f"report: {doc} (images in {images})")


if __name__ == "__main__":
    main()
