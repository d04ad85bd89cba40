#!/usr/bin/env python3
"""bench_iteration.py - the PyTorch side of `dopa bench`: the same training iteration, timed.

For an example network (the paper's equations in backpropamine.py, at the spec's dims or -D
overrides) and a batch B and episode length T: forward T steps on fixed random inputs, backward of
sum_t <dY_t, Y_t> for fixed random dY (scaled by 1/(B*T)), clip_grad_norm_(2.0) and an Adam step;
the same work `dopa bench` times. Prints one line and writes the same JSON fields (median, min,
max seconds after the warm-up iterations, peak RSS, GFLOP/s from the FLOP count `dopa bench`
reported for the same network, passed in with --flops-per-iter), plus PyTorch's thread and BLAS
configuration.

  python3 bench/reference/bench_iteration.py cue_reward/modul --batch 30 --steps 120 --threads 2
"""
import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spec_dims(network, overrides):
    """The dims line of examples/<task>/<variant>.dopa, with -D overrides."""
    text = (ROOT / "examples" / (network + ".dopa")).read_text()
    m = re.search(r"^\s*dims\s+(.*?)(#.*)?$", text, re.M)
    dims = {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", m.group(1))}
    for o in overrides:
        k, v = o.split("=")
        dims[k] = int(v)
    return dims


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("network", help="task/variant, e.g. cue_reward/modul")
    ap.add_argument("-D", dest="dims", action="append", default=[], help="dimension override H=100")
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--interop-threads", type=int, default=1)
    ap.add_argument("--flops-per-iter", type=float, default=0.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import numpy as np
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import backpropamine as ref

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.interop_threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    task, variant = a.network.split("/")
    d = spec_dims(a.network, a.dims)
    B, T = a.batch, a.steps
    if task in ("cue_reward", "maze"):
        model = ref.RLNet(variant, d["I"], d["H"], d["A"])
        x = torch.from_numpy(rng.uniform(-1, 1, (T, B, d["I"])).astype(np.float32))
    else:
        kind = {"lstm": "lstm", "plastic_lstm": "plastic", "modplast_lstm": "modplast",
                "modul_lstm": "modul"}[variant]
        model = ref.PlasticLSTMLM(kind, d["V"], d["E"], d["H"])
        x = torch.from_numpy(rng.integers(0, d["V"], size=(T, B)))
    with torch.no_grad():
        outs = model(x)
    dys = {k: torch.from_numpy((rng.uniform(-1, 1, v.shape) / (B * T)).astype(np.float32))
           for k, v in outs.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-6)
    params = sum(p.numel() for p in model.parameters())
    print(f"pytorch: {a.network} {' '.join(a.dims)} ({params} parameters), B={B} T={T}, "
          f"{torch.get_num_threads()} threads, {a.warmup}+{a.iters} iterations", file=sys.stderr)
    times = []
    for it in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        outs = model(x)
        loss = sum((outs[k] * dys[k]).sum() for k in dys)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        dt = time.perf_counter() - t0
        if not torch.isfinite(norm):
            sys.exit(f"pytorch: the gradient norm is {float(norm)}")
        if it >= a.warmup:
            times.append(dt)
        if sys.stderr.isatty():
            print(f"\r  iteration {it + 1}/{a.warmup + a.iters}: {dt:.4f} s", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    med = float(np.median(times))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # torch calls libblas.so.3 ("BLAS_INFO=generic"); which library that is, the loader decides.
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if re.search(r"lib(open)?blas", line)})
    result = {
        "kind": "iteration", "network": a.network, "dims": ",".join(sorted(a.dims)),
        "engine": "pytorch", "batch": B, "steps": T, "threads": torch.get_num_threads(),
        "params": params, "warmup": a.warmup, "times_s": times, "median_s": med,
        "min_s": min(times), "max_s": max(times), "peak_rss_bytes": rss,
        "flops_per_iter": a.flops_per_iter,
        "gflops": a.flops_per_iter / med * 1e-9 if a.flops_per_iter else None,
        "pytorch": {"version": torch.__version__, "blas": [os.path.realpath(p) for p in libs],
                    "intraop_threads": torch.get_num_threads(),
                    "interop_threads": torch.get_num_interop_threads(),
                    "parallel": torch.__config__.parallel_info().splitlines()[:6]},
    }
    print(f"{a.network} pytorch B={B} T={T}: median {med:.4f} s (min {min(times):.4f}, "
          f"max {max(times):.4f}), peak RSS {rss / 1e6:.1f} MB")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
