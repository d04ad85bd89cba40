#!/usr/bin/env python3
"""compare_pytorch.py - dopa's gradients against an independent PyTorch implementation.

For one example network (at small dims, via -D overrides) this script
  1. draws random inputs and random output gradients for T steps and B batch elements,
  2. draws parameters large enough that the plastic traces saturate their clip,
  3. runs `dopa grad --f64` (the generic executor by default; `--engine generated` runs the C++
     compiled at build time, at a size the build compiled: `--hidden 50`), one forward and one
     BPTT pass,
  4. runs the PyTorch formulation of bench/reference/backpropamine.py on the same data,
     with loss = sum_t sum_k <dY_k[t], Y_k[t]>, and
  5. compares every output and every parameter gradient (max relative error per tensor).
Run with Debian's /usr/bin/python3 (python3-torch). Exit code 0 when all tensors agree.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "reference"))
import safetensors_np as st  # noqa: E402
import backpropamine as ref  # noqa: E402
import torch  # noqa: E402

RL = {"I": {"cue_reward": 27, "maze": 17}, "A": {"cue_reward": 2, "maze": 4}}
CASES = {}
for task in ("cue_reward", "maze"):
    for v in ("rnn", "plastic", "modplast", "modul"):
        CASES[f"{task}.{v}"] = ("rl", task, v, {"H": 7})
for v in ("lstm", "plastic_lstm", "modplast_lstm", "modul_lstm"):
    CASES[f"lm.{v}"] = ("lm", "lm", v, {"V": 11, "E": 4, "H": 5})

TOLERANCE = 1e-9  # both sides compute in float64; only the order of summation differs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dopa", required=True, help="path to the dopa tool")
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engine", default="generic", choices=["generic", "generated"])
    ap.add_argument("--hidden", type=int, help="H instead of the case's small default")
    args = ap.parse_args()
    kind, task, variant, dims = CASES[args.case]
    if args.hidden:
        dims = dict(dims, H=args.hidden)
    spec = os.path.join(ROOT, "examples", task, variant + ".dopa")
    rng = np.random.default_rng(args.seed)
    T, B = args.steps, args.batch
    torch.set_default_dtype(torch.float64)

    with tempfile.TemporaryDirectory() as tmp:
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        if kind == "rl":
            I, A = RL["I"][task], RL["A"][task]
            model = ref.RLNet(variant, I, dims["H"], A)
            x = rng.uniform(-1, 1, size=(T, B, I))
            st.save(path("x.st"), {"x": x})
            outputs = {"logits": A, "value": 1}
            if variant in ("modplast", "modul"):
                outputs["DAout"] = 1
        else:
            kind_ref = variant.replace("_lstm", "")
            model = ref.PlasticLSTMLM(kind_ref, dims["V"], dims["E"], dims["H"])
            tok = rng.integers(0, dims["V"], size=(T, B))
            # The spec's dropout masks (awd-lstm-lm's rates): locked ones drawn per stream and held
            # over the window (inputs), embedding dropout's [V, 1] (a parameter, set below).
            V, E, H = dims["V"], dims["E"], dims["H"]
            draw = lambda p, shape: (rng.uniform(size=shape) >= p) / (1 - p)  # noqa: E731
            masks = {"drop_i": draw(0.4, (B, E)), "drop_h1": draw(0.25, (B, H)),
                     "drop_h2": draw(0.25, (B, H)), "drop_o": draw(0.4, (B, E)),
                     "drop_e": draw(0.1, (V, 1))}
            x_in = {"tok": tok.astype(np.int64)}
            x_in.update({n: np.broadcast_to(masks[n], (T, *masks[n].shape)).copy()
                         for n in ref.PlasticLSTMLM.LOCKED})
            st.save(path("x.st"), x_in)
            outputs = {"logits": dims["V"], "ar_h": dims["E"], "tar_h": dims["E"]}
        dy = {k: rng.normal(size=(T, B, n)) for k, n in outputs.items()}
        st.save(path("dy.st"), dy)

        overrides = [f"-D{k}={v}" for k, v in dims.items()]
        base = [args.dopa, "grad", spec, *overrides, "--engine", args.engine,
                "--inputs", path("x.st"), "--output-grads", path("dy.st"), "--f64"]
        # Parameter names and shapes from the spec, then values large enough to saturate the clips.
        subprocess.run(base + ["--init-seed", "1", "--save-params", path("p0.st"), "--out", path("g0.st")],
                       check=True, stderr=subprocess.DEVNULL)
        p0, _ = st.load(path("p0.st"))
        params = {}
        for name, v in p0.items():
            leaf = name.split(".")[-1]
            if kind == "lm" and name in masks:  # a shared mask: the draw, not a learned value
                params[name] = masks[name]
            elif leaf == "w":
                params[name] = rng.uniform(-0.5, 0.5, size=v.shape)
            elif leaf == "alpha":
                params[name] = rng.uniform(-1.0, 1.0, size=v.shape)
            elif leaf in ("eta", "etaet"):
                params[name] = np.array(rng.uniform(0.3, 0.6))
            else:
                params[name] = rng.uniform(-1.0, 1.0, size=v.shape) if v.ndim else np.array(rng.uniform(-1, 1))
        st.save(path("p.st"), params)
        subprocess.run(base + ["--params", path("p.st"), "--out", path("g.st")], check=True)
        got, _ = st.load(path("g.st"))

    if kind == "lm":
        learned = {k: v for k, v in params.items() if k not in masks}
        model.load_dopa(learned)
        outs = model(torch.as_tensor(tok), {k: torch.as_tensor(v) for k, v in masks.items()})
    else:
        model.load_dopa(params)
        outs = model(torch.as_tensor(x))
    loss = sum((outs[k] * torch.as_tensor(dy[k])).sum() for k in outputs)
    loss.backward()
    want = model.grads_as_dopa() if kind == "rl" else model.grads_as_dopa({k: v.shape for k, v in learned.items()})

    worst, ok = 0.0, True
    rows = []
    for k in outputs:
        rows.append(("output." + k, got["output." + k], outs[k].detach().numpy()))
    for name in sorted(want):
        rows.append((name, got[name], want[name]))
    if kind == "lm":  # the shared mask gets no gradient
        rows.append(("drop_e (no gradient)", got["drop_e"], np.zeros_like(got["drop_e"])))
    for name, a, b in rows:
        err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
        worst = max(worst, err)
        flag = "ok" if err <= TOLERANCE else "MISMATCH"
        ok &= err <= TOLERANCE
        print(f"  {name:28s} max rel err {err:.2e}  {flag}")
    if kind == "rl":
        saturated = getattr(model, "saturated", 0)
    else:
        saturated = sum(getattr(layer, "saturated", 0) for layer in (model.l1, model.l2, model.l3))
    print(f"  plastic-trace entries held at their clip bound (summed over steps): {saturated}")
    print(f"{args.case}: {len(rows)} tensors, worst max relative error {worst:.2e} (tolerance {TOLERANCE:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
