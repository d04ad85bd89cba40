#!/usr/bin/env python3
"""plot_runs.py - median and inter-quartile range over seeds of `dopa train` runs (Fig. 1 form).

Reads OUT/<variant>/seed*/log.csv, smooths each run's batch-mean episode reward with a moving average,
and writes OUT/fig1.csv (iteration, then median, q25, q75 per variant) and OUT/fig1.png.
"""
import argparse
import csv
import glob
import os
import sys

import numpy as np


def load(path):
    with open(path) as f:
        return np.array([float(r["mean_reward"]) for r in csv.DictReader(f)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", nargs="+", default=["rnn", "plastic", "modplast", "modul"])
    ap.add_argument("--window", type=int, default=20)
    args = ap.parse_args()
    curves = {}
    for variant in args.variants:
        runs = [load(p) for p in sorted(glob.glob(os.path.join(args.out, variant, "seed*", "log.csv")))]
        if not runs:
            print(f"no runs for {variant}", file=sys.stderr)
            continue
        n = min(len(r) for r in runs)
        kernel = np.ones(args.window) / args.window
        smooth = np.array([np.convolve(r[:n], kernel, mode="valid") if n >= args.window else r[:n] for r in runs])
        curves[variant] = (np.median(smooth, 0), np.percentile(smooth, 25, 0), np.percentile(smooth, 75, 0), len(runs))
    if not curves:
        print("nothing to plot", file=sys.stderr)
        return 1
    length = min(len(c[0]) for c in curves.values())
    with open(os.path.join(args.out, "fig1.csv"), "w") as f:
        cols = ["iteration"] + [f"{v}_{s}" for v in curves for s in ("median", "q25", "q75")]
        f.write(",".join(cols) + "\n")
        for i in range(length):
            row = [str(i)] + [f"{c[k][i]:.4f}" for c in curves.values() for k in range(3)]
            f.write(",".join(row) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for variant, (med, q25, q75, seeds) in curves.items():
        x = np.arange(length)
        ax.plot(x, med[:length], label=f"{variant} ({seeds} seeds)")
        ax.fill_between(x, q25[:length], q75[:length], alpha=0.25)
    ax.set_xlabel(f"iteration (one batch of episodes each; moving average over {args.window})")
    ax.set_ylabel("mean reward per episode")
    ax.set_title("cue-reward task: median and inter-quartile range over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "fig1.png"), dpi=120)
    print(f"wrote {os.path.join(args.out, 'fig1.png')} and fig1.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
