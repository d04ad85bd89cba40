#!/usr/bin/env python3
"""plot_logs.py - learning curves of single `dopa train` runs against iterations.

Usage: plot_logs.py --out PNG [--window W] [--title T] LABEL=RUN_DIR_OR_LOG_CSV ...
Each run's batch-mean reward per iteration (log.csv) is smoothed with a moving average over W
iterations (default 200) and drawn against iterations (batches of episodes), the x axis of the
paper's figures. For runs in progress, while they write their log.
"""
import argparse
import csv
import os
import sys

import numpy as np


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "log.csv")
    with open(path) as f:
        return np.array([float(r["mean_reward"]) for r in csv.DictReader(f)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--title", default="cue-reward task")
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR or LABEL=log.csv")
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for item in args.runs:
        label, _, path = item.partition("=")
        r = load(path)
        w = min(args.window, len(r))
        smooth = np.convolve(r, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + w - 1, smooth, label=f"{label} ({len(r)} iterations)")
        print(f"{label}: {len(r)} iterations, mean reward over the last {w}: {r[-w:].mean():+.3f}")
    ax.set_xlabel(f"iterations (batches of episodes; moving average over {args.window})")
    ax.set_ylabel("mean reward per episode")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
