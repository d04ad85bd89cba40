#!/usr/bin/env python3
"""train_cue_reward.py - the reference training loop of sr/srbatch.py in PyTorch.

The PyTorch formulation that dopa is measured against (issue #5) and compared with (issue #6):
the cue-reward task (vectorized in NumPy, same rules as runtime/train/CueReward), an RLNet from
backpropamine.py, A2C exactly as the reference (sampled actions, Simpson penalty, discounted
returns without bootstrap, batch element 0's value as the baseline unless --per-element,
loss / T), clip_grad_norm_, Adam with no step during the first 101 iterations.

  /usr/bin/python3 bench/reference/train_cue_reward.py --variant modul --hs 200 --iters 5 --threads 2

prints the time of each iteration and the peak RSS, and writes a CSV log with --log.
"""
import argparse
import resource
import sys
import time

import numpy as np
import torch

import backpropamine as ref


class CueRewardTask:
    """sr/srbatch.py's task, batched: 4 distinct cues of 20 +-1 bits, trials of 5-8 steps."""

    def __init__(self, batch, eplen=120, ni=4, cs=20, rew=1.0, rng=None):
        self.B, self.eplen, self.ni, self.cs, self.rew = batch, eplen, ni, cs, rew
        self.rng = rng or np.random.default_rng(0)

    def _trial(self, b):
        L = self.ni // 2 + 3 + self.rng.integers(self.ni)
        cues = self.rng.choice(self.ni, size=2, replace=False)
        middle = list(cues) + [-1] * (L - 5)
        self.rng.shuffle(middle)
        self.trial[b] = [-1] + middle + [-2, -1]
        self.pos[b] = 0
        self.shown[b] = self.target[b] in cues

    def reset(self):
        self.cues = np.zeros((self.B, self.ni, self.cs))
        for b in range(self.B):
            while True:
                c = self.rng.integers(2, size=(self.ni, self.cs)) * 2 - 1
                if len({tuple(row) for row in c}) == self.ni:
                    break
            self.cues[b] = c
        self.target = self.rng.integers(self.ni, size=self.B)
        self.trial, self.pos, self.shown = [None] * self.B, [0] * self.B, [False] * self.B
        self.prev_reward = np.zeros(self.B)
        self.prev_action = np.full(self.B, -1)
        self.t = 0
        for b in range(self.B):
            self._trial(b)

    def observe(self):
        x = np.zeros((self.B, self.cs + 7), dtype=np.float32)
        for b in range(self.B):
            kind = self.trial[b][self.pos[b]]
            if kind >= 0:
                x[b, :self.cs] = self.cues[b, kind]
            x[b, self.cs] = 1.0 if kind == -2 else 0.0
            x[b, self.cs + 1] = 1.0
            x[b, self.cs + 2] = self.t / self.eplen
            x[b, self.cs + 3] = self.prev_reward[b]
            if self.prev_action[b] >= 0:
                x[b, self.cs + 5 + self.prev_action[b]] = 1.0
        return x

    def act(self, actions):
        r = np.zeros(self.B, dtype=np.float32)
        for b in range(self.B):
            if self.trial[b][self.pos[b]] == -2:
                right = (self.shown[b] and actions[b] == 1) or (not self.shown[b] and actions[b] == 0)
                r[b] = self.rew if right else -self.rew
            self.prev_reward[b], self.prev_action[b] = r[b], actions[b]
            self.pos[b] += 1
            if self.pos[b] == len(self.trial[b]):
                self._trial(b)
        self.t += 1
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="modul", choices=["rnn", "plastic", "modplast", "modul"])
    ap.add_argument("--hs", type=int, default=200)
    ap.add_argument("--bs", type=int, default=30)
    ap.add_argument("--eplen", type=int, default=120)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--gc", type=float, default=2.0)
    ap.add_argument("--bent", type=float, default=0.1)
    ap.add_argument("--blossv", type=float, default=0.1)
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--burn-in", type=int, default=101)
    ap.add_argument("--per-element", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = ref.RLNet(args.variant, 27, args.hs, 2)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, eps=1e-6)
    task = CueRewardTask(args.bs, args.eplen, rng=np.random.default_rng(args.seed))
    B, T = args.bs, args.eplen
    rows = []
    for it in range(args.iters):
        start = time.perf_counter()
        task.reset()
        xs, actions, rewards = [], [], []
        # The network's forward over the episode, with the environment in the loop.
        H = args.hs
        h = torch.zeros(B, H)
        hebb = torch.zeros(B, H, H)
        et = torch.zeros(B, H, H)
        loss = 0
        logprobs, vs = [], []
        for t in range(T):
            x = torch.as_tensor(task.observe())
            # One step of RLNet.forward (the module's loop, unrolled here to interleave the task).
            if net.variant == "rnn":
                rec = torch.matmul(net.w, h.view(B, H, 1)).view(B, H)
            else:
                rec = torch.matmul(net.w + net.alpha * hebb, h.view(B, H, 1)).view(B, H)
            hn = torch.tanh(net.i2h(x) + rec)
            delta = torch.bmm(hn.view(B, H, 1), h.view(B, 1, H))
            if net.variant == "plastic":
                hebb = torch.clamp(hebb + net.eta * delta, -1.0, 1.0)
            elif net.variant == "modplast":
                hebb = torch.clamp(hebb + torch.tanh(net.h2DA(hn)).view(B, 1, 1) * delta, -1.0, 1.0)
            elif net.variant == "modul":
                DA = torch.tanh(net.h2DA(hn))
                hebb = torch.clamp(hebb + DA.view(B, 1, 1) * et, -1.0, 1.0)
                et = (1 - net.etaet) * et + net.etaet * delta
            h = hn
            y = torch.softmax(net.h2o(hn), dim=1)
            a = torch.distributions.Categorical(y).sample()
            logprobs.append(torch.log(y[torch.arange(B), a]))
            loss = loss + args.bent * (y * y).sum() / B
            vs.append(net.h2v(hn))
            rewards.append(task.act(a.numpy()))
        R = torch.zeros(B)
        lossv = 0
        for t in reversed(range(T)):
            R = args.gamma * R + torch.as_tensor(rewards[t])
            adv = R - (vs[t][:, 0] if args.per_element else vs[t][0])
            lossv = lossv + (adv * adv).sum() / B
            loss = loss - (logprobs[t] * adv.detach()).sum() / B
        loss = (loss + args.blossv * lossv) / T
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.gc)
        if it >= args.burn_in:
            opt.step()
        seconds = time.perf_counter() - start
        mean_reward = float(np.sum(rewards)) / B
        rows.append((it, mean_reward, float(loss), seconds))
        print(f"iteration {it}: {seconds:.3f} s, mean reward {mean_reward:+.2f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = sorted(r[3] for r in rows[1:] or rows)
    print(f"median {times[len(times) // 2]:.3f} s/iteration over {len(times)} iterations "
          f"(after the first), peak RSS {peak / 1024:.0f} MB, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    if args.log:
        with open(args.log, "w") as f:
            f.write("iteration,mean_reward,loss,seconds\n")
            for r in rows:
                f.write(",".join(str(v) for v in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
