"""dopa.torch - a dopa network as a torch.nn.Module, trained with PyTorch's autograd and optimizers.

DopaModule(spec, H=64) compiles a spec (or wraps an existing dopa.Network) and registers one
nn.Parameter per learned spec parameter ('.' in a spec name becomes '_': "i2h.weight" is
`i2h_weight`; `spec_names` maps back) and a buffer per shared dropout mask (a spec parameter that is
not learned: no optimizer or weight decay touches it; write each draw into it). The parameters share
memory with the network's own buffer
(torch.from_numpy of its views), so an optimizer's in-place update is the network's update, with
no copies. Calling the module runs the network over CPU tensors [T, B, ...] and records the steps;
autograd's backward runs dopa's backpropagation through time and hands PyTorch the parameter
gradients and the gradients of the inputs that require them (the network is compiled with input
gradients), so a dopa network composes with PyTorch layers before it (encoders) and after it
(heads, losses).

A network records one forward's steps at a time. When autograd asks for the gradient of a forward
whose steps are no longer the recorded ones - a second backward through the same graph
(retain_graph=True, torch.autograd.gradcheck), or another forward of the same network in between
(two windows' losses summed) - that forward is replayed first from its saved inputs and start state
(one more forward pass; the same gradients), and the network's current state is restored after.
The parameters are saved for backward, so changing them in place between a forward and its
backward is PyTorch's usual error.
"""
import numpy as np

try:
    import torch
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError("dopa.torch needs PyTorch (Debian: apt install python3-torch)") from e

from torch.autograd.function import once_differentiable

from . import Network, _checkpoint_values, _dtype_name
from . import compile as _compile
from . import load_checkpoint_params as _load_into_network

__all__ = ["DopaModule", "load_checkpoint_params"]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _as_numpy(x):
    """A CPU tensor's values as an ndarray (shared when possible; dopa copies what it must)."""
    return x.detach().numpy()


class _DopaFunction(torch.autograd.Function):
    """net.forward in forward, net.backward in backward. Called as
    apply(net, reset, num_inputs, learned, *inputs, *params, *masks) with the learned parameters
    (names `learned`, in net.param_names order) and then the shared dropout masks' buffers: they are
    inputs of the node so that autograd routes the parameters' gradients and PyTorch's version check
    sees a mask or parameter changed in place before the backward (the network reads its own
    buffer, which they share, when it replays steps in the backward)."""

    @staticmethod
    def forward(ctx, net, reset, num_inputs, learned, *tensors):
        inputs = tensors[:num_inputs]
        start = net.get_state() if not reset and net.batch > 0 else None
        outputs = net.forward(*[_as_numpy(x) for x in inputs], reset=reset)
        ctx.net, ctx.num_inputs, ctx.start, ctx.learned = net, num_inputs, start, learned
        ctx.record_id = net.record_id  # which record of steps holds this forward's
        ctx.set_materialize_grads(False)  # None for an unused output: dopa takes it as zero
        ctx.save_for_backward(*tensors)
        return tuple(torch.from_numpy(y) for y in outputs)

    @staticmethod
    @once_differentiable  # dopa's backward is not itself differentiable: a double backward errs
    def backward(ctx, *grad_outputs):
        saved = ctx.saved_tensors  # PyTorch's check: nothing was modified in place since forward
        net, n = ctx.net, ctx.num_inputs
        dtype = _TORCH_DTYPES[net.dtype.name]
        grads = [None if g is None else _as_numpy(g.to(dtype).contiguous()) for g in grad_outputs]
        if net.record_id != ctx.record_id:
            dx = _replay(ctx, saved[:n], grads)
        else:
            net.zero_grad()
            dx = net.backward(*grads)
        input_grads = tuple(torch.from_numpy(dx[k]) if ctx.needs_input_grad[4 + k] and
                            dx[k] is not None else None for k in range(n))
        views = net.grads
        param_grads = []
        for i, name in enumerate(ctx.learned):
            needed = ctx.needs_input_grad[4 + n + i]
            param_grads.append(torch.from_numpy(views[name].copy()) if needed else None)
        masks = (None,) * (len(saved) - n - len(ctx.learned))  # no gradient
        return (None, None, None, None) + input_grads + tuple(param_grads) + masks


def _replay(ctx, inputs, grads):
    """The backward of a forward whose record is gone: run it again from its start, backward, and
    put back the state the network had (also when the replay fails). Returns the input gradients."""
    net = ctx.net
    current = net.get_state() if net.batch > 0 else None
    arrays = [_as_numpy(x) for x in inputs]
    try:
        if not ctx.start:  # a fresh episode, or a network without states
            net.forward(*arrays, reset=True)
        else:
            net.set_state(ctx.start)
            net.forward(*arrays, reset=False)
        net.zero_grad()
        return net.backward(*grads)
    finally:
        if current:
            net.set_state(current)


class DopaModule(torch.nn.Module):
    """A dopa network as a torch.nn.Module.

    DopaModule(spec, network=None, dtype=torch.float32, include_dirs=None, cache_dir=None, seed=0,
               carry_state=False, **dims)  compiles like dopa.compile();
    DopaModule(net, carry_state=False)     wraps an existing dopa.Network (its dtype).

    module(*inputs) (or module(**inputs) by name): CPU tensors [T, B, *shape] of the module's
    dtype (index inputs: integer tensors too); gradients flow into those that require grad. Returns the outputs [T, B,
    *shape] as a tuple, or the tensor itself when the network has one output. Each call starts a
    new episode, unless carry_state=True: then each call continues from the state the previous one
    left (truncated backpropagation: no gradient flows into the carried state) until
    reset_state().
    """

    def __init__(self, spec, network=None, dtype=None, include_dirs=None, cache_dir=None, seed=0,
                 carry_state=False, **dims):
        super().__init__()
        if isinstance(spec, Network):
            if network is not None or include_dirs is not None or cache_dir is not None or \
                    seed != 0 or dims:
                raise TypeError("DopaModule(net): network, include_dirs, cache_dir, seed and "
                                "dimensions are compile options; they apply to a spec path only")
            net = spec
            if dtype is not None and _dtype_name(dtype) != net.dtype.name:
                raise ValueError(f"DopaModule(net): dtype {dtype} differs from the network's "
                                 f"({net.dtype.name})")
        else:
            net = _compile(spec, network=network,
                           dtype=_dtype_name(torch.float32 if dtype is None else dtype),
                           include_dirs=include_dirs, cache_dir=cache_dir, seed=seed, **dims)
        self.net = net
        self.dtype = _TORCH_DTYPES[net.dtype.name]
        self.carry_state = bool(carry_state)
        self._fresh = True
        self.spec_names = {}  # torch name -> spec name
        self.torch_names = {}  # spec name -> torch name
        self._addresses = {}
        masks = net.mask_rates
        self._learned = tuple(name for name in net.param_names if name not in masks)
        for name, view in net.params.items():
            torch_name = name.replace(".", "_")
            if torch_name in self.spec_names or hasattr(self, torch_name):
                raise ValueError(f"DopaModule: parameter '{name}' of {net.name} would be registered "
                                 f"as '{torch_name}', which is already taken")
            if name in masks:  # a shared dropout mask: the caller's draw, never learned
                tensor = torch.from_numpy(view)
                self.register_buffer(torch_name, tensor)
            else:
                tensor = torch.nn.Parameter(torch.from_numpy(view))
                self.register_parameter(torch_name, tensor)
            self.spec_names[torch_name] = name
            self.torch_names[name] = torch_name
            self._addresses[torch_name] = tensor.data_ptr()

    def extra_repr(self):
        return (f"{self.net.name}, {self.dtype}, {self.net.num_params} parameters, "
                f"carry_state={self.carry_state}")

    def reset_state(self):
        """Start a new episode at the next call (for carry_state=True)."""
        self._fresh = True

    def named_spec_parameters(self):
        """(spec name, parameter) pairs of the learned parameters, in the network's buffer order."""
        return [(name, p) for name, p in zip(self._learned, self._shared_params())]

    def named_spec_masks(self):
        """(spec name, buffer) pairs of the shared dropout masks (write each draw into them)."""
        self._shared_params()  # the same check: still the network's memory
        return [(name, self._buffers[self.torch_names[name]]) for name in self.net.param_names
                if name not in self._learned]

    def forward(self, *inputs, **named):
        net = self.net
        names = net.input_names
        if named:
            if inputs:
                raise TypeError("DopaModule: pass the inputs positionally or by name, not both")
            unknown = [k for k in named if k not in names]
            if unknown:
                raise ValueError(f"DopaModule: network '{net.name}' has no input "
                                 f"'{unknown[0]}' (inputs: {', '.join(names)})")
            missing = [k for k in names if k not in named]
            if missing:
                raise ValueError(f"DopaModule: missing input '{missing[0]}'")
            inputs = tuple(named[k] for k in names)
        if len(inputs) != len(names):
            raise TypeError(f"DopaModule: network '{net.name}' takes {len(names)} input"
                            f"{'' if len(names) == 1 else 's'} ({', '.join(names)}), got "
                            f"{len(inputs)}")
        index_inputs = set(net.index_inputs)
        for name, x in zip(names, inputs):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"DopaModule: input '{name}' must be a torch.Tensor, not "
                                f"{type(x).__name__}")
            if x.device.type != "cpu":
                raise RuntimeError(f"DopaModule: input '{name}' is on {x.device}; dopa.torch runs "
                                   f"on the CPU (.cpu() moves it)")
            integer = not x.dtype.is_floating_point and not x.dtype.is_complex and \
                x.dtype != torch.bool
            if x.dtype != self.dtype and not (name in index_inputs and integer):
                raise TypeError(f"DopaModule: input '{name}' has dtype {x.dtype}, expected "
                                f"{self.dtype} (the network's dtype)" +
                                (" or an integer dtype" if name in index_inputs else ""))
        params = self._shared_params()
        reset = self._fresh or not self.carry_state
        masks = [self._buffers[self.torch_names[name]] for name in self.net.param_names
                 if name not in self._learned]
        outputs = _DopaFunction.apply(net, reset, len(inputs), self._learned, *inputs, *params,
                                      *masks)
        self._fresh = False
        return outputs[0] if len(outputs) == 1 else outputs

    def _shared_params(self):
        """The learned parameters in net.param_names order, checked (with the mask buffers) to
        still share the network's buffer."""
        out = []
        for spec_name in self.net.param_names:
            torch_name = self.torch_names[spec_name]
            learned = spec_name in self._learned
            p = (self._parameters if learned else self._buffers).get(torch_name)
            if p is None or p.device.type != "cpu" or p.dtype != self.dtype or \
                    p.data_ptr() != self._addresses[torch_name]:
                raise RuntimeError(
                    f"DopaModule: parameter '{torch_name}' no longer shares memory with the dopa "
                    f"network, which computes with its own buffer (was the module converted with "
                    f".to(), .double(), .float() or .cuda(), or the parameter replaced?). Create "
                    f"the module with the dtype you need (dtype=torch.float64) instead.")
            if learned:
                out.append(p)
        return out


def load_checkpoint_params(module_or_net, path, strict=True):
    """Load parameters by name from a `dopa export` / `dopa grad --save-params` file or a `dopa
    train` checkpoint into a DopaModule (through its parameters, so autograd sees the change) or a
    dopa.Network; returns the names loaded. See dopa.load_checkpoint_params."""
    if not isinstance(module_or_net, DopaModule):
        return _load_into_network(module_or_net, path, strict)
    module = module_or_net
    values = _checkpoint_values(module.net, path, strict)
    params = dict(module.named_spec_parameters() + module.named_spec_masks())
    with torch.no_grad():
        for name, value in values.items():
            params[name].copy_(torch.as_tensor(np.array(value, dtype=module.net.dtype)))
    return list(values)
