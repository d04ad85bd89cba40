#!/usr/bin/env python3
"""torch_module.py - dopa inside PyTorch: compile times, and a training step against plain PyTorch.

Measures, for an example network (default cue_reward/modul at the paper's B=30, T=120):
  - dopa.compile() into an empty cache (the first use: pipeline, C++ compiler, load), and again from
    a fresh process (the cached library loaded);
  - one training step through dopa.torch.DopaModule (forward over T steps, loss sum_t <dY_t, Y_t> /
    (B*T), backward, Adam step) against the same step on bench/reference/backpropamine.py's RLNet,
    the paper's equations in plain PyTorch, at the same thread count.
Prints a table (median and min of --iters steps after one warm-up) and optionally writes JSON.

  PYTHONPATH=build/python python3 bench/torch_module.py --threads 1 --iters 5
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "reference"))


def timed(step, iters):
    step()  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times))


def training_step(module, x, dy, opt, scale, names):
    def step():
        opt.zero_grad()
        out = module(x)
        if isinstance(out, dict):  # the reference returns {output name: (T, B, n)}
            out = [out[n] for n in names]
        out = out if isinstance(out, (tuple, list)) else (out,)
        loss = sum((o * d).sum() for o, d in zip(out, dy)) * scale
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="modul", choices=["rnn", "plastic", "modplast", "modul"])
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    import dopa
    from dopa.torch import DopaModule
    import backpropamine as ref

    spec = str(ROOT / "examples" / "cue_reward" / f"{args.variant}.dopa")
    cache = tempfile.mkdtemp(prefix="dopa-bench-cache-")
    t0 = time.perf_counter()
    net = dopa.compile(spec, H=args.hidden, cache_dir=cache)
    first = time.perf_counter() - t0
    code = (f"import time; t0 = time.perf_counter(); import dopa; "
            f"dopa.compile({spec!r}, H={args.hidden}, cache_dir={cache!r}); "
            f"print(time.perf_counter() - t0)")
    cached = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                  text=True, env=dict(os.environ)).stdout.split()[-1])

    I, A, B, T = 27, 2, args.batch, args.steps
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, size=(T, B, I)).astype(np.float32))
    shapes = [net.output_shapes[n] for n in net.output_names]
    dy = [torch.from_numpy(rng.normal(size=(T, B) + tuple(s)).astype(np.float32)) for s in shapes]
    scale = 1.0 / (B * T)

    m = DopaModule(net)
    dopa_med, dopa_min = timed(training_step(m, x, dy, torch.optim.Adam(m.parameters(), 1e-4),
                                             scale, net.output_names), args.iters)
    model = ref.RLNet(args.variant, I, args.hidden, A)
    torch_med, torch_min = timed(training_step(model, x, dy,
                                               torch.optim.Adam(model.parameters(), 1e-4), scale,
                                               net.output_names),
                                 args.iters)
    rows = {
        "network": f"cue_reward/{args.variant} H={args.hidden}", "batch": B, "steps": T,
        "threads": args.threads, "first_compile_s": first, "cached_load_s": cached,
        "dopa_torch_step_s": {"median": dopa_med, "min": dopa_min},
        "pytorch_step_s": {"median": torch_med, "min": torch_min},
        "speedup_median": torch_med / dopa_med, "torch": torch.__version__,
    }
    print(f"{rows['network']}, B={B} T={T}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"  dopa.compile, empty cache        {first:8.2f} s")
    print(f"  dopa.compile, cached (new proc)  {cached:8.2f} s")
    print(f"  training step, dopa.torch        {dopa_med:8.3f} s median ({dopa_min:.3f} min)")
    print(f"  training step, plain PyTorch     {torch_med:8.3f} s median ({torch_min:.3f} min)")
    print(f"  ratio (PyTorch / dopa.torch)     {torch_med / dopa_med:8.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    subprocess.run(["rm", "-rf", cache], check=False)


if __name__ == "__main__":
    main()
