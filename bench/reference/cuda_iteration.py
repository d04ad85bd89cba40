#!/usr/bin/env python3
"""cuda_iteration.py - the PyTorch formulation of one cue-reward iteration on a GPU.

The modulated network of sr/modul.py (or another RL variant of backpropamine.py's equations) at the
paper's sizes (B=30, H=200, T=120): every step uploads that step's inputs and downloads the outputs
(a trainer with the environment on the host must, to sample actions), then backpropagates
sum_t <dY_t, Y_t> through the episode. The same work as tests/gpu/GpuBench.cpp times for dopa.

  python3 bench/reference/cuda_iteration.py --variant modul --iters 10

prints "pytorch <variant> <median s> <min s>".
"""
import argparse
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="modul", choices=["rnn", "plastic", "modplast", "modul"])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    B, H, T, I, A = 30, 200, 120, 27, 2
    torch.manual_seed(0)
    i2h = torch.nn.Linear(I, H).to(dev)
    h2o = torch.nn.Linear(H, A).to(dev)
    h2v = torch.nn.Linear(H, 1).to(dev)
    h2DA = torch.nn.Linear(H, 1).to(dev)
    w = torch.nn.Parameter(0.01 * torch.rand(H, H, device=dev))
    alpha = torch.nn.Parameter(0.01 * torch.rand(H, H, device=dev))
    eta = torch.nn.Parameter(torch.tensor(0.1, device=dev))
    rng = np.random.default_rng(0)
    times = []
    for it in range(a.iters + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        h = torch.zeros(B, H, device=dev)
        hebb = torch.zeros(B, H, H, device=dev)
        et = torch.zeros(B, H, H, device=dev)
        loss = 0
        for t in range(T):
            x = torch.from_numpy(rng.uniform(-1, 1, (B, I)).astype(np.float32)).to(dev)
            if a.variant == "rnn":
                rec = torch.matmul(w, h.view(B, H, 1)).view(B, H)
            else:
                rec = torch.matmul(w + alpha * hebb, h.view(B, H, 1)).view(B, H)
            hn = torch.tanh(i2h(x) + rec)
            delta = torch.bmm(hn.view(B, H, 1), h.view(B, 1, H))
            if a.variant == "plastic":
                hebb = torch.clamp(hebb + eta * delta, -1.0, 1.0)
            elif a.variant == "modplast":
                DA = torch.tanh(h2DA(hn))
                hebb = torch.clamp(hebb + DA.view(B, 1, 1) * delta, -1.0, 1.0)
            elif a.variant == "modul":
                DA = torch.tanh(h2DA(hn))
                hebb = torch.clamp(hebb + DA.view(B, 1, 1) * et, -1.0, 1.0)
                et = (1 - eta) * et + eta * delta
            h = hn
            logits, value = h2o(hn), h2v(hn)
            logits.detach().cpu()  # the host samples actions from these
            loss = loss + 0.01 * (logits.sum() + value.sum())
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if it > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(f"pytorch {a.variant} {times[len(times) // 2]:.5f} {times[0]:.5f}")


if __name__ == "__main__":
    main()
