#!/usr/bin/env python3
"""sweep.py - run the benchmark sweeps: every engine in its own process, results to JSON.

For each configuration (network, dims, batch B, steps T) it runs `dopa bench` for the generated
code and the generic executor and bench/reference/bench_iteration.py for PyTorch, one process each
(so peak RSS is one engine's), with the same thread count, and appends each result to
OUT/results.json (written atomically after every run; an interrupted sweep resumes where it stopped
unless --fresh). First it measures the machine's ceilings (`dopa bench --probe`: triad bandwidth,
FMA throughput) into OUT/machine.json. A run predicted to need more memory than --max-memory-gb is
skipped and recorded as skipped, with the prediction, never silently.

Configurations:
  - every example network at its paper dims (--networks; B and T per task: cue_reward 30x120,
    maze 30x200, lm --lm-batch x --lm-steps);
  - for the --sweep-networks (default cue_reward/modul), one factor at a time around --base (H=200,
    B=30, T=120): H in --sizes, B in --batches, T in --steps (--full: the whole Cartesian product).

  python3 bench/sweep.py --out out/bench                 # the default sweep (about 10 min, 2 cores)
  python3 bench/sweep.py --networks cue_reward/modul --sweep-networks "" --engines generated,generic
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "reference"))
from bench_iteration import spec_dims  # noqa: E402  (imports torch only when it runs)
ALL_NETWORKS = [f"cue_reward/{v}" for v in ("rnn", "plastic", "modplast", "modul")] + \
               [f"maze/{v}" for v in ("rnn", "plastic", "modplast", "modul")] + \
               [f"lm/{v}" for v in ("lstm", "plastic_lstm", "modplast_lstm", "modul_lstm")]
PAPER_H = {"cue_reward": 200}
TASK_BT = {"cue_reward": (30, 120), "maze": (30, 200)}


def mem_available_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 8.0


def predicted_gb(engine, network, h, batch, steps):
    """Rough peak memory of the engines that keep every step (from measured per-step bytes):
    the generic executor keeps about 5 HxH values per element and step, PyTorch's autograd about
    16.5 (docs/benchmarks.md); the LMs about 130 MB and 220 MB per element-step at H=1149."""
    task = network.split("/")[0]
    if engine == "generated":
        return 0.2
    if task == "lm":
        return 0.5 + batch * steps * (0.13 if engine == "generic" else 0.22)
    per = 5 if engine == "generic" else 16.5
    return 0.1 + batch * steps * per * h * h * 4 / 2**30


def spec_h(network):
    """The hidden size H in the network's spec (bench_iteration.py reads dims the same way)."""
    return spec_dims(network, [])["H"]


def configs(a):
    out = []
    for net in a.networks:
        task = net.split("/")[0]
        b, t = TASK_BT.get(task, (a.lm_batch, a.lm_steps))
        out.append(("paper", net, None, b, t))
    base_h, base_b, base_t = a.base
    for net in a.sweep_networks:
        if a.full:
            for h, b, t in itertools.product(a.sizes, a.batches, a.steps):
                out.append(("sweep", net, h, b, t))
            continue
        for h in a.sizes:
            out.append(("sweep-H", net, h, base_b, base_t))
        for b in a.batches:
            out.append(("sweep-B", net, base_h, b, base_t))
        for t in a.steps:
            out.append(("sweep-T", net, base_h, base_b, t))
    # One measurement per (network, H, B, T): a sweep point equal to the paper point is shared.
    seen, unique = set(), []
    for group, net, h, b, t in out:
        h = h or spec_h(net)
        key = (net, h, b, t)
        if key not in seen:
            seen.add(key)
            unique.append((group, net, h, b, t))
    return unique


def key_of(r):
    return (r["network"], r["H"], r["batch"], r["steps"], r["engine"])


def save(path, results):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def run_engine(a, engine, net, h, b, t, flops):
    dims = [] if h == spec_h(net) else [f"-D", f"H={h}"]
    out_json = Path(a.out) / "last.json"
    if out_json.exists():
        out_json.unlink()
    common = ["--batch", str(b), "--steps", str(t), "--iters", str(a.iters),
              "--warmup", str(a.warmup), "--threads", str(a.threads), "--json", str(out_json)]
    if engine == "pytorch":
        cmd = [a.python, str(ROOT / "bench/reference/bench_iteration.py"), net, *dims, *common,
               "--flops-per-iter", str(flops or 0)]
    else:
        cmd = [a.dopa, "bench", net, *dims, "--engine", engine, *common]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0 or not out_json.exists():
        return {"status": "failed", "error": (p.stderr or p.stdout).strip().splitlines()[-1:]}
    r = json.loads(out_json.read_text())
    r["status"] = "ok"
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--dopa", default=str(ROOT / "build/bin/dopa"))
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--engines", default="generated,generic,pytorch")
    ap.add_argument("--networks", default=",".join(ALL_NETWORKS))
    ap.add_argument("--sweep-networks", default="cue_reward/modul")
    ap.add_argument("--sizes", default="50,100,200,400")
    ap.add_argument("--batches", default="1,8,30")
    ap.add_argument("--steps", default="50,120,200")
    ap.add_argument("--base", default="200,30,120", help="H,B,T the one-factor sweeps vary around")
    ap.add_argument("--full", action="store_true", help="the Cartesian product of the sweeps")
    ap.add_argument("--lm-batch", type=int, default=2)
    ap.add_argument("--lm-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-memory-gb", type=float, default=0.8 * mem_available_gb())
    ap.add_argument("--fresh", action="store_true", help="forget earlier results in --out")
    a = ap.parse_args()
    split = lambda s: [x for x in s.split(",") if x]
    a.engines, a.networks, a.sweep_networks = split(a.engines), split(a.networks), split(a.sweep_networks)
    a.sizes, a.batches, a.steps, a.base = ([int(x) for x in split(s)]
                                           for s in (a.sizes, a.batches, a.steps, a.base))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = [] if a.fresh or not results_path.exists() else json.loads(results_path.read_text())
    done = {key_of(r) for r in results}

    machine_path = out / "machine.json"
    if a.fresh or not machine_path.exists():
        print(f"probing the machine ({a.threads} threads) ...", file=sys.stderr)
        subprocess.run([a.dopa, "bench", "--probe", "--threads", str(a.threads), "--json",
                        str(machine_path)], check=True)

    todo = [(c, e) for c in configs(a) for e in a.engines]
    start = time.time()
    for i, ((group, net, h, b, t), engine) in enumerate(todo):
        key = (net, h, b, t, engine)
        if key in done:
            continue
        elapsed = time.time() - start
        label = f"[{i + 1}/{len(todo)}] {net} H={h} B={b} T={t} {engine}"
        print(f"{label} ...", end="", flush=True, file=sys.stderr)
        gb = predicted_gb(engine, net, h, b, t)
        if gb > a.max_memory_gb:
            r = {"status": "skipped", "reason": f"predicted {gb:.1f} GB > --max-memory-gb "
                                                f"{a.max_memory_gb:.1f}"}
        else:
            # GFLOP/s of PyTorch counts the same FLOPs as dopa's (from the spec's IR).
            flops = next((x.get("flops_per_iter") for x in results
                          if x.get("status") == "ok" and x["engine"] != "pytorch" and
                          (x["network"], x["H"], x["batch"], x["steps"]) == (net, h, b, t)), None)
            r = run_engine(a, engine, net, h, b, t, flops)
        r.update({"group": group, "network": net, "H": h, "batch": b, "steps": t,
                  "engine": engine, "threads": a.threads, "base": a.base})
        results.append(r)
        save(results_path, results)
        what = (f"{r['median_s']:.4f} s, {r['peak_rss_bytes'] / 1e6:.0f} MB"
                if r["status"] == "ok" else f"{r['status'].upper()}: {r.get('reason') or r.get('error')}")
        print(f" {what}   ({elapsed / 60:.1f} min so far)", file=sys.stderr)
    print(f"sweep done in {(time.time() - start) / 60:.1f} min: {results_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
