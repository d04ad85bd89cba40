#!/usr/bin/env python3
"""plot_runs.py - median and inter-quartile range over seeds of `dopa train` runs (Fig. 1 form).

Reads OUT/<variant>/seed*/log.csv, smooths each run's batch-mean episode reward with a moving average,
and writes OUT/fig1.csv (iteration, episodes, then median, q25, q75 per variant) and OUT/fig1.png
(x axis in episodes, as the paper's: iterations times --batch). Prints, per variant, the median over
seeds of the mean reward over the last tenth of the iterations (OUT/summary.csv too).
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
    ap.add_argument("--batch", type=int, default=30, help="episodes per iteration")
    ap.add_argument("--title", default="cue-reward task: median and inter-quartile range over seeds")
    args = ap.parse_args()
    curves, finals = {}, {}
    for variant in args.variants:
        runs = [load(p) for p in sorted(glob.glob(os.path.join(args.out, variant, "seed*", "log.csv")))]
        if not runs:
            print(f"no runs for {variant}", file=sys.stderr)
            continue
        n = min(len(r) for r in runs)
        kernel = np.ones(args.window) / args.window
        smooth = np.array([np.convolve(r[:n], kernel, mode="valid") if n >= args.window else r[:n] for r in runs])
        curves[variant] = (np.median(smooth, 0), np.percentile(smooth, 25, 0), np.percentile(smooth, 75, 0), len(runs))
        tail = [float(np.mean(r[n - max(1, n // 10):n])) for r in runs]
        finals[variant] = (float(np.median(tail)), min(tail), max(tail), len(runs), n)
    if not curves:
        print("nothing to plot", file=sys.stderr)
        return 1
    length = min(len(c[0]) for c in curves.values())
    with open(os.path.join(args.out, "fig1.csv"), "w") as f:
        cols = ["iteration", "episodes"] + [f"{v}_{s}" for v in curves for s in ("median", "q25", "q75")]
        f.write(",".join(cols) + "\n")
        for i in range(length):
            row = [str(i), str(i * args.batch)] + [f"{c[k][i]:.4f}" for c in curves.values() for k in range(3)]
            f.write(",".join(row) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for variant, (med, q25, q75, seeds) in curves.items():
        x = np.arange(length) * args.batch
        ax.plot(x, med[:length], label=f"{variant} ({seeds} seed{'s' if seeds > 1 else ''})")
        ax.fill_between(x, q25[:length], q75[:length], alpha=0.25)
    ax.set_xlabel(f"episodes ({args.batch} per iteration; moving average over {args.window} iterations)")
    ax.set_ylabel("mean reward per episode")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "fig1.png"), dpi=120)
    with open(os.path.join(args.out, "summary.csv"), "w") as f:
        f.write("variant,seeds,iterations,final_reward_median,final_reward_min,final_reward_max\n")
        for v, (med, lo, hi, seeds, n) in finals.items():
            f.write(f"{v},{seeds},{n},{med:.4f},{lo:.4f},{hi:.4f}\n")
            print(f"{v:>9}: mean reward over the last {max(1, n // 10)} of {n} iterations: median "
                  f"{med:+.2f} over {seeds} seed{'s' if seeds > 1 else ''} (range {lo:+.2f} to {hi:+.2f})")
    print(f"wrote {os.path.join(args.out, 'fig1.png')}, fig1.csv and summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
