#!/usr/bin/env python3
"""test_module.py - the Python module dopa: compile(), the NumPy API, gradients, state, the cache.

Compiles two tiny specs (written next to the test cache, so reruns load them from it) and checks
names and shapes, zero-copy parameter views, outputs against a NumPy model of each spec, gradients
against central finite differences in float64, float32 against float64, carried and restored state,
the cache, checkpoint loading, and that every misuse is a clear Python exception. Run by CTest
(python.module) with DOPA_PYTHON_PATH, DOPA_SOURCE_DIR and DOPA_CACHE_DIR set; prints PASS/FAIL per
test and exits non-zero when one fails. Plain Python (no pytest).
"""
import gc
import os
import re
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

SOURCE_DIR = os.environ.get(
    "DOPA_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.environ.get("DOPA_PYTHON_PATH", os.path.join(SOURCE_DIR, "build", "python")))
CACHE_DIR = os.environ.setdefault("DOPA_CACHE_DIR",
                                  os.path.join(tempfile.gettempdir(), "dopa-python-test-cache"))
SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(CACHE_DIR)), "python-specs")

import dopa  # noqa: E402

# A small plastic RNN: Hebbian plastic recurrent weights, a vector and a scalar output.
TINY = """\
# The Python tests' plastic RNN (tests/python): Hebbian plastic recurrent weights, two outputs.
network Tiny {
  dims I = 3, H = 6, A = 2
  input  x : [I]
  state  h : [H] = 0
  state  hebb : [H, H] = 0
  param  w, alpha : [H, H] ~ uniform(-0.5, 0.5)
  param  eta : [] = 0.1
  linear i2h : I -> H
  linear h2o : H -> A
  step {
    hn = tanh(i2h(x) + (w + alpha * hebb) @ h)
    hebb' = clip(hebb + eta * outer(hn, h), -1, 1)
    h' = hn
    output y = h2o(hn)
    output energy = sum(hn * hn)
  }
}
"""

# An index input (word ids into an embedding) next to a float input.
EMB = """\
# The Python tests' embedding RNN (tests/python): an index input and a float input.
network Emb {
  dims V = 5, E = 3, H = 4
  input  tok : int
  input  u : [2]
  state  h : [H] = 0
  embedding enc : V -> E
  linear e2h : E -> H
  linear u2h : 2 -> H
  param  w : [H, H] ~ uniform(-0.5, 0.5)
  step {
    hn = tanh(e2h(enc(tok)) + u2h(u) + w @ h)
    h' = hn
    output y = hn
  }
}
"""

BAD = """\
network Bad {
  dims H = 4
  input  x : [H]
  state  h : [H] = 0
  param  w : [H, H] = 0.5
  step {
    hn = tanh(w @ h + x + undefined_name)
    h' = hn
    output y = hn
  }
}
"""


def write_spec(name, text):
    """The spec at a stable path (the cache key covers the path); written atomically, since the
    other Python test writes the same files."""
    os.makedirs(SPEC_DIR, exist_ok=True)
    path = os.path.join(SPEC_DIR, name)
    try:
        with open(path) as f:
            if f.read() == text:
                return path
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


TINY_PATH = write_spec("tiny.dopa", TINY)
EMB_PATH = write_spec("emb.dopa", EMB)
H = 4  # the tests compile Tiny at H=4 (the spec says 6: the override is checked)


def tiny(dtype="float32", **kw):
    return dopa.compile(TINY_PATH, H=H, dtype=dtype, **kw)


def params_of(net):
    return {k: np.array(v, dtype=np.float64) for k, v in net.params.items()}


def tiny_reference(p, x):
    """Tiny in NumPy (float64): outputs y [T, B, 2], energy [T, B], and the final h, hebb."""
    T, B, _ = x.shape
    n = p["w"].shape[0]
    h, hebb = np.zeros((B, n)), np.zeros((B, n, n))
    ys, es = [], []
    for t in range(T):
        rec = np.einsum("bij,bj->bi", p["w"] + p["alpha"] * hebb, h)
        hn = np.tanh(x[t] @ p["i2h.weight"].T + p["i2h.bias"] + rec)
        hebb = np.clip(hebb + p["eta"] * np.einsum("bi,bj->bij", hn, h), -1, 1)
        h = hn
        ys.append(hn @ p["h2o.weight"].T + p["h2o.bias"])
        es.append((hn * hn).sum(axis=1))
    return np.stack(ys), np.stack(es), h, hebb


def emb_reference(p, tok, u):
    T, B = tok.shape
    h = np.zeros((B, p["w"].shape[0]))
    ys = []
    for t in range(T):
        e = p["enc.weight"][tok[t]]
        h = np.tanh(e @ p["e2h.weight"].T + p["e2h.bias"] + u[t] @ p["u2h.weight"].T +
                    p["u2h.bias"] + h @ p["w"].T)
        ys.append(h)
    return np.stack(ys)


def expect_raises(kinds, fn, *fragments):
    """Call fn; it must raise one of `kinds` whose message contains every fragment."""
    try:
        fn()
    except kinds as e:
        text = str(e)
        for fragment in fragments:
            if fragment not in text:
                raise AssertionError(f"{type(e).__name__} {text!r} does not say {fragment!r}")
        return e
    except Exception as e:  # noqa: BLE001 - a wrong kind is the failure being reported
        raise AssertionError(f"expected {kinds}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"expected {kinds}, nothing was raised")


def close(a, b, tol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {a.shape} and {b.shape}")
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not err <= tol:
        raise AssertionError(f"{what}: max abs difference {err:.3g} > {tol:g}")


# The safetensors writer of the reference scripts (bench/reference/safetensors_np.py).
sys.path.insert(0, os.path.join(SOURCE_DIR, "bench", "reference"))
from safetensors_np import save as save_safetensors  # noqa: E402


# ------------------------------------------------------------------------------------------------


def test_names_and_shapes():
    net = tiny()
    assert net.name == "Tiny", net.name
    assert net.dtype == np.float32, net.dtype
    assert os.path.basename(net.spec_path) == "tiny.dopa", net.spec_path
    assert sorted(net.param_names) == sorted(
        ["w", "alpha", "eta", "i2h.weight", "i2h.bias", "h2o.weight", "h2o.bias"]), net.param_names
    assert net.input_names == ["x"], net.input_names
    assert net.output_names == ["y", "energy"], net.output_names
    assert net.state_names == ["h", "hebb"], net.state_names
    assert net.index_inputs == [], net.index_inputs
    assert net.input_shapes == {"x": (3,)}, net.input_shapes
    assert net.output_shapes == {"y": (2,), "energy": ()}, net.output_shapes
    assert net.state_shapes == {"h": (H,), "hebb": (H, H)}, net.state_shapes
    want = {"w": (H, H), "alpha": (H, H), "eta": (), "i2h.weight": (H, 3), "i2h.bias": (H,),
            "h2o.weight": (2, H), "h2o.bias": (2,)}
    assert net.param_shapes == want, net.param_shapes
    assert net.num_params == sum(int(np.prod(s)) for s in want.values()), net.num_params
    assert net.flat_params.shape == (net.num_params,) and net.flat_grads.shape == (net.num_params,)
    assert list(net.params) == net.param_names and list(net.grads) == net.param_names
    for name, shape in want.items():
        assert net.params[name].shape == shape and net.params[name].dtype == np.float32, name
    assert net.batch == 0 and net.recorded_steps == 0
    text = repr(net)
    assert "Tiny" in text and "float32" in text and "x[3]" in text, text
    assert len(net.cache_key) == 64 and os.path.isdir(net.cache_entry), (net.cache_key,
                                                                          net.cache_entry)
    expect_raises(TypeError, lambda: dopa.Network())


def test_params_are_zero_copy_views():
    net = tiny()
    offsets, at = {}, 0
    for name in net.param_names:
        offsets[name] = at
        at += int(np.prod(net.param_shapes[name]))
    view = net.params["w"]
    assert view.flags.writeable and view.base is net, view.base
    view[1, 2] = 0.125
    assert net.flat_params[offsets["w"] + 1 * H + 2] == np.float32(0.125)
    net.flat_params[offsets["i2h.bias"] + 3] = -2.5
    assert net.params["i2h.bias"][3] == np.float32(-2.5)
    net.params["eta"][...] = 0.25  # a scalar parameter is a 0-d view
    assert net.flat_params[offsets["eta"]] == np.float32(0.25)
    assert np.shares_memory(net.params["alpha"], net.flat_params)
    assert np.shares_memory(net.grads["alpha"], net.flat_grads)
    assert not np.shares_memory(net.flat_params, net.flat_grads)
    net.flat_grads[:] = 1.0
    assert np.all(net.grads["w"] == 1.0)
    net.zero_grad()
    assert not np.any(net.flat_grads)
    # The views keep the network (and its buffer) alive.
    del net
    gc.collect()
    assert view[1, 2] == np.float32(0.125)


def test_init_params():
    net = tiny()
    first = net.flat_params.copy()
    assert net.params["eta"] == np.float32(0.1)  # the spec's constant
    bound = 1 / np.sqrt(3)  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.all(np.abs(net.params["i2h.weight"]) <= bound)
    assert np.all(np.abs(net.params["w"]) <= 0.5) and np.std(net.params["w"]) > 0.05
    net.init_params(1)
    other = net.flat_params.copy()
    assert not np.array_equal(first, other)
    net.init_params(0)
    assert np.array_equal(net.flat_params, first)
    seeded = tiny(seed=1)
    assert np.array_equal(seeded.flat_params, other)
    expect_raises(TypeError, lambda: net.init_params(-1))


def test_forward_matches_numpy_model():
    net = tiny("float64")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(5, 3, 3))
    y, energy = net.forward(x)
    assert y.shape == (5, 3, 2) and energy.shape == (5, 3), (y.shape, energy.shape)
    assert y.dtype == np.float64 and net.recorded_steps == 5 and net.batch == 3
    ry, re_, rh, rhebb = tiny_reference(params_of(net), x)
    close(y, ry, 1e-12, "y")
    close(energy, re_, 1e-12, "energy")
    state = net.get_state()
    close(state["h"], rh, 1e-12, "final h")
    close(state["hebb"], rhebb, 1e-12, "final hebb")
    # The same inputs by name, as a dict or keywords; batch elements are independent.
    close(net.forward({"x": x})[0], y, 0, "forward(dict)")
    close(net.forward(x=x)[0], y, 0, "forward(x=...)")
    close(net.forward(x[:, 1:2])[0], y[:, 1:2], 1e-14, "batch element 1 alone")


def test_forward_float32():
    net = tiny()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(4, 2, 3)).astype(np.float32)
    y, energy = net.forward(x)
    assert y.dtype == np.float32 and energy.dtype == np.float32
    ry, re_, _, _ = tiny_reference(params_of(net), x.astype(np.float64))
    close(y, ry, 1e-5, "float32 y")
    close(energy, re_, 1e-5, "float32 energy")


def loss_of(net, x, wy, we):
    y, e = net.forward(x)
    return float((y * wy).sum() + (e * we).sum())


def test_gradients_match_finite_differences():
    net = tiny("float64")
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(4, 2, 3))
    wy, we = rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2))
    net.zero_grad()
    net.forward(x)
    dx, = net.backward(wy, we)
    grads = net.flat_grads.copy()
    assert np.any(grads != 0)
    # dLoss/d input, [T, B, *shape], at a few coordinates against central differences.
    assert dx.shape == x.shape and dx.dtype == np.float64
    for idx in [(0, 0, 0), (1, 1, 2), (3, 0, 1), (3, 1, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += 1e-6
        xm[idx] -= 1e-6
        fd = (loss_of(net, xp, wy, we) - loss_of(net, xm, wy, we)) / 2e-6
        assert abs(fd - dx[idx]) <= 1e-6 * max(1.0, abs(fd)), \
            f"input gradient at {idx}: backward {dx[idx]:.10g}, finite difference {fd:.10g}"
    net.zero_grad()
    net.forward(x)
    net.backward(wy, we)
    flat = net.flat_params
    eps, worst, at, checked = 1e-5, 0.0, 0, 0
    for name in net.param_names:
        size = int(np.prod(net.param_shapes[name]))
        for i in sorted({0, size // 2, size - 1}):
            k = at + i
            old = flat[k]
            flat[k] = old + eps
            plus = loss_of(net, x, wy, we)
            flat[k] = old - eps
            minus = loss_of(net, x, wy, we)
            flat[k] = old
            fd = (plus - minus) / (2 * eps)
            err = abs(fd - grads[k]) / max(abs(fd), abs(grads[k]), 1e-2)
            worst = max(worst, err)
            assert err < 1e-6, f"{name}[{i}]: backward {grads[k]:.10g}, finite difference {fd:.10g}"
            checked += 1
        at += size
    assert checked >= 14, checked
    # backward() accumulates.
    net.forward(x)
    net.backward(wy, we)
    close(net.flat_grads, 2 * grads, 1e-12, "accumulated gradients")
    # None is a zero gradient: only the energy's gradient here.
    net.zero_grad()
    net.forward(x)
    net.backward(None, we)
    only_energy = net.flat_grads.copy()
    net.zero_grad()
    net.forward(x)
    net.backward(np.zeros_like(wy), we)
    close(only_energy, net.flat_grads, 0, "None as zeros")


def test_float32_agrees_with_float64():
    n32, n64 = tiny(), tiny("float64")
    n64.flat_params[:] = n32.flat_params
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(6, 2, 3)).astype(np.float32)
    wy = rng.normal(size=(6, 2, 2)).astype(np.float32)
    we = rng.normal(size=(6, 2)).astype(np.float32)
    o32, o64 = n32.forward(x), n64.forward(x.astype(np.float64))
    for a, b, name in zip(o32, o64, n32.output_names):
        close(a, b, 1e-5, name)
    n32.zero_grad()
    n64.zero_grad()
    n32.backward(wy, we)
    n64.backward(wy.astype(np.float64), we.astype(np.float64))
    scale = float(np.max(np.abs(n64.flat_grads)))
    close(n32.flat_grads / scale, n64.flat_grads / scale, 1e-4, "gradients float32 vs float64")


def test_carried_state():
    net = tiny("float64")
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(6, 2, 3))
    whole = net.forward(x)
    first = net.forward(x[:3])
    second = net.forward(x[3:], reset=False)
    assert net.recorded_steps == 3  # the first window's steps were dropped
    for k, name in enumerate(net.output_names):
        close(np.concatenate([first[k], second[k]]), whole[k], 1e-14, name)
    # A new episode (reset=True, the default) starts from the initial state again.
    close(net.forward(x[:3])[0], first[0], 0, "reset")
    expect_raises(ValueError, lambda: net.forward(x[:, :1], reset=False), "batch 1", "batch 2")


def test_get_and_set_state():
    net = tiny("float64")
    expect_raises(RuntimeError, net.get_state, "forward()")
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(6, 2, 3))
    net.forward(x[:3])
    saved = net.get_state()
    assert saved["h"].shape == (2, H) and saved["hebb"].shape == (2, H, H)
    assert np.any(saved["hebb"] != 0)
    later = net.forward(x[3:], reset=False)
    net.set_state(saved)
    assert net.recorded_steps == 0
    again = net.forward(x[3:], reset=False)
    for a, b, name in zip(later, again, net.output_names):
        close(a, b, 0, name)
    # get_state() returns copies.
    copy = net.get_state()
    copy["h"][:] = 99.0
    assert not np.any(net.get_state()["h"] == 99.0)
    # A subset of states for a new batch size: a new episode, the others at their initial values.
    net.set_state({"h": np.ones((5, H))})
    assert net.batch == 5
    state = net.get_state()
    assert np.all(state["h"] == 1.0) and not np.any(state["hebb"])
    expect_raises(RuntimeError, lambda: net.backward(None, None), "forward()")
    expect_raises(ValueError, lambda: net.set_state({"nope": np.ones((5, H))}), "'nope'",
                  "h, hebb")
    expect_raises(ValueError, lambda: net.set_state({"h": np.ones((5, H + 1))}),
                  "state 'h'", f"(B, {H})")
    expect_raises(ValueError, lambda: net.set_state({"h": np.ones((5, H)),
                                                     "hebb": np.zeros((4, H, H))}), "batch")
    expect_raises(TypeError, lambda: net.set_state({"h": np.ones((5, H), np.float32)}), "float64")
    expect_raises(TypeError, lambda: net.set_state([np.ones((5, H))]))


def test_backward_needs_its_forward():
    net = tiny()
    g = np.zeros((3, 2, 2), np.float32)
    e = np.zeros((3, 2), np.float32)
    expect_raises(RuntimeError, lambda: net.backward(g, e), "forward()")
    net.forward(np.zeros((3, 2, 3), np.float32))
    net.backward(g, e)
    expect_raises(RuntimeError, lambda: net.backward(g, e), "forward()")
    net.forward(np.zeros((3, 2, 3), np.float32))
    expect_raises(ValueError, lambda: net.backward(np.zeros((4, 2, 2), np.float32), e),
                  "output 'y'", "(4, 2, 2)", "(3, 2, 2)")
    expect_raises(ValueError, lambda: net.backward(np.zeros((3, 1, 2), np.float32), e), "(3, 2, 2)")
    expect_raises(TypeError, lambda: net.backward(g), "2 output gradients", "y, energy")
    expect_raises(TypeError, lambda: net.backward(g.astype(np.float64), e), "float32")
    expect_raises(ValueError, lambda: net.backward({"nope": g}), "'nope'")
    assert net.recorded_steps == 3  # the failed calls consumed nothing
    net.backward({"y": g})
    net.forward(np.zeros((3, 2, 3), np.float32))
    net.backward(energy=e)
    assert net.recorded_steps == 0


def test_argument_errors():
    net = tiny()
    x = np.zeros((5, 2, 3), np.float32)
    expect_raises(TypeError, lambda: net.forward(), "takes 1 input (x), got 0")
    expect_raises(TypeError, lambda: net.forward(x, x), "takes 1 input (x), got 2")
    expect_raises(ValueError, lambda: net.forward(np.zeros((5, 2, 4), np.float32)),
                  "input 'x'", "(5, 2, 4)", "(T, B, 3)")
    expect_raises(ValueError, lambda: net.forward(np.zeros((5, 3), np.float32)), "(T, B, 3)")
    expect_raises(ValueError, lambda: net.forward(np.zeros((0, 2, 3), np.float32)), "at least 1")
    expect_raises(TypeError, lambda: net.forward(x.astype(np.float64)), "float64", "float32")
    expect_raises(TypeError, lambda: net.forward(x.astype(np.int64)), "int64", "float32")
    expect_raises(TypeError, lambda: net.forward(x.tolist()), "numpy.ndarray", "list")
    expect_raises(ValueError, lambda: net.forward({"q": x}), "no input 'q'", "inputs: x")
    expect_raises(TypeError, lambda: net.forward(x, q=x), "not both")
    expect_raises(TypeError, lambda: net.forward(x, reset=x), "reset= is the flag", "ndarray")
    # Non-contiguous, Fortran-ordered and byte-swapped arrays are taken (copied).
    rng = np.random.default_rng(6)
    x[...] = rng.uniform(-1, 1, size=x.shape)
    want = net.forward(x)[0]
    strided = np.zeros((5, 4, 3), np.float32)
    strided[:, ::2] = x
    close(net.forward(strided[:, ::2])[0], want, 0, "strided input")
    close(net.forward(np.asfortranarray(x))[0], want, 0, "Fortran-order input")
    close(net.forward(x.astype(">f4"))[0], want, 0, "big-endian input")
    # compile()'s own arguments.
    expect_raises(ValueError, lambda: dopa.compile(TINY_PATH, H=0), "H=0")
    expect_raises(TypeError, lambda: dopa.compile(TINY_PATH, H="4"), "H='4'")
    expect_raises(TypeError, lambda: dopa.compile(TINY_PATH, H=True), "H=True")
    expect_raises(ValueError, lambda: dopa.compile(TINY_PATH, dtype="int32"), "float32")
    expect_raises(ValueError, lambda: dopa.compile(TINY_PATH, seed=-1), "seed")
    expect_raises(FileNotFoundError, lambda: dopa.compile(os.path.join(SPEC_DIR, "none.dopa")),
                  "none.dopa")


def test_index_inputs():
    net = dopa.compile(EMB_PATH)
    assert net.index_inputs == ["tok"] and net.input_shapes == {"tok": (), "u": (2,)}
    rng = np.random.default_rng(7)
    T, B = 4, 3
    tok = rng.integers(0, 3, size=(T, B))  # ids 3 and 4 never occur
    u = rng.uniform(-1, 1, size=(T, B, 2)).astype(np.float32)
    (y,) = net.forward(tok, u)
    close(y, emb_reference(params_of(net), tok, u.astype(np.float64)), 1e-5, "y")
    close(net.forward(tok.astype(np.float32), u)[0], y, 0, "ids as floats")
    close(net.forward(tok.astype(np.uint8), u)[0], y, 0, "ids as uint8")
    close(net.forward({"u": u, "tok": tok})[0], y, 0, "by name")
    assert net.recorded_steps == T
    bad = tok.copy()
    bad[2, 1] = 7
    expect_raises(ValueError, lambda: net.forward(bad, u), "step 2", "tok", "batch element 1",
                  "[0, 5)")
    bad[2, 1] = -1
    expect_raises(ValueError, lambda: net.forward(bad, u), "tok")
    half = tok.astype(np.float32)
    half[0, 0] = 1.5
    expect_raises(ValueError, lambda: net.forward(half, u), "step 0", "tok")
    expect_raises(TypeError, lambda: net.forward(tok.astype(np.float64), u), "float32")
    expect_raises(ValueError, lambda: net.forward(tok[:3], u), "input 'u'", "4 steps",
                  "input 'tok' has 3 steps")
    expect_raises(ValueError, lambda: net.forward({"tok": tok}), "missing input 'u'")
    # The rejected calls recorded nothing: the last good forward is still there.
    assert net.recorded_steps == T and net.batch == B
    net.zero_grad()
    net.backward(np.ones((T, B, 4), np.float32))
    g = net.grads["enc.weight"]
    assert np.any(g[:3] != 0) and not np.any(g[3:]), g


def test_threads():
    net = tiny("float64")
    rng = np.random.default_rng(8)
    xs = [rng.uniform(-1, 1, size=(8, 2, 3)) for _ in range(4)]
    want = [net.forward(x)[0] for x in xs]
    got = [None] * len(xs)

    def run(i):
        got[i] = net.forward(xs[i])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(xs)):
        close(got[i], want[i], 0, f"thread {i}")


def test_cache():
    first = tiny()
    start = time.monotonic()
    second = tiny()
    wall = time.monotonic() - start
    assert second.from_cache, "the second compile did not load from the cache"
    assert second.cache_key == first.cache_key
    # Loading is fast; the bound is loose (another test may be compiling on the same cores).
    assert second.compile_seconds < 30 and wall < 60, (second.compile_seconds, wall)
    assert os.path.realpath(dopa.cache_dir()) == os.path.realpath(CACHE_DIR), dopa.cache_dir()
    entries = {e["key"]: e for e in dopa.cache_list()}
    assert first.cache_key in entries and entries[first.cache_key]["valid"], entries
    assert entries[first.cache_key]["bytes"] > 0
    # A private cache folder: a real compile (at a size no other test uses: a process keeps the
    # networks it loaded, whatever their folder), listed, then cleared.
    with tempfile.TemporaryDirectory() as private:
        net = dopa.compile(TINY_PATH, H=3, cache_dir=private)
        assert not net.from_cache and net.cache_key != first.cache_key
        assert net.param_shapes["w"] == (3, 3)
        listed = dopa.cache_list(private)
        assert len(listed) == 1 and listed[0]["valid"] and listed[0]["key"] == net.cache_key, listed
        assert dopa.cache_clear(private) == 1
        assert dopa.cache_list(private) == []
        # A loaded network keeps working after its entry is gone.
        y, _ = net.forward(np.zeros((2, 1, 3), np.float32))
        assert y.shape == (2, 1, 2)
        # Compiled again in this process, it is written back to the cache (not a cache hit that
        # leaves the folder empty for every other process).
        again = dopa.compile(TINY_PATH, H=3, cache_dir=private)
        assert not again.from_cache and os.path.isdir(again.cache_entry), again.cache_entry
        assert [e["key"] for e in dopa.cache_list(private)] == [net.cache_key]
    # cache_clear removes dopa's entries only: another program's files in a folder passed by
    # mistake (or named like dopa's, but not its own) stay.
    with tempfile.TemporaryDirectory() as folder:
        keep = ["failed/results.csv", "tmp/notes.txt", "tmp/data/x", "tmp/abc.12.3", "model.py"]
        for rel in keep:
            os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
            with open(os.path.join(folder, rel), "w") as f:
                f.write("mine")
        dead = os.path.join(folder, "tmp", "0123456789abcdef.999999999.1")  # no such process
        os.makedirs(dead)
        assert dopa.cache_clear(folder) == 0
        for rel in keep:
            assert os.path.exists(os.path.join(folder, rel)), rel
        assert not os.path.exists(dead), "a dead build's temporary folder was not removed"


def test_spec_errors():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bad.dopa")
        with open(path, "w") as f:
            f.write(BAD)
        e = expect_raises(dopa.SpecError, lambda: dopa.compile(path), "undefined_name")
        assert isinstance(e, ValueError)
        assert re.search(r"bad\.dopa:\d+:\d+", str(e)), str(e)
    expect_raises(ValueError, lambda: dopa.compile(TINY_PATH, Q=4), "Q")


def test_load_checkpoint_params():
    net = tiny()
    rng = np.random.default_rng(9)
    shapes = net.param_shapes
    values = {name: rng.normal(size=shapes[name]).astype(np.float32) for name in net.param_names}
    with tempfile.TemporaryDirectory() as tmp:
        exported = os.path.join(tmp, "params.st")
        save_safetensors(exported, dict(values, **{"output.y": np.zeros((1, 1, 2), np.float32)}),
                         {"format": "dopa-params"})
        assert sorted(dopa.load_checkpoint_params(net, exported)) == sorted(values)
        for name in values:
            close(net.params[name], values[name], 0, name)
        # A checkpoint: the flat parameters and their layout, into a float64 network.
        layout = ",".join(f"{n}:{'x'.join(str(d) for d in shapes[n])}" for n in net.param_names)
        flat = np.concatenate([values[n].reshape(-1) for n in net.param_names])
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        save_safetensors(os.path.join(run, "checkpoint.st"),
                         {"params": flat, "adam.m": np.zeros_like(flat)},
                         {"format": "dopa-checkpoint", "param_layout": layout})
        n64 = tiny("float64")
        dopa.load_checkpoint_params(n64, run)
        close(n64.flat_params, flat.astype(np.float64), 0, "checkpoint params")
        # Errors name the file and the tensor; nothing is written before everything is checked.
        partial = os.path.join(tmp, "partial.st")
        save_safetensors(partial, {"w": values["w"] + 1})
        before = net.flat_params.copy()
        expect_raises(ValueError, lambda: dopa.load_checkpoint_params(net, partial), "partial.st",
                      "missing", "alpha")
        assert np.array_equal(net.flat_params, before)
        assert dopa.load_checkpoint_params(net, partial, strict=False) == ["w"]
        close(net.params["w"], values["w"] + 1, 0, "non-strict w")
        wrong = os.path.join(tmp, "wrong.st")
        save_safetensors(wrong, dict(values, w=np.zeros((H + 1, H + 1), np.float32)))
        expect_raises(ValueError, lambda: dopa.load_checkpoint_params(net, wrong), "'w'",
                      f"({H + 1}, {H + 1})")
        corrupt = os.path.join(tmp, "corrupt.st")
        with open(exported, "rb") as f:
            data = f.read()
        with open(corrupt, "wb") as f:
            f.write(data[:len(data) - 10])
        expect_raises(ValueError, lambda: dopa.load_checkpoint_params(net, corrupt), "corrupt.st")
        expect_raises(TypeError, lambda: dopa.load_checkpoint_params(object(), exported))


TESTS = [
    test_names_and_shapes,
    test_params_are_zero_copy_views,
    test_init_params,
    test_forward_matches_numpy_model,
    test_forward_float32,
    test_gradients_match_finite_differences,
    test_float32_agrees_with_float64,
    test_carried_state,
    test_get_and_set_state,
    test_backward_needs_its_forward,
    test_argument_errors,
    test_index_inputs,
    test_threads,
    test_cache,
    test_spec_errors,
    test_load_checkpoint_params,
]


def run_tests(tests):
    """Run every test, report PASS/FAIL for each (a failure does not stop the rest); the exit code."""
    failed = 0
    for test in tests:
        try:
            test()
            print(f"PASS {test.__name__}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next test runs
            failed += 1
            print(f"FAIL {test.__name__}: {type(e).__name__}: {e}\n{traceback.format_exc()}",
                  flush=True)
    print(f"{len(tests) - failed} of {len(tests)} tests passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_tests(TESTS))
