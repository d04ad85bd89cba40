#!/usr/bin/env python3
"""plot_logs.py - learning curves of single `dopa train` runs against iterations.

Usage: plot_logs.py --out PNG [--window W] [--title T] LABEL=RUN_DIR_OR_LOG_CSV ...
Each run's batch-mean reward per iteration (log.csv) is smoothed with a moving average over W
iterations (default 200) and drawn against iterations (batches of episodes), the x axis of the
paper's figures, each point at the last iteration of its window. For runs in progress, while they
write their log. A missing or unreadable log is reported and skipped. (Median and quartiles over
seeds, as the paper's figures: plot_runs.py, whose loading and drawing this shares.)
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_runs import finish_axes, load_rewards, mavg, new_axes, note, pyplot  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--title", default="cue-reward task")
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR or LABEL=log.csv")
    args = ap.parse_args()
    if args.window < 1:
        ap.error("--window must be positive")
    plt = pyplot()
    if plt is None:
        return 1
    fig, ax = new_axes(plt)
    drawn = 0
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            label, path = os.path.basename(os.path.normpath(item)), item
        r = load_rewards(path)
        if r is None:
            continue
        if len(r) == 0:
            note(f"{label}: no iterations in its log yet; skipped")
            continue
        w = min(args.window, len(r))
        smooth = mavg(r, w)
        ax.plot(np.arange(len(smooth)) + w - 1, smooth, label=f"{label} ({len(r)} iterations)")
        print(f"{label}: {len(r)} iterations, mean reward over the last {w}: {r[-w:].mean():+.3f}")
        drawn += 1
    if not drawn:
        note("nothing to plot")
        return 1
    finish_axes(fig, ax, args.out, args.title,
                f"iterations (batches of episodes; moving average over {args.window})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
