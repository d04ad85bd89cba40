#!/usr/bin/env python3
"""plot_runs.py - median and inter-quartile range over seeds of `dopa train` runs (the paper's Figs. 1, 2).

Usage:
  plot_runs.py --png FIG.png [--csv FIG.csv] [--summary SUMMARY.csv] [--title T]
               [--window 2000] [--decimate N] [--max-iters N] [--min-iters 2]
               [--markers A,B] [--marker-y Y] [--label KEY=TEXT ...] KEY=DIR [KEY=DIR ...]
  plot_runs.py --out DIR --variants V [V ...] [options]    (the older form: groups V=DIR/V,
               outputs DIR/fig1.png, DIR/fig1.csv, DIR/summary.csv unless given)

Each group KEY=DIR is one curve: DIR holds one folder per seed (seed0/, seed1/, ...) with the log.csv of
`dopa train` (or DIR itself holds a log.csv: one run). KEY names the group in the CSVs; --label gives
its legend text (default KEY). A missing, empty, malformed or short (< --min-iters rows) log is reported
on stderr and skipped; runs of different lengths are cut to the common length (reported).

The curves follow the reference's figure scripts (maze/makefigure.py, sr/makefigure.py):
  - each run's per-iteration batch-mean reward is decimated: the reference logs every 10th iteration
    (batch.py L577 `all_total_rewards[::10]`) and the figure keeps every 10th of those
    (makefigure `z = z[::10]`), one point per 100 iterations, from iteration 0;
  - median and quartiles over the seeds at each decimated point (`np.median(losses, axis=0)`,
    `np.percentile(losses, 25 / 75, axis=0)`);
  - those three curves smoothed with a 20-point moving average (`mavg(medianl, AVGSIZE)`, AVGSIZE = 20,
    a 'valid' cumulative-sum average), i.e. a 2,000-iteration window;
  - point i of the smoothed curves drawn at iteration 100*i, the start of its window (the reference
    plots `mavg(...)` against range(xlen) with tick labels 100*i);
  - Fig. 2's stars: a Wilcoxon rank-sum test (scipy.stats.ranksums) between two groups at every
    decimated point, on the unsmoothed values, a star where p < .05 (makefigure L224-228).
--window W sets the window (default 2000, as the paper): points W/20 iterations apart (--decimate), 20 of
them averaged. When the runs are shorter than 4 windows, the window shrinks to max(1, iterations // 20)
(said on stderr and in the title), so that short demo runs still give a readable figure.

The CSV holds the plotted curves: iteration (the start of the smoothing window), then per group
KEY_median, KEY_q25, KEY_q75 (empty past the last full window); with --markers, the rank-sum p-value
at each decimated point and marker (1 where p < .05). The summary CSV: per group, the median over seeds
(and min, max) of the mean reward over the last tenth of the group's common length.
"""
import argparse
import csv
import math
import os
import re
import sys

import numpy as np

PAPER_WINDOW = 2000  # iterations: 20 points 100 iterations apart (makefigure.py)
POINTS_PER_WINDOW = 20  # makefigure.py AVGSIZE
SIGNIFICANCE = 0.05

# Colours and line styles of maze/makefigure.py (colorz, '-'/'--' alternating, groups sorted by
# name: Simple modulation, Retroactive modulation, Non-plastic 139, Non-plastic 100, Non-modulated
# plasticity), 'y' made darker to be readable; other groups take the remaining colours.
STYLES = {"modplast": ("r", "-"), "modul": ("m", "--"), "rnn": ("b", "-"), "rnn100": ("c", "--"),
          "plastic": ("goldenrod", "-")}
OTHER_COLOURS = ["g", "orange", "k", "tab:brown", "tab:gray", "tab:olive", "tab:purple"]

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "plot_runs.py"


def note(message):
    """A note or warning on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr)


# ---- shared with plot_logs.py ---------------------------------------------------------------------

def load_rewards(path):
    """The mean_reward column of a `dopa train` log.csv (or of RUN_DIR/log.csv), as an array.

    Returns None, with the reason on stderr, when the file is missing, unreadable, empty or lacks the
    column. A malformed row (a run that crashed mid-write) ends the data, with a note."""
    if os.path.isdir(path):
        path = os.path.join(path, "log.csv")
    values = []
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                note(f"{path}: empty; skipped")
                return None
            header = [h.strip() for h in header]
            if "mean_reward" not in header:
                note(f"{path}: no mean_reward column in its header ({','.join(header)[:80]}); skipped")
                return None
            col = header.index("mean_reward")
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    values.append(float(row[col]))
                except (IndexError, ValueError):
                    note(f"{path}:{lineno}: malformed row; using the {len(values)} rows before it")
                    break
    except FileNotFoundError:
        note(f"{path}: missing; skipped")
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        note(f"{path}: unreadable ({e}); skipped")
        return None
    return np.array(values, dtype=float)


def mavg(x, n):
    """Moving average over n points, 'valid' (len(x) - n + 1 points), as the reference's mavg."""
    x = np.asarray(x, dtype=float)
    if n < 1 or len(x) < n:
        return np.zeros(0)
    cumsum = np.cumsum(np.insert(x, 0, 0))
    return (cumsum[n:] - cumsum[:-n]) / n


def pyplot():
    """matplotlib.pyplot with the Agg backend, or None (with a note) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        note(f"matplotlib is missing ({e}); no figure (install python3-matplotlib)")
        return None
    return plt


def new_axes(plt):
    return plt.subplots(figsize=(9, 5.5))


def finish_axes(fig, ax, path, title, xlabel, ylabel="mean reward per episode"):
    """Labels, grid, legend; saves the figure to path (its folder created)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    ext = os.path.splitext(path)[1].lstrip(".") or "png"
    save_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format=ext))


def save_atomically(path, write):
    """write(tmp) a file beside path, then rename it over path (its folder created first): an
    interrupted run leaves the previous picture or table, never half of a new one."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """save_atomically for text."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    save_atomically(path, write)


# ---- statistics -------------------------------------------------------------------------------------

def ranksums_p(a, b):
    """Two-sided p-value of the Wilcoxon rank-sum test: scipy.stats.ranksums when scipy is there,
    else the same statistic here (normal approximation, average ranks for ties, no tie correction)."""
    try:
        from scipy.stats import ranksums
    except ImportError:
        ranksums = None
    if ranksums is not None:
        return float(ranksums(a, b).pvalue)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(a), len(b)
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_values = both[order]
    i = 0
    while i < len(both):  # average ranks over ties, as scipy.stats.rankdata
        j = i
        while j + 1 < len(both) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    s = ranks[:n1].sum()
    expected = n1 * (n1 + n2 + 1) / 2
    z = (s - expected) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return math.erfc(abs(z) / math.sqrt(2))


def smoothing(iterations, window, decimate=None):
    """(window, decimation, points per window, shrunk) for runs of `iterations` iterations."""
    shrunk = iterations < 4 * window
    if shrunk:
        window = max(1, iterations // 20)
    d = decimate if decimate else max(1, window // POINTS_PER_WINDOW)
    k = max(1, int(round(window / d)))
    return k * d, d, k, shrunk


# ---- runs -------------------------------------------------------------------------------------------

def seed_number(name):
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


def load_group(key, folder, min_iters):
    """[(run name, rewards)] of the runs under folder (seed*/log.csv, or folder/log.csv)."""
    if not os.path.isdir(folder):
        note(f"group {key}: no folder {folder}; skipped")
        return []
    seeds = sorted((e for e in os.listdir(folder)
                    if e.startswith("seed") and os.path.isdir(os.path.join(folder, e))), key=seed_number)
    if not seeds:
        if os.path.exists(os.path.join(folder, "log.csv")):
            seeds = ["."]
        else:
            note(f"group {key}: no seed*/ folders nor log.csv in {folder}; skipped")
            return []
    runs = []
    for seed in seeds:
        name = key if seed == "." else f"{key}/{seed}"
        rewards = load_rewards(os.path.join(folder, seed, "log.csv"))
        if rewards is None:
            continue
        if len(rewards) < max(1, min_iters):
            note(f"{name}: only {len(rewards)} iteration{'s' * (len(rewards) != 1)} in its log.csv "
                 f"(fewer than --min-iters {min_iters}); skipped")
            continue
        runs.append((name, rewards))
    if not runs:
        note(f"group {key}: no usable run in {folder}; skipped")
    return runs


def plural(n, word):
    return f"{n} {word}{'s' if n != 1 else ''}"


def main():
    ap = argparse.ArgumentParser(
        description="Median and inter-quartile range over seeds of dopa train runs, as the paper's "
                    "figures (see the module docstring for the method).")
    ap.add_argument("groups", nargs="*", metavar="KEY=DIR",
                    help="a group: DIR holds seed*/log.csv (or log.csv); KEY names it in the CSVs")
    ap.add_argument("--png", help="the figure (default with --out: OUT/fig1.png)")
    ap.add_argument("--csv", help="the plotted curves (default with --out: OUT/fig1.csv)")
    ap.add_argument("--summary", help="final reward per group (default with --out: OUT/summary.csv)")
    ap.add_argument("--out", help="older form: the folder of OUT/<variant>/seed*/ and of the outputs")
    ap.add_argument("--variants", nargs="+", help="older form: the groups V=OUT/V")
    ap.add_argument("--label", action="append", default=[], metavar="KEY=TEXT",
                    help="legend text of group KEY (repeatable; default KEY)")
    ap.add_argument("--title", default="median and inter-quartile range over seeds")
    ap.add_argument("--window", type=int, default=PAPER_WINDOW,
                    help="smoothing window in iterations (default 2000, the paper's); shrunk to "
                         "max(1, iterations // 20) when the runs are shorter than 4 windows")
    ap.add_argument("--decimate", type=int, default=0,
                    help="iterations between the points kept (default window / 20: 100 as the paper)")
    ap.add_argument("--max-iters", type=int, default=0,
                    help="plot the first N iterations only (the paper: 180000 in Fig. 1, 100000 in Fig. 2)")
    ap.add_argument("--min-iters", type=int, default=2,
                    help="skip runs with fewer iterations in their log (default 2)")
    ap.add_argument("--markers", metavar="A,B",
                    help="stars where a rank-sum test between groups A and B gives p < .05 (Fig. 2)")
    ap.add_argument("--marker-y", type=float, help="height of the stars (default: under the curves)")
    args = ap.parse_intermixed_args()  # KEY=DIR groups may come between options

    for name in ("window", "decimate", "max_iters", "min_iters"):
        if getattr(args, name) < 0 or (name == "window" and args.window < 1):
            ap.error(f"--{name.replace('_', '-')} must be {'positive' if name == 'window' else 'non-negative'}")
    groups = []
    for item in args.groups:
        key, sep, folder = item.partition("=")
        if not sep or not key or not folder:
            ap.error(f"group '{item}' is not KEY=DIR")
        groups.append((key, folder))
    if args.variants:
        if not args.out:
            ap.error("--variants needs --out")
        groups += [(v, os.path.join(args.out, v)) for v in args.variants]
    if not groups:
        ap.error("no groups: give KEY=DIR arguments (or --out DIR --variants V ...)")
    keys = [k for k, _ in groups]
    if len(set(keys)) != len(keys):
        ap.error(f"a group key is given twice: {' '.join(keys)}")
    if args.out:
        args.png = args.png or os.path.join(args.out, "fig1.png")
        args.csv = args.csv or os.path.join(args.out, "fig1.csv")
        args.summary = args.summary or os.path.join(args.out, "summary.csv")
    if not args.png and not args.csv and not args.summary:
        ap.error("nothing to write: give --png, --csv and/or --summary (or --out DIR)")
    labels = {}
    for item in args.label:
        key, sep, text = item.partition("=")
        if not sep or not key:
            ap.error(f"--label '{item}' is not KEY=TEXT")
        labels[key] = text
    markers = None
    if args.markers:
        markers = [m.strip() for m in args.markers.split(",")]
        if len(markers) != 2 or not all(markers) or markers[0] == markers[1]:
            ap.error(f"--markers '{args.markers}' is not A,B (two different groups)")

    # Runs, and the summary per group (each group over its own common length, as before).
    runs, finals = {}, {}
    for key, folder in groups:
        group = load_group(key, folder, args.min_iters)
        if not group:
            continue
        runs[key] = group
        n = min(len(r) for _, r in group)
        tail = [float(np.mean(r[n - max(1, n // 10):n])) for _, r in group]
        finals[key] = (float(np.median(tail)), min(tail), max(tail), len(group), n)
    if not runs:
        note("nothing to plot: no group has a usable run")
        return 1

    if args.summary:
        lines = ["variant,seeds,iterations,final_reward_median,final_reward_min,final_reward_max\n"]
        for key, (med, lo, hi, seeds, n) in finals.items():
            lines.append(f"{key},{seeds},{n},{med:.4f},{lo:.4f},{hi:.4f}\n")
        write_text(args.summary, "".join(lines))
    for key, (med, lo, hi, seeds, n) in finals.items():
        print(f"{key:>9}: mean reward over the last {max(1, n // 10)} of {n} iterations: median "
              f"{med:+.2f} over {plural(seeds, 'seed')} (range {lo:+.2f} to {hi:+.2f})")

    # The common length of all runs, then the reference's decimation and smoothing.
    lengths = [(len(r), name) for group in runs.values() for name, r in group]
    shortest, longest = min(lengths), max(lengths)
    n_iters = shortest[0]
    if shortest[0] != longest[0]:
        note(f"runs have {shortest[0]} to {longest[0]} iterations: all cut to the common {shortest[0]} "
             f"(shortest: {shortest[1]})")
    if args.max_iters and args.max_iters < n_iters:
        note(f"plotting the first {args.max_iters} of {n_iters} iterations (--max-iters)")
        n_iters = args.max_iters
    window, d, k, shrunk = smoothing(n_iters, args.window, args.decimate)
    shrink_note = ""
    if shrunk and window != args.window:
        shrink_note = (f"window shrunk to {window} iterations: runs of {n_iters} iterations are shorter "
                       f"than 4 windows of {args.window}")
        note(shrink_note)
    points = len(range(0, n_iters, d))
    if points < k:
        note(f"only {points} points {d} iterations apart: smoothing over {points} instead of {k}")
        k, window = points, points * d
    curves = {}
    for key, group in runs.items():
        x = np.array([r[:n_iters:d] for _, r in group])
        raw = (np.median(x, 0), np.percentile(x, 25, 0), np.percentile(x, 75, 0))
        curves[key] = (x, [mavg(c, k) for c in raw])
    length = points - k + 1  # smoothed points

    # Rank-sum markers between two groups at each decimated point (unsmoothed values).
    pvalues, marked = None, []
    if markers:
        a, b = markers
        missing = [m for m in markers if m not in runs]
        if missing:
            note(f"--markers: no runs for {' and '.join(missing)}; no markers")
        elif min(len(runs[a]), len(runs[b])) < 2:
            note(f"--markers: rank-sum markers need >= 2 seeds in each group ({a}: "
                 f"{len(runs[a])}, {b}: {len(runs[b])}); no markers")
        else:
            xa, xb = curves[a][0], curves[b][0]
            best = ranksums_p(np.arange(len(xa)), np.arange(len(xb)) + len(xa))
            if best >= SIGNIFICANCE:
                note(f"--markers: with {len(xa)} and {len(xb)} seeds the smallest possible rank-sum "
                     f"p is {best:.3f}: no point can reach p < {SIGNIFICANCE}")
            pvalues = np.array([ranksums_p(xa[:, n], xb[:, n]) for n in range(points)])
            marked = [n for n in range(points) if pvalues[n] < SIGNIFICANCE]
            print(f"rank-sum {a} vs {b}: p < {SIGNIFICANCE} at {len(marked)} of {points} points "
                  f"({d} iterations apart)")

    if args.csv:
        cols = ["iteration"] + [f"{key}_{s}" for key in curves for s in ("median", "q25", "q75")]
        if pvalues is not None:
            cols += [f"ranksum_p_{markers[0]}_{markers[1]}", f"marker_{markers[0]}_{markers[1]}"]
        lines = [",".join(cols) + "\n"]
        for n in range(points if pvalues is not None else length):
            row = [str(n * d)]
            for _, smooth in curves.values():
                row += [f"{c[n]:.4f}" if n < length else "" for c in smooth]
            if pvalues is not None:
                row += [f"{pvalues[n]:.4g}", "1" if pvalues[n] < SIGNIFICANCE else "0"]
            lines.append(",".join(row) + "\n")
        write_text(args.csv, "".join(lines))

    status = 0
    plt = pyplot() if args.png else None
    if args.png and plt is None:
        status = 1
    elif plt is not None:
        fig, ax = new_axes(plt)
        xs = np.arange(length) * d
        spare = iter(OTHER_COLOURS * 4)
        for key, (x, (med, q25, q75)) in curves.items():
            colour, style = STYLES.get(key) or (next(spare), "-")
            seeds = x.shape[0]
            ax.fill_between(xs, q25, q75, alpha=0.2, color=colour, lw=0)
            ax.plot(xs, med, color=colour, ls=style, lw=2,
                    label=f"{labels.get(key, key)} ({plural(seeds, 'seed')})")
        if marked:
            lo = min(float(np.min(c[1])) for _, c in curves.values())
            hi = max(float(np.max(c[2])) for _, c in curves.values())
            y = args.marker_y if args.marker_y is not None else lo - 0.06 * max(hi - lo, 1e-9)
            ax.plot(np.array(marked) * d, [y] * len(marked), "*", color="k", ms=6, ls="none",
                    label=f"rank-sum p < {SIGNIFICANCE}: {labels.get(markers[0], markers[0])} vs "
                          f"{labels.get(markers[1], markers[1])}")
        ax.set_xlim(0, max(n_iters - 1, 1))
        title = args.title
        if shrink_note:
            title += (f"\n(smoothing window shrunk to {window} iterations for runs of {n_iters}; "
                      f"asked: {args.window})")
        finish_axes(fig, ax, args.png, title,
                    f"iterations (batches of episodes); median and inter-quartile range over seeds,\n"
                    f"moving average of {k} points {d} iteration{'s' * (d != 1)} apart "
                    f"({window}-iteration window, drawn at its start)")
    written = [p for p in (args.png if status == 0 else None, args.csv, args.summary) if p]
    print(f"wrote {', '.join(written)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
