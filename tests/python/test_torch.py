#!/usr/bin/env python3
"""test_torch.py - dopa.torch: DopaModule under autograd, optimizers and PyTorch around it.

Checks that the module's parameters share memory with the network, torch.autograd.gradcheck in
float64 (parameters and inputs), SGD steps that train the network in place, a layer before the
module trained through the network's input gradients, second backwards and interleaved forwards (replayed), carried state,
checkpoint loading, argument errors, dropout masks (shared ones are buffers, not parameters), and
the cue-reward network with retroactive neuromodulation
(examples/cue_reward/modul.dopa at H=8) against the PyTorch reference of
bench/reference/backpropamine.py: outputs and every parameter's gradient. Run by CTest
(python.torch); prints [SKIP] and exits 0 without PyTorch. Shares its specs and helpers with
test_module.py.
"""
import os
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError:
    print("[SKIP] torch not installed")
    sys.exit(0)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for test_module
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_module import (EMB_PATH, SOURCE_DIR, TINY_PATH, close, expect_raises,  # noqa: E402
                         run_tests, save_safetensors, tiny_reference, write_spec)

import dopa  # noqa: E402
import dopa.torch  # noqa: E402
from dopa.torch import DopaModule  # noqa: E402

H = 4


def tiny_module(dtype=torch.float64, **kw):
    return DopaModule(TINY_PATH, H=H, dtype=dtype, **kw)


def tiny_loss(outputs, wy, we):
    y, energy = outputs
    return (y * wy).sum() + (energy * we).sum()


def grads_of(module):
    return {name: p.grad.clone() for name, p in module.named_parameters()}


def close_grads(a, b, tol, what):
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    for name in a:
        close(a[name].numpy(), b[name].numpy(), tol, f"{what}: {name}")


# ------------------------------------------------------------------------------------------------


def test_parameters_share_memory():
    m = tiny_module()
    names = [name for name, _ in m.named_parameters()]
    assert sorted(names) == sorted(["w", "alpha", "eta", "i2h_weight", "i2h_bias", "h2o_weight",
                                    "h2o_bias"]), names
    assert m.spec_names["i2h_weight"] == "i2h.weight" and m.torch_names["h2o.bias"] == "h2o_bias"
    for torch_name, p in m.named_parameters():
        view = m.net.params[m.spec_names[torch_name]]
        assert p.dtype == torch.float64 and tuple(p.shape) == view.shape, torch_name
        assert p.data_ptr() == view.__array_interface__["data"][0], torch_name
    with torch.no_grad():
        m.w[0, 1] = 0.75
    assert m.net.params["w"][0, 1] == 0.75
    m.net.params["eta"][...] = 0.2
    assert m.eta.item() == 0.2
    # Wrapping an existing network shares its buffer too, in its dtype.
    net = dopa.compile(TINY_PATH, H=H)
    wrapped = DopaModule(net)
    assert wrapped.dtype == torch.float32 and wrapped.net is net
    assert wrapped.w.data_ptr() == net.params["w"].__array_interface__["data"][0]
    assert "Tiny" in repr(wrapped)


def test_forward_matches_network():
    m = tiny_module()
    x = torch.rand(5, 3, 3, dtype=torch.float64) * 2 - 1
    y, energy = m(x)
    assert y.shape == (5, 3, 2) and energy.shape == (5, 3) and y.dtype == torch.float64
    assert y.requires_grad and energy.requires_grad
    params = {k: np.array(v) for k, v in m.net.params.items()}
    ry, re_, _, _ = tiny_reference(params, x.numpy())
    close(y.detach().numpy(), ry, 1e-12, "y")
    close(energy.detach().numpy(), re_, 1e-12, "energy")
    by_name = m(x=x)
    close(by_name[0].detach().numpy(), ry, 1e-12, "by name")
    with torch.no_grad():
        y2, _ = m(x)
    assert not y2.requires_grad


def test_gradcheck():
    m = tiny_module(seed=3)
    x = torch.rand(4, 2, 3, dtype=torch.float64) * 2 - 1
    params = tuple(m.parameters())

    def fn(*ps):
        # gradcheck perturbs the tensors it is given in place: the module's own parameters, which
        # are the network's buffer, so the network sees each perturbation.
        assert all(a is b for a, b in zip(ps, params))
        return m(x)

    assert torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-6, rtol=1e-4)
    # With respect to the inputs too.
    xs = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda inp: m(inp), (xs,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_equal_numpy_api():
    m = tiny_module()
    x = torch.rand(4, 2, 3, dtype=torch.float64) * 2 - 1
    wy, we = torch.randn(4, 2, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    tiny_loss(m(x), wy, we).backward()
    net = m.net
    net.zero_grad()
    net.forward(x.numpy())
    net.backward(wy.numpy(), we.numpy())
    for spec_name, p in m.named_spec_parameters():
        close(p.grad.numpy(), net.grads[spec_name], 0, spec_name)


def test_sgd_trains_the_network_in_place():
    m = tiny_module(torch.float32)
    x = torch.rand(5, 3, 3) * 2 - 1
    target = torch.tensor([0.5, -0.5]).expand(5, 3, 2)
    w_before = m.net.params["w"].copy()
    opt = torch.optim.SGD(m.parameters(), lr=0.2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        y, _ = m(x)
        loss = ((y - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[1] < losses[0] and losses[-1] < 0.5 * losses[0], losses
    assert not np.array_equal(m.net.params["w"], w_before)
    assert np.array_equal(m.net.params["w"], m.w.detach().numpy())
    assert m.w.data_ptr() == m.net.params["w"].__array_interface__["data"][0]
    # The network itself, through the NumPy API, computes with the trained values.
    y_net, _ = m.net.forward(x.numpy())
    close(y_net, m(x)[0].detach().numpy(), 0, "network after training")


def test_layer_before_the_module_trains():
    # An encoder before the network learns through the network's input gradients; its gradient
    # equals the one autograd computes for the same composition through a float64 finite check.
    torch.manual_seed(0)
    m = tiny_module(torch.float64)
    layer = torch.nn.Linear(3, 3).double()
    x0 = torch.rand(4, 2, 3, dtype=torch.float64)
    z = layer(x0)
    assert not x0.requires_grad and z.requires_grad
    y, _ = m(z)
    loss = (y ** 2).sum()
    loss.backward()
    g = layer.weight.grad.clone()
    assert g.abs().max() > 0
    eps = 1e-6
    with torch.no_grad():
        for (i, j) in [(0, 0), (2, 1)]:
            w0 = layer.weight[i, j].item()
            layer.weight[i, j] = w0 + eps
            up = (m(layer(x0))[0] ** 2).sum().item()
            layer.weight[i, j] = w0 - eps
            down = (m(layer(x0))[0] ** 2).sum().item()
            layer.weight[i, j] = w0
            fd = (up - down) / (2 * eps)
            assert abs(fd - g[i, j].item()) <= 1e-6 * max(1.0, abs(fd)), (i, j, fd, g[i, j])
    with torch.no_grad():  # no graph is built: nothing to differentiate
        m(z)


def test_second_backward_and_interleaved_forwards():
    m = tiny_module()
    x1 = torch.rand(4, 2, 3, dtype=torch.float64) * 2 - 1
    x2 = torch.rand(3, 2, 3, dtype=torch.float64) * 2 - 1
    wy1, we1 = torch.randn(4, 2, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    wy2, we2 = torch.randn(3, 2, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    loss = tiny_loss(m(x1), wy1, we1)
    loss.backward(retain_graph=True)
    first = grads_of(m)
    m.zero_grad()
    loss.backward()  # the record was consumed: replayed
    close_grads(grads_of(m), first, 0, "second backward")
    # Two forwards, then one backward of both losses: the earlier one is replayed.
    m.zero_grad()
    tiny_loss(m(x2), wy2, we2).backward()
    second = grads_of(m)
    m.zero_grad()
    (tiny_loss(m(x1), wy1, we1) + tiny_loss(m(x2), wy2, we2)).backward()
    close_grads(grads_of(m), {k: first[k] + second[k] for k in first}, 1e-12, "two forwards")


def test_carried_state():
    m = tiny_module(carry_state=True)
    x = torch.rand(6, 2, 3, dtype=torch.float64) * 2 - 1
    wy, we = torch.randn(6, 2, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    a = m(x[:3])
    b = m(x[3:])
    m.reset_state()
    whole = m(x)
    for k in range(2):
        close(torch.cat([a[k], b[k]]).detach().numpy(), whole[k].detach().numpy(), 1e-14,
              f"output {k}")
    # Truncated BPTT over two windows, each backward on its own...
    m.reset_state()
    m.zero_grad()
    tiny_loss(m(x[:3]), wy[:3], we[:3]).backward()
    tiny_loss(m(x[3:]), wy[3:], we[3:]).backward()
    separate = grads_of(m)
    after = m.net.get_state()
    # ... equals both windows' losses in one backward (the first window replayed from the start),
    # and the network's state is the second window's end again afterwards.
    m.reset_state()
    m.zero_grad()
    la = tiny_loss(m(x[:3]), wy[:3], we[:3])
    lb = tiny_loss(m(x[3:]), wy[3:], we[3:])
    (la + lb).backward()
    close_grads(grads_of(m), separate, 1e-12, "windows in one backward")
    for name, value in m.net.get_state().items():
        close(value, after[name], 0, f"state {name} after the replay")
    # A continuing window whose record was replaced is replayed from its saved start state: the
    # second window's gradient after a third forward equals the one taken right away.
    m.reset_state()
    with torch.no_grad():
        m(x[:3])
    m.zero_grad()
    tiny_loss(m(x[3:]), wy[3:], we[3:]).backward()
    direct = grads_of(m)
    m.reset_state()
    m.zero_grad()
    with torch.no_grad():
        m(x[:3])
    lb = tiny_loss(m(x[3:]), wy[3:], we[3:])
    m(x[:2])  # replaces the record
    lb.backward()
    close_grads(grads_of(m), direct, 1e-12, "window replayed from its start state")
    # The batch of a carried state cannot change without reset_state().
    expect_raises(ValueError, lambda: m(x[:, :1]), "batch")


def test_index_inputs_and_one_output():
    m = DopaModule(EMB_PATH)
    assert m.dtype == torch.float32
    tok = torch.randint(0, 3, (4, 3))
    u = torch.rand(4, 3, 2)
    y = m(tok, u)
    assert isinstance(y, torch.Tensor) and y.shape == (4, 3, 4)
    y.sum().backward()
    g = m.enc_weight.grad
    assert g.shape == (5, 3) and bool((g[:3] != 0).any()) and not bool((g[3:] != 0).any())
    close(m(tok.float(), u).detach().numpy(), y.detach().numpy(), 0, "ids as floats")
    expect_raises(TypeError, lambda: m(tok.double(), u), "torch.float32", "integer")
    expect_raises(ValueError, lambda: m(tok + 5, u), "tok")


def test_argument_errors():
    m = tiny_module(torch.float32)
    x = torch.rand(4, 2, 3)
    expect_raises(TypeError, lambda: m(x.double()), "torch.float64", "torch.float32")
    expect_raises(TypeError, lambda: m(), "1 input (x), got 0")
    expect_raises(TypeError, lambda: m(x.numpy()), "torch.Tensor")
    expect_raises(ValueError, lambda: m(q=x), "'q'")
    expect_raises(ValueError, lambda: m(torch.rand(4, 2, 5)), "(T, B, 3)")
    net = dopa.compile(TINY_PATH, H=H)
    expect_raises(ValueError, lambda: DopaModule(net, dtype=torch.float64), "float32")
    expect_raises(TypeError, lambda: DopaModule(net, H=H), "compile options")
    converted = tiny_module(torch.float32)
    converted.double()  # new float64 storage for every parameter; the network keeps its float32
    expect_raises(RuntimeError, lambda: converted(x), "no longer shares memory", "dtype=")


def test_double_backward_is_refused():
    # dopa's backward is not itself differentiable: a second-order gradient must err, never come
    # out silently without dopa's share.
    m = tiny_module()
    x = torch.rand(4, 2, 3, dtype=torch.float64, requires_grad=True)
    y, energy = m(x)
    loss = (y ** 2).sum() + (x ** 3).sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    expect_raises(RuntimeError, lambda: torch.autograd.grad(g.sum(), x), "once_differentiable")


def test_load_checkpoint_params():
    m = tiny_module()
    rng = np.random.default_rng(12)
    values = {n: rng.normal(size=s) for n, s in m.net.param_shapes.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "params.st")
        save_safetensors(path, values, {"format": "dopa-params"})
        version = m.w._version
        loaded = dopa.torch.load_checkpoint_params(m, path)
        assert sorted(loaded) == sorted(values)
        assert m.w._version > version  # written through autograd's view of the parameter
        for spec_name, p in m.named_spec_parameters():
            close(p.detach().numpy(), values[spec_name], 0, spec_name)
        net = dopa.compile(TINY_PATH, H=H, dtype="float64")
        dopa.torch.load_checkpoint_params(net, path)
        close(net.flat_params, m.net.flat_params, 0, "into a Network")


MASKED = """\
network Masked {
  dims V = 5, E = 3, H = 4
  input  tok : int
  mask   drop_e : [V, 1] ~ dropout(0.5) shared
  mask   drop_h : [H] ~ dropout(0.25)
  state  h : [H] = 0
  embedding enc : V -> E
  linear e2h : E -> H
  param  w : [H, H] ~ uniform(-0.5, 0.5)
  step {
    hn = tanh(e2h(enc(tok) * drop_e[tok, :]) + w @ h)
    h' = hn
    output y = hn * drop_h
  }
}
"""


def test_dropout_masks():
    """A shared mask is a buffer (the caller's draw, shared with the network), not a parameter: no
    optimizer or weight decay changes it; a per-element mask is an input."""
    m = DopaModule(write_spec("masked.dopa", MASKED), dtype=torch.float64)
    assert m.net.mask_rates == {"drop_e": 0.5, "drop_h": 0.25}
    names = [n for n, _ in m.named_parameters()]
    assert "drop_e" not in names and sorted(names) == sorted(
        ["enc_weight", "e2h_weight", "e2h_bias", "w"]), names
    assert [n for n, _ in m.named_buffers()] == ["drop_e"]
    assert [n for n, _ in m.named_spec_masks()] == ["drop_e"]
    close(m.drop_e.numpy(), np.ones((5, 1)), 0, "a shared mask starts at 1")
    tok = torch.tensor([[0, 1, 2], [3, 4, 0]])
    drop_h = torch.ones(2, 3, 4, dtype=torch.float64)
    y_all = m(tok, drop_h).detach().clone()
    m.drop_e[1] = 0.0  # word 1's embedding dropped: the network sees it (shared memory)
    assert m.net.params["drop_e"][1, 0] == 0.0
    y = m(tok, drop_h)
    assert not torch.equal(y.detach()[0, 1], y_all[0, 1])  # step 0, stream 1 reads word 1
    assert torch.equal(y.detach()[0, 0], y_all[0, 0])
    opt = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=0.5)
    opt.zero_grad()
    y.sum().backward()
    opt.step()
    close(m.drop_e.numpy(), np.array([[1.0], [0.0], [1.0], [1.0], [1.0]]), 0,
          "weight decay leaves the mask alone")
    assert m.w.grad is not None and bool((m.w.grad != 0).any())
    # Gradients through the masks: float64 gradcheck of the learned parameters; a mask is a
    # random constant to dopa (dsl/LangRef.md 3.8), so an input mask's gradient is zero.
    drop_h = torch.tensor(np.random.default_rng(3).choice([0.0, 4 / 3], size=(2, 3, 4)))
    assert torch.autograd.gradcheck(lambda *p: m(tok, drop_h), tuple(m.parameters()), eps=1e-6,
                                    atol=1e-7)
    d = drop_h.clone().requires_grad_()
    m(tok, d).sum().backward()
    assert d.grad is not None and not bool((d.grad != 0).any())
    # A mask redrawn in place before the backward: PyTorch's version check, not a wrong gradient.
    y = m(tok, drop_h.detach())
    m.drop_e.fill_(1.0)
    expect_raises(RuntimeError, lambda: y.sum().backward(), "inplace")


def test_matches_pytorch_reference():
    """examples/cue_reward/modul.dopa against bench/reference/backpropamine.py's RLNet('modul'):
    parameters large enough that the plastic weights saturate their clip, as
    tests/pytorch/compare_pytorch.py draws them."""
    sys.path.insert(0, os.path.join(SOURCE_DIR, "bench", "reference"))
    import backpropamine as ref

    I, Hs, A, T, B = 27, 8, 2, 5, 2
    spec = os.path.join(SOURCE_DIR, "examples", "cue_reward", "modul.dopa")
    m = DopaModule(spec, H=Hs, dtype=torch.float64)
    rng = np.random.default_rng(13)
    params = {}
    for name, shape in m.net.param_shapes.items():
        if name == "w":
            params[name] = rng.uniform(-0.5, 0.5, size=shape)
        elif name == "alpha":
            params[name] = rng.uniform(-1.0, 1.0, size=shape)
        elif name == "etaet":
            params[name] = np.array(rng.uniform(0.3, 0.6))
        else:
            params[name] = rng.uniform(-1.0, 1.0, size=shape)
    with torch.no_grad():
        for name, p in m.named_spec_parameters():
            p.copy_(torch.from_numpy(params[name]))
    model = ref.RLNet("modul", I, Hs, A).double()
    model.load_dopa(params)

    x = rng.uniform(-1, 1, size=(T, B, I))
    dy = {"logits": rng.normal(size=(T, B, A)), "value": rng.normal(size=(T, B, 1)),
          "DAout": rng.normal(size=(T, B, 1))}
    want = model(torch.from_numpy(x))
    sum((want[k] * torch.from_numpy(dy[k])).sum() for k in dy).backward()
    got = dict(zip(m.net.output_names, m(torch.from_numpy(x))))
    sum((got[k] * torch.from_numpy(dy[k])).sum() for k in dy).backward()

    worst = 0.0
    rows = [(k, got[k].detach().numpy(), want[k].detach().numpy()) for k in dy]
    rows += [(name, getattr(m, m.torch_names[name]).grad.numpy(), p.grad.numpy())
             for name, p in model.named_parameters()]
    assert len(rows) == len(dy) + len(params)
    for name, a, b in rows:
        err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
        worst = max(worst, err)
        assert err <= 1e-9, f"{name}: max relative error {err:.3g}"
    print(f"  cue_reward/modul H={Hs}: {len(rows)} tensors, worst relative error {worst:.2e}, "
          f"{model.saturated} trace entries at the clip bound")


TESTS = [
    test_parameters_share_memory,
    test_forward_matches_network,
    test_gradcheck,
    test_gradients_equal_numpy_api,
    test_sgd_trains_the_network_in_place,
    test_layer_before_the_module_trains,
    test_second_backward_and_interleaved_forwards,
    test_carried_state,
    test_index_inputs_and_one_output,
    test_argument_errors,
    test_load_checkpoint_params,
    test_dropout_masks,
    test_matches_pytorch_reference,
]


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(run_tests(TESTS))
