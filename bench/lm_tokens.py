#!/usr/bin/env python3
"""lm_tokens.py - training tokens/s of the four basic language models: dopa against PyTorch.

The paper's Table 1 setting (batch 20, BPTT 20, V = 10,000, the sizes of examples/lm/basic_*.dopa),
one SGD window = forward over 20 steps, the loss summed over them, backward, clip, update:

  - dopa: `dopa train lm --model M --data DIR --epochs 1 --limit-batches N --threads K` on the
    generated engine; the seconds of each window from its log.csv;
  - PyTorch: bench/reference/lm_basic.py's model of the same equations, float32, the same window
    (train_windows' loop), at the same thread count (torch.set_num_threads). Its decoder is applied
    once to the window's stacked outputs (BasicLM.forward: the fast way to write it in PyTorch).

Tokens/s = B * BPTT / (median window seconds), the first --warmup windows left out. Prints a table
and optionally writes JSON (--json). Both sides run one after the other on the same machine.

  python3 bench/lm_tokens.py --dopa build/bin/dopa --data ../shared/data/ptb --threads 1
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "reference"))
import lm_basic  # noqa: E402

MODELS = ["basic_lstm", "basic_plastic_lstm", "basic_modplast_lstm", "basic_modul_lstm"]
SIZES = {"basic_lstm": (206, 206)}  # (E, H); the others 200, 200 (examples/lm/basic_*.dopa)
V, B, BPTT = 10000, 20, 20


def dopa_window_seconds(args, model):
    """Seconds of each training window of `dopa train lm` (its log.csv)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [args.dopa, "train", "lm", "--model", model, "--data", args.data, "--epochs", "1",
               "--limit-batches", str(args.windows + args.warmup), "--threads", str(args.threads),
               "--engine", "generated", "--out", str(out)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        with open(out / "log.csv") as f:
            return [float(r["seconds"]) for r in csv.DictReader(f)]


def torch_window_seconds(args, model):
    """Seconds of each training window of the PyTorch reference (float32, stacked decoder)."""
    torch.manual_seed(0)
    E, H = SIZES.get(model, (200, 200))
    net = lm_basic.make_model(model, V, E, H, dtype=torch.float32)
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=1.0, weight_decay=1e-6)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, V, ((args.windows + args.warmup) * BPTT + 1, B), generator=g)
    state = net.zero_state(B)
    seconds = []
    for k in range(args.windows + args.warmup):
        t0 = time.perf_counter()
        x, y = data[k * BPTT:(k + 1) * BPTT], data[k * BPTT + 1:(k + 1) * BPTT + 1]
        state = {n: v.detach() for n, v in state.items()}
        logits, state = net(x, state)  # the decoder on the window's stacked outputs
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum") / B
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def summary(seconds, warmup):
    s = np.array(seconds[warmup:])
    return {"median_s": float(np.median(s)), "min_s": float(s.min()),
            "tokens_per_s": B * BPTT / float(np.median(s)), "windows": len(s)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dopa", default=str(ROOT / "build" / "bin" / "dopa"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ptb"),
                    help="the PTB folder dopa reads (the content does not change the speed)")
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=10, help="timed windows per side and model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    rows = []
    for m in args.models:
        d = summary(dopa_window_seconds(args, m), args.warmup)
        t = summary(torch_window_seconds(args, m), args.warmup)
        rows.append({"model": m, "dopa": d, "torch": t, "ratio": d["tokens_per_s"] / t["tokens_per_s"]})
        print(f"{m:22s} dopa {d['tokens_per_s']:8.0f} tok/s ({d['median_s']:.3f} s/window)   "
              f"PyTorch {t['tokens_per_s']:8.0f} tok/s ({t['median_s']:.3f} s/window)   "
              f"{rows[-1]['ratio']:.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "batch": B, "bptt": BPTT,
                                               "vocab": V, "torch": torch.__version__,
                                               "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
