#!/usr/bin/env python3
"""compare_train.py - dopa's A2C loss, Adam and gradient clipping against PyTorch.

The A2C loss is written as sr/srbatch.py computes it (softmax policy, sampled actions' log
probabilities, sum-of-squared-probabilities penalty, discounted returns without bootstrap, the value
of batch element 0 as every element's baseline -- or each element's own with --per-element), and its
gradients with respect to the logits and values come from autograd. Adam is torch.optim.Adam after
torch.nn.utils.clip_grad_norm_, over several steps. Run with /usr/bin/python3.
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
import torch  # noqa: E402


def reference_a2c(logits, values, actions, rewards, gamma, bent, blossv, per_element):
    """The loss of sr/srbatch.py L304-309, L376-463 (with the vs[t][0] quirk unless per_element)."""
    T, B, A = logits.shape
    loss = 0
    logprobs, vs = [], []
    for t in range(T):
        y = torch.softmax(logits[t], dim=1)
        loss = loss + bent * (y * y).sum() / B
        logprobs.append(torch.log(y[torch.arange(B), actions[t]]))
        vs.append(values[t].view(B, 1))
    R = torch.zeros(B, dtype=logits.dtype)
    lossv = 0
    for t in reversed(range(T)):
        R = gamma * R + rewards[t]
        baseline = vs[t][:, 0] if per_element else vs[t][0]
        adv = R - baseline
        lossv = lossv + (adv * adv).sum() / B
        loss = loss - (logprobs[t] * adv.detach()).sum() / B
    return (loss + blossv * lossv) / T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--per-element", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    T, B, A, N, K = 12, 5, 2, 40, 6
    cfg = dict(gamma=0.9, bent=0.1, blossv=0.1, lr=1e-2, eps=1e-6, max_norm=2.0)
    logits = rng.normal(size=(T, B, A)).astype(np.float32)
    values = rng.normal(size=(T, B)).astype(np.float32)
    actions = rng.integers(0, A, size=(T, B))
    rewards = rng.choice([-1.0, 0.0, 0.0, 1.0], size=(T, B)).astype(np.float32)
    params = rng.normal(size=N).astype(np.float32)
    grads = (rng.normal(size=(K, N)) * np.array([0.1, 3.0, 0.5, 1.0, 10.0, 0.01])[:, None]).astype(np.float32)
    meta = {k: repr(v) for k, v in cfg.items()}
    meta["per_element"] = "1" if args.per_element else "0"
    with tempfile.TemporaryDirectory() as tmp:
        st.save(os.path.join(tmp, "in.st"), {"logits": logits, "values": values, "actions": actions.astype(np.int64),
                                             "rewards": rewards, "params": params, "grads": grads}, meta)
        subprocess.run([args.fixture, os.path.join(tmp, "in.st"), os.path.join(tmp, "out.st")], check=True)
        got, _ = st.load(os.path.join(tmp, "out.st"))

    torch.set_default_dtype(torch.float64)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    loss = reference_a2c(z, v, torch.tensor(actions), torch.tensor(rewards, dtype=torch.float64),
                         cfg["gamma"], cfg["bent"], cfg["blossv"], args.per_element)
    loss.backward()

    p = torch.nn.Parameter(torch.tensor(params, dtype=torch.float32))
    opt = torch.optim.Adam([p], lr=cfg["lr"], eps=cfg["eps"])
    norms = []
    for k in range(K):
        p.grad = torch.tensor(grads[k], dtype=torch.float32)
        norms.append(float(torch.nn.utils.clip_grad_norm_([p], cfg["max_norm"])))
        opt.step()

    checks = [
        ("A2C loss", float(got["loss"]), float(loss), 1e-6),
        ("dLoss/dlogits", got["dlogits"], z.grad.numpy(), 1e-5),
        ("dLoss/dvalue", got["dvalue"], v.grad.numpy(), 1e-5),
        ("gradient norms", got["norms"], np.array(norms), 1e-5),
        ("params after 6 Adam steps", got["params"], p.detach().numpy(), 1e-5),
    ]
    ok = True
    for name, a, b, tol in checks:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
        ok &= err <= tol
        print(f"  {name:28s} max rel err {err:.2e} (tolerance {tol:g}) {'ok' if err <= tol else 'MISMATCH'}")
    print(("per-element" if args.per_element else "first-element") + " baseline: " + ("agree" if ok else "DISAGREE"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
