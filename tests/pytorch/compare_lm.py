#!/usr/bin/env python3
"""compare_lm.py - `dopa train lm` on the basic language models against PyTorch.

For each model (basic_lstm, basic_plastic_lstm, basic_modplast_lstm, basic_modul_lstm) this script
  1. runs `dopa train lm --model M --data DIR --engine generic -D V=<vocab> -D E=8 -D H=8 --batch B
     --bptt T --limit-batches K --epochs 1 --lr LR --clip C --l2 L2 --seed S --save-init INIT
     --save-params FINAL --no-verify --out OUT [--threads N]` (float32), which writes OUT/log.csv
     (epoch,batch,loss,lr,grad_norm,seconds; one row per window, the loss computed before the update);
  2. loads INIT into the PyTorch models of bench/reference/lm_basic.py and replays the same K windows
     in float64 and in float32: word_language_model's tokenisation (line.split() + ['<eos>'], the
     vocabulary of the training file in first-occurrence order) and batchify; windows i = 0, T, 2T, ... while
     i < nbatch - 1 with seq_len = min(T, nbatch - 1 - i); the state, Hebbian traces included, zero at
     the start and carried, detached; loss_sum = sum over steps of the batch-mean cross-entropy;
     clip_grad_norm_; SGD with weight_decay;
  3. compares every window's loss (dopa float32 against torch float64: relative error <= --loss-tol),
     its gradient norm (<= --gnorm-tol) and every final parameter tensor (max-norm relative error
     <= --param-tol), and the update of every tensor, final - init (max-norm relative error
     <= max(--update-tol, 10 x the torch float32 replay's own error)): alpha, eta and the modulator
     weights start tiny or barely move, so only their update shows a wrong gradient or a trace that is
     reset instead of carried. The torch float32 replay is printed beside dopa as the noise floor.
Exit code 0 when every model agrees; otherwise the failures are listed (model, window or tensor, numbers).

Without --data a small synthetic corpus (ptb.train.txt, ptb.valid.txt, ptb.test.txt: 260 lines over
50 words, generated deterministically) is written to a temporary directory, so PTB need not be
present. The defaults (E = H = 8, batch 5, bptt 10, 40 windows, lr 1, clip 5) replay the whole
synthetic epoch: 38 windows, the last one 2 steps long.

Other modes (no `dopa train lm` needed):
  --self-test   checks the PyTorch models alone: parameter names and shapes against dopac's summary of
                the specs (and the full-size parameter counts), the vectorised forward against a scalar
                loop written from the equations (with saturated traces), torch.autograd.gradcheck in
                float64, and that float32 and float64 replays of the default test agree well inside the
                tolerances (so the test is well conditioned);
  --grad        `dopa grad --f64` (one forward + BPTT pass from the specs, generic engine) against
                autograd on the PyTorch models: outputs and every parameter gradient, tolerance 1e-9.
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import csv
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "reference"))
import safetensors_np as st  # noqa: E402
import lm_basic as ref  # noqa: E402
import torch  # noqa: E402

MODELS = list(ref.MODELS)


# ---- the synthetic corpus -----------------------------------------------------------------------

def write_synthetic_corpus(path, seed=20190506, words=48, lines=(200, 30, 30)):
    """ptb.{train,valid,test}.txt (dopa's names for the split): lines of 3-14 words from a fixed
    Markov chain over `words` made-up words plus '<unk>' and 'N' (PTB-like). Every word of valid and
    test occurs in train."""
    rng = np.random.default_rng(seed)
    syll = ["ba", "ko", "ri", "te", "mu", "sa", "lo", "ne", "di", "pa", "vu", "zo"]
    vocab = []
    while len(vocab) < words:
        w = "".join(rng.choice(syll, size=int(rng.integers(1, 4))))
        if w not in vocab:
            vocab.append(w)
    vocab += ["<unk>", "N"]
    n = len(vocab)
    trans = np.full((n, n), 0.2 / n)
    for a in range(n):
        trans[a, rng.choice(n, size=4, replace=False)] += 0.2
    trans /= trans.sum(1, keepdims=True)

    def line():
        k = [int(rng.integers(n))]
        for _ in range(int(rng.integers(2, 14))):
            k.append(int(rng.choice(n, p=trans[k[-1]])))
        return [vocab[i] for i in k]

    os.makedirs(path, exist_ok=True)
    train = [line() for _ in range(lines[0])]
    seen = {w for ln in train for w in ln}
    for name, text in (("ptb.train.txt", train), ("ptb.valid.txt", [line() for _ in range(lines[1])]),
                       ("ptb.test.txt", [line() for _ in range(lines[2])])):
        with open(os.path.join(path, name), "w") as f:
            for ln in text:
                f.write(" " + " ".join(w if w in seen else train[0][0] for w in ln) + " \n")
    return path


# ---- comparison helpers -------------------------------------------------------------------------

def rel(a, b):
    """max-norm relative error of a against b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)) if b.size else 0.0


def replay(kind, init, data, V, args, dtype):
    model = ref.make_model(kind, V, args.E, args.H, dtype=dtype)
    ref.load_params(model, init)
    rows, _ = ref.train_windows(model, data, args.bptt, args.lr, args.clip, args.l2, limit=args.limit_batches)
    return rows, ref.params_numpy(model)


def read_log(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"epoch", "batch", "loss", "lr", "grad_norm", "seconds"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"{path}: expected a header with {sorted(need)} and at least one row")
    return rows


def run_dopa(model, data_dir, V, out, args):
    init, final = os.path.join(out, "init.safetensors"), os.path.join(out, "final.safetensors")
    cmd = [args.dopa, "train", "lm", "--model", model, "--data", data_dir, "--engine", args.engine,
           "-D", f"V={V}", "-D", f"E={args.E}", "-D", f"H={args.H}",
           "--batch", str(args.batch), "--bptt", str(args.bptt), "--limit-batches", str(args.limit_batches),
           "--epochs", "1", "--lr", repr(args.lr), "--clip", repr(args.clip), "--l2", repr(args.l2),
           "--seed", str(args.seed), "--save-init", init, "--save-params", final, "--no-verify",
           "--out", out] + (["--threads", str(args.threads)] if args.threads else []) + shlex.split(args.extra)
    print("  $ " + " ".join(shlex.quote(c) for c in cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        p = subprocess.CompletedProcess(cmd, 127, "", f"cannot run {args.dopa}: {e}")
    return p, init, final


def compare_model(model, corpus, data_dir, args, tmp):
    """Returns a list of failure strings (empty: agreement)."""
    kind = ref.MODELS[model]
    V = len(corpus.idx2word)
    data = ref.batchify(corpus.train, args.batch)
    wins = ref.windows(data.shape[0], args.bptt)[:args.limit_batches]
    print(f"\n== {model} (V={V} E={args.E} H={args.H}; batch {args.batch}, bptt {args.bptt}, "
          f"{len(wins)} windows, last seq_len {wins[-1][1]}; lr {args.lr:g} clip {args.clip:g} l2 {args.l2:g}) ==")
    out = os.path.join(tmp, model)
    os.makedirs(out, exist_ok=True)
    p, init_path, final_path = run_dopa(model, data_dir, V, out, args)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
        print(f"  dopa exited with {p.returncode}:\n{tail}")
        return [f"{model}: `dopa train lm` failed with exit code {p.returncode}"]
    fails = []
    try:
        log = read_log(os.path.join(out, "log.csv"))
        init, _ = st.load(init_path)
        final, _ = st.load(final_path)
    except (OSError, ValueError) as e:
        return [f"{model}: cannot read dopa's outputs: {e}"]
    try:
        rows64, p64 = replay(kind, init, data, V, args, torch.float64)
        rows32, p32 = replay(kind, init, data, V, args, torch.float32)
    except ValueError as e:   # names or shapes of INIT differ from the PyTorch model's
        return [f"{model}: {e}"]
    if len(log) != len(rows64):
        fails.append(f"{model}: log.csv has {len(log)} rows, the replay has {len(rows64)} windows")

    print(f"  {'window':>6} {'seq':>4} {'dopa loss':>12} {'torch f64':>12} {'rel err':>9} {'f32 noise':>9}"
          f" {'dopa |g|':>11} {'torch |g|':>11} {'rel err':>9}")
    worst_loss = worst_gn = (0.0, -1)
    for k, (row, r64, r32) in enumerate(zip(log, rows64, rows32)):
        dl, dg = float(row["loss"]), float(row["grad_norm"])
        el, eg = rel(dl, r64["loss"]), rel(dg, r64["grad_norm"])
        n32 = rel(r32["loss"], r64["loss"])
        flag = ""
        if el > args.loss_tol:
            flag += " LOSS"
            fails.append(f"{model}: window {k}: loss dopa {dl:.8g} vs torch float64 {r64['loss']:.8g} "
                         f"(rel err {el:.2e} > {args.loss_tol:g})")
        if eg > args.gnorm_tol:
            flag += " GRAD-NORM"
            fails.append(f"{model}: window {k}: grad_norm dopa {dg:.8g} vs torch float64 {r64['grad_norm']:.8g} "
                         f"(rel err {eg:.2e} > {args.gnorm_tol:g})")
        worst_loss, worst_gn = max(worst_loss, (el, k)), max(worst_gn, (eg, k))
        print(f"  {k:6d} {wins[k][1]:4d} {dl:12.7f} {r64['loss']:12.7f} {el:9.2e} {n32:9.2e}"
              f" {dg:11.5f} {r64['grad_norm']:11.5f} {eg:9.2e}{flag}")

    print(f"  {'parameter':28s} {'shape':>9} {'max|torch|':>10} {'rel err':>9} {'f32 noise':>9} {'moved':>9}"
          f" {'update err':>10} {'f32 noise':>9}")
    names64 = set(p64)
    if set(final) != names64:
        fails.append(f"{model}: final parameter names differ: missing {sorted(names64 - set(final))}, "
                     f"unexpected {sorted(set(final) - names64)}")
    worst_p = worst_u = (0.0, "")
    for name in sorted(names64 & set(final)):
        a, b, a0 = final[name], p64[name], init[name].astype(np.float64)
        if a.shape != b.shape:
            fails.append(f"{model}: {name}: final shape {a.shape}, expected {b.shape}")
            continue
        e, n32, moved = rel(a, b), rel(p32[name], b), rel(a0, b)
        # the update (final - init) as well: it catches a wrong gradient of a parameter that barely
        # moves (alpha, eta start tiny), within a bound set by float32 rounding of the parameter itself
        eu, nu = rel(a - a0, b - a0), rel(p32[name] - a0, b - a0)
        utol = max(args.update_tol, 10 * nu)
        worst_p, worst_u = max(worst_p, (e, name)), max(worst_u, (eu, name))
        flag = ""
        if e > args.param_tol:
            flag += " MISMATCH"
            i = np.unravel_index(int(np.argmax(np.abs(a - b))), b.shape) if b.ndim else ()
            fails.append(f"{model}: final {name}: rel err {e:.2e} > {args.param_tol:g} "
                         f"(worst entry {tuple(int(j) for j in i)}: dopa {float(a[i]):.8g}, torch {float(b[i]):.8g})")
        if eu > utol:
            flag += " UPDATE"
            i = np.unravel_index(int(np.argmax(np.abs(a - b))), b.shape) if b.ndim else ()
            fails.append(f"{model}: update of {name} (final - init): rel err {eu:.2e} > {utol:.2g} (worst entry "
                         f"{tuple(int(j) for j in i)}: dopa {float(a[i] - a0[i]):.6g}, "
                         f"torch {float(b[i] - a0[i]):.6g})")
        print(f"  {name:28s} {'x'.join(map(str, b.shape)) or '[]':>9} {float(np.max(np.abs(b))):10.4g} {e:9.2e}"
              f" {n32:9.2e} {moved:9.2e} {eu:10.2e} {nu:9.2e}{flag}")
    print(f"  worst: loss {worst_loss[0]:.2e} (window {worst_loss[1]}), grad norm {worst_gn[0]:.2e} "
          f"(window {worst_gn[1]}), parameter {worst_p[0]:.2e} ({worst_p[1]}), "
          f"update {worst_u[0]:.2e} ({worst_u[1]})")
    print(f"  {model}: " + ("agree" if not fails else f"DISAGREE ({len(fails)} problems)"))
    return fails


# ---- --self-test --------------------------------------------------------------------------------

def dopac_summary(dopac, model, dims=None):
    spec = os.path.join(ROOT, "examples", "lm", model + ".dopa")
    cmd = [dopac, "--emit=summary", spec] + [f"-D{k}={v}" for k, v in (dims or {}).items()]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    params = {m.group(1): tuple(int(x) for x in m.group(2).split(",") if x.strip())
              for m in re.finditer(r"^\s*param\s+(\S+)\s*:\s*\[([^\]]*)\]", text, re.M)}
    states = {m.group(1): tuple(int(x) for x in m.group(2).split(",") if x.strip())
              for m in re.finditer(r"^\s*state\s+(\S+)\s*:\s*\[([^\]]*)\]", text, re.M)}
    count = int(re.search(r"parameters:\s*(\d+)", text).group(1))
    sizes = dict(re.findall(r"(\w+)=(\d+)", re.search(r"dims:(.*)", text).group(1)))
    return params, states, count, {k: int(v) for k, v in sizes.items()}


def naive_forward(P, kind, tokens, V, E, H):
    """The equations with scalar loops, float64 NumPy, W[post, pre]: logits (T, B, V) and final states."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    T, B = tokens.shape
    out = np.zeros((T, B, V))
    final = {"clipped": 0}
    for b in range(B):
        st_ = {l: {"h": np.zeros(H), "c": np.zeros(H), "A": np.zeros((H, H)), "E": np.zeros((H, H))}
               for l in ("l1", "l2")}
        for t in range(T):
            y = P["enc.weight"][tokens[t, b]].copy()
            for l in ("l1", "l2"):
                s, x = st_[l], y
                def lin(name, v, l=l):
                    return np.array([sum(P[f"{l}.{name}.weight"][j, k] * v[k] for k in range(len(v)))
                                     + P[f"{l}.{name}.bias"][j] for j in range(H)])
                f = sig(lin("x2f", x) + lin("h2f", s["h"]))
                i = sig(lin("x2i", x) + lin("h2i", s["h"]))
                o = sig(lin("x2o", x) + lin("h2o", s["h"]))
                if kind == "lstm":
                    g = np.tanh(lin("x2c", x) + lin("h2c", s["h"]))
                else:
                    rec = np.array([sum((P[f"{l}.w"][j, k] + P[f"{l}.alpha"][j, k] * s["A"][j, k]) * s["h"][k]
                                        for k in range(H)) for j in range(H)])
                    g = np.tanh(lin("x2c", x) + rec)
                c = f * s["c"] + i * g
                hn = o * np.tanh(c)
                A, Et = s["A"].copy(), s["E"].copy()
                clip = lambda v: min(max(v, -2.0), 2.0)  # noqa: E731
                if kind != "lstm":
                    if kind == "modul":
                        etaet = sig(P[f"{l}.etaet_logit"])
                    if kind in ("modplast", "modul"):
                        M = np.tanh(sum(P[f"{l}.h2mod.weight"][0, k] * s["h"][k] for k in range(H))
                                    + P[f"{l}.h2mod.bias"][0])
                    for j in range(H):
                        for k in range(H):
                            hebb = g[j] * s["h"][k]           # post g_j, pre h_{t-1,k}
                            if kind == "plastic":
                                a = s["A"][j, k] + P[f"{l}.eta"][j, k] * hebb
                            elif kind == "modplast":
                                a = s["A"][j, k] + P[f"{l}.modfanout"][j, k] * M * hebb
                            else:
                                a = s["A"][j, k] + P[f"{l}.modfanout"][j, k] * M * s["E"][j, k]
                                Et[j, k] = (1 - etaet) * s["E"][j, k] + etaet * hebb
                            A[j, k] = clip(a)
                            final["clipped"] += int(abs(a) > 2.0)
                st_[l] = {"h": hn, "c": c, "A": A, "E": Et}
                y = hn
            out[t, b] = P["dec.weight"] @ y + P["dec.bias"]
        for l in ("l1", "l2"):
            final.setdefault(f"{l}.h", []).append(st_[l]["h"])
            final.setdefault(f"{l}.c", []).append(st_[l]["c"])
            if kind in ("plastic", "modplast"):
                final.setdefault(f"{l}.hebb", []).append(st_[l]["A"])
            elif kind == "modul":
                final.setdefault(f"{l}.pw", []).append(st_[l]["A"])
                final.setdefault(f"{l}.et", []).append(st_[l]["E"])
    clipped = final.pop("clipped")
    return out, {k: np.stack(v) for k, v in final.items()}, clipped


def strong_params(model, rng):
    """Parameters large enough that the plastic traces reach their clip within a few steps."""
    P = {}
    for name, p in model.named_parameters():
        leaf = name.split(".")[-1]
        scale = {"eta": 3.0, "modfanout": 6.0, "alpha": 1.0, "w": 0.5}.get(leaf, 1.0)
        if leaf == "etaet_logit":  # etaet = sigmoid(etaet_logit) in 0.3 .. 0.6
            P[name] = np.array(rng.uniform(-0.85, 0.4))
        elif leaf == "eta":
            P[name] = rng.uniform(0.5, scale, size=tuple(p.shape))
        else:
            P[name] = rng.uniform(-scale, scale, size=tuple(p.shape))
    return P


def self_test(args):
    t0 = time.time()
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    ok = True

    def check(label, good, detail=""):
        nonlocal ok
        ok &= bool(good)
        print(f"  {label:62s} {'ok' if good else 'FAIL'} {detail}")

    dopac = args.dopac or os.path.join(ROOT, "build", "bin", "dopac")
    small = {"V": 7, "E": 3, "H": 4}
    print("== names, shapes and parameter counts against dopac ==")
    if os.path.exists(dopac):
        for model, kind in ref.MODELS.items():
            params, states, _, _ = dopac_summary(dopac, model, small)
            m = ref.make_model(kind, **small)
            mine = {n: tuple(p.shape) for n, p in m.named_parameters()}
            check(f"{model}: {len(mine)} parameter names and shapes", mine == params,
                  "" if mine == params else f"torch-only {sorted(set(mine.items()) - set(params.items()))}, "
                                            f"dopac-only {sorted(set(params.items()) - set(mine.items()))}")
            mys = {n: tuple(v.shape[1:]) for n, v in m.zero_state(2).items()}
            check(f"{model}: state names and shapes", mys == states, "" if mys == states else f"{mys} vs {states}")
            _, _, count, dims = dopac_summary(dopac, model)
            full = sum(p.numel() for p in ref.make_model(kind, dims["V"], dims["E"], dims["H"],
                                                         dtype=torch.float32).parameters())
            check(f"{model}: full size E={dims['E']} H={dims['H']}: {count:,} parameters", full == count,
                  "" if full == count else f"(torch counts {full:,})")
    else:
        print(f"  (skipped: {dopac} not found; give --dopac)")

    print(f"  ({time.time() - t0:.1f} s)")
    print("== vectorised forward against the scalar equations (float64, saturating traces) ==")
    T, B = 12, 3
    for kind in ref.KINDS:
        m = ref.make_model(kind, **small)
        P = strong_params(m, rng)
        ref.load_params(m, P)
        tok = rng.integers(0, small["V"], size=(T, B))
        with torch.no_grad():
            logits, state = m(torch.as_tensor(tok))
        want, want_state, sat = naive_forward(P, kind, tok, **small)
        e = max([rel(logits.numpy(), want)] + [rel(state[k].numpy(), v) for k, v in want_state.items()])
        check(f"{kind}: logits and final states", e <= 1e-12, f"(max rel err {e:.1e}; {sat} clipped trace updates)")
        if kind != "lstm":
            check(f"{kind}: the clip is exercised", sat > 0)

    print(f"  ({time.time() - t0:.1f} s)")
    print("== torch.autograd.gradcheck, float64, every parameter, 3 steps from a non-zero state ==")
    from torch.nn.utils.stateless import functional_call
    for kind in ref.KINDS:
        m = ref.make_model(kind, **small)
        P = strong_params(m, rng)
        # soften the plastic rates so that few trace entries sit at the clip (its kink is not differentiable)
        for k in P:
            if k.endswith((".eta", ".modfanout")):
                P[k] = P[k] / 3
        names = list(P)
        tok = torch.as_tensor(rng.integers(0, small["V"], size=(3, 2)))
        state0 = {k: torch.as_tensor(rng.uniform(-1.5, 1.5, size=tuple(v.shape))) for k, v in m.zero_state(2).items()}
        w_logits = torch.as_tensor(rng.normal(size=(3, 2, small["V"])))
        w_state = {k: torch.as_tensor(rng.normal(size=tuple(v.shape))) for k, v in state0.items()}

        def fn(*flat):
            logits, state = functional_call(m, dict(zip(names, flat)), (tok, state0))
            return (logits * w_logits).sum() + sum((state[k] * w_state[k]).sum() for k in state)

        inputs = tuple(torch.tensor(P[n], dtype=torch.float64, requires_grad=True) for n in names)
        try:
            good = torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
            detail = f"({sum(x.numel() for x in inputs)} inputs)"
        except RuntimeError as e:
            good, detail = False, str(e).splitlines()[0]
        check(f"{kind}: gradcheck", good, detail)

    print(f"  ({time.time() - t0:.1f} s)")
    print("== float32 against float64 replays of the default test (the test's own noise floor) ==")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = ref.Corpus(write_synthetic_corpus(tmp))
        V = len(corpus.idx2word)
        data = ref.batchify(corpus.train, args.batch)
        wins = ref.windows(data.shape[0], args.bptt)
        print(f"  corpus: V={V}, {corpus.train.numel()} training tokens, {len(wins)} windows of bptt {args.bptt} "
              f"at batch {args.batch} (last seq_len {wins[-1][1]}); replaying {min(len(wins), args.limit_batches)}")
        for model, kind in ref.MODELS.items():
            torch.manual_seed(1)
            init = ref.params_numpy(ref.make_model(kind, V, args.E, args.H))
            rows64, p64 = replay(kind, init, data, V, args, torch.float64)
            rows32, p32 = replay(kind, init, data, V, args, torch.float32)
            el = max(rel(a["loss"], b["loss"]) for a, b in zip(rows32, rows64))
            eg = max(rel(a["grad_norm"], b["grad_norm"]) for a, b in zip(rows32, rows64))
            ep = max(rel(p32[n], p64[n]) for n in p64)
            good = el <= args.loss_tol / 10 and eg <= args.gnorm_tol / 10 and ep <= args.param_tol / 10
            check(f"{model}: f32 noise under a tenth of every tolerance", good,
                  f"(loss {el:.1e}, grad norm {eg:.1e}, params {ep:.1e}; loss {rows64[0]['loss']:.3f} -> "
                  f"{rows64[-1]['loss']:.3f})")
    print(f"  ({time.time() - t0:.1f} s)")
    print("self-test: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1


# ---- --grad: dopa grad --f64 against autograd ----------------------------------------------------

def grad_mode(args):
    rng = np.random.default_rng(args.seed)
    dims = {"V": 11, "E": 4, "H": 5}
    T, B = 9, 3
    ok = True
    for model in args.models:
        kind = ref.MODELS[model]
        spec = os.path.join(ROOT, "examples", "lm", model + ".dopa")
        m = ref.make_model(kind, **dims)
        P = strong_params(m, rng)
        tok = rng.integers(0, dims["V"], size=(T, B))
        dy = rng.normal(size=(T, B, dims["V"]))
        with tempfile.TemporaryDirectory() as tmp:
            path = lambda name: os.path.join(tmp, name)  # noqa: E731
            st.save(path("x.st"), {"tok": tok.astype(np.int64)})
            st.save(path("dy.st"), {"logits": dy})
            st.save(path("p.st"), P)
            cmd = [args.dopa, "grad", spec] + [f"-D{k}={v}" for k, v in dims.items()] + [
                "--engine", args.engine, "--inputs", path("x.st"), "--output-grads", path("dy.st"),
                "--params", path("p.st"), "--f64", "--out", path("g.st")]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as e:
                p = subprocess.CompletedProcess(cmd, 127, "", f"cannot run {args.dopa}: {e}")
            if p.returncode != 0:
                print(f"{model}: dopa grad failed ({p.returncode}): {p.stderr.strip()[-800:]}")
                ok = False
                continue
            got, _ = st.load(path("g.st"))
        ref.load_params(m, P)
        logits, state = m(torch.as_tensor(tok))
        sat = sum(int((v.abs() >= ref.CLIPVAL).sum()) for k, v in state.items() if k.endswith((".hebb", ".pw")))
        (logits * torch.as_tensor(dy)).sum().backward()
        rows = [("output.logits", got.get("output.logits"), logits.detach().numpy())]
        rows += [(n, got.get(n), p_.grad.numpy()) for n, p_ in m.named_parameters()]
        worst = 0.0
        for name, a, b in rows:
            if a is None:
                print(f"  {name:28s} missing from dopa's output  MISMATCH")
                ok = False
                continue
            e = rel(a, b)
            worst = max(worst, e)
            ok &= e <= 1e-9
            if e > 1e-9 or args.verbose:
                print(f"  {name:28s} max rel err {e:.2e}  {'ok' if e <= 1e-9 else 'MISMATCH'}")
        print(f"{model}: {len(rows)} tensors, worst max relative error {worst:.2e} (tolerance 1e-9); "
              f"{sat} trace entries at the clip after {T} steps")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dopa", default=os.path.join(ROOT, "build", "bin", "dopa"), help="the dopa tool")
    ap.add_argument("--dopac", help="--self-test: dopac (default build/bin/dopac)")
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--data", help="a corpus directory with ptb.train.txt, ptb.valid.txt, ptb.test.txt "
                                   "(default: a synthetic one); dopa checks its MD5SUMS unless --no-verify")
    ap.add_argument("--engine", default="generic")
    ap.add_argument("--E", type=int, default=8)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--bptt", type=int, default=10)
    ap.add_argument("--limit-batches", type=int, default=40, help="windows to train (K)")
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss-tol", type=float, default=1e-4)
    ap.add_argument("--gnorm-tol", type=float, default=1e-3)
    ap.add_argument("--param-tol", type=float, default=1e-3, help="final parameters, max-norm relative")
    ap.add_argument("--update-tol", type=float, default=1e-2,
                    help="final - init, max-norm relative (raised to 10x the float32 noise of the tensor)")
    ap.add_argument("--threads", type=int, default=1,
                    help="`dopa train lm --threads` (0: dopa's default, all cores). One thread avoids the "
                         "multi-second stalls that OpenMP threads suffer on a loaded machine at these tiny sizes")
    ap.add_argument("--extra", default="", help="more arguments for `dopa train lm` (one shell-quoted string)")
    ap.add_argument("--keep", help="write dopa's outputs under this directory instead of a temporary one")
    ap.add_argument("--self-test", action="store_true", help="check the PyTorch models alone (no dopa train)")
    ap.add_argument("--grad", action="store_true", help="dopa grad --f64 against autograd (one BPTT pass)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.self_test:
        return self_test(args)
    if args.grad:
        return grad_mode(args)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = args.keep or tmpdir
        os.makedirs(tmp, exist_ok=True)
        data_dir = args.data or write_synthetic_corpus(os.path.join(tmp, "corpus"))
        corpus = ref.Corpus(data_dir)
        print(f"corpus {data_dir}: {len(corpus.idx2word)} words, {corpus.train.numel()} training tokens")
        fails = []
        for model in args.models:
            fails += compare_model(model, corpus, data_dir, args, tmp)
    print()
    if fails:
        print(f"DISAGREEMENT ({len(fails)}):")
        for f in fails:
            print("  " + f)
        return 1
    print(f"all {len(args.models)} models agree (loss rel err <= {args.loss_tol:g}, grad norm <= {args.gnorm_tol:g}, "
          f"parameters <= {args.param_tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
