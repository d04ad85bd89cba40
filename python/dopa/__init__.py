"""dopa - compile a plastic recurrent network spec and run it on NumPy arrays.

`dopa.compile(spec, H=64)` turns a `.dopa` spec into a `dopa.Network`: dopac's pipeline runs in this
process, the C++ it generates is compiled by the system compiler into a shared library kept in a
cache folder (`dopa.cache_dir()`: the first use of a spec at some dimensions takes seconds, later
ones load at once, also from other processes), and the library is loaded. The network runs an
episode forward over [T, B, ...] arrays and backpropagates through time; its parameters and
gradients are NumPy views of its own buffers. `dopa.torch` wraps a network as a torch.nn.Module.

    import numpy as np
    import dopa
    net = dopa.compile("examples/cue_reward/modul.dopa", H=64)       # float32; dtype="float64"
    x = np.zeros((120, 30, 27), np.float32)                          # [T, B, *input shape]
    logits, value, da = net.forward(x)                               # [T, B, *output shape] each
    net.zero_grad()
    net.backward(np.ones_like(logits), None, None)                   # dLoss/d outputs; None: zero
    net.grads["w"]                                                   # dLoss/dw, a view

Arrays must have the network's dtype exactly (a float64 array for a float32 network is a
TypeError, not a silent cast); index inputs (`input tok : int`) also take integer arrays.
Errors: dopa.SpecError (a ValueError) carries dopac's diagnostics (file:line:col); dopa.BuildError
(a RuntimeError) a failed C++ compile and its log; wrong arguments raise TypeError or ValueError
naming the argument.
"""
import errno
import json
import numbers
import os
import struct

import numpy as np

from . import _dopa
from ._dopa import BuildError, Network, SpecError

__all__ = [
    "BuildError",
    "Network",
    "SpecError",
    "cache_clear",
    "cache_dir",
    "cache_list",
    "compile",
    "load_checkpoint_params",
]

_DOCS = {
    SpecError: "A spec with errors: str(e) holds dopac's diagnostics (file:line:col, the source "
               "line, a caret, notes). A subclass of ValueError.",
    BuildError: "The C++ compiler failed on the generated code or could not run: str(e) names it "
                "and its log. A subclass of RuntimeError.",
}
for _cls in (Network, SpecError, BuildError):
    try:  # cosmetic: tracebacks say dopa.SpecError, help() shows the docs
        _cls.__module__ = "dopa"
        if _cls in _DOCS:
            _cls.__doc__ = _DOCS[_cls]
    except (AttributeError, TypeError):
        pass

_COMPILE_KEYWORDS = "network, dtype, include_dirs, cache_dir and seed"


def compile(spec, network=None, dtype="float32", include_dirs=None, cache_dir=None, seed=0,
            **dims):
    """Compile a network of a spec (or load it from the cache) and return a dopa.Network.

    spec          path of the .dopa file
    network       which network of the file (None: its only one)
    dtype         "float32" or "float64" (also numpy.float32/float64, torch.float32/float64):
                  the precision of the parameters, inputs and outputs; one compiled library serves
                  both
    include_dirs  folders searched by `include "..."` (after the including file's own folder)
    cache_dir     the cache folder (None: dopa.cache_dir())
    seed          the parameters are initialized from the spec's initializers with this seed
                  (net.init_params(seed) again later)
    **dims        dimension overrides, as dopac's -D: H=64, I=27 (positive ints)

    The first compile of a spec at given dimensions runs the C++ compiler (seconds; a line on
    stderr says so); later ones, in any process, load the cached library (net.from_cache).
    Raises FileNotFoundError (no spec), SpecError (diagnostics), BuildError (compiler),
    TypeError/ValueError (arguments).
    """
    spec_path = os.fspath(spec)
    if not isinstance(spec_path, str):
        spec_path = os.fsdecode(spec_path)
    if not os.path.isfile(spec_path):
        raise FileNotFoundError(errno.ENOENT, "dopa.compile(): no such spec file", spec_path)
    if network is not None and not isinstance(network, str):
        raise TypeError(f"dopa.compile(): network must be a str (a network's name), not "
                        f"{type(network).__name__}")
    overrides = {}
    for name, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"dopa.compile(): dimension {name}={value!r} must be an int (keyword "
                            f"arguments other than {_COMPILE_KEYWORDS} are dimension overrides)")
        if value <= 0:
            raise ValueError(f"dopa.compile(): dimension {name}={value} must be a positive integer")
        overrides[name] = int(value)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"dopa.compile(): seed must be an int, not {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"dopa.compile(): seed must be in [0, 2**64), not {seed}")
    return _dopa._compile(spec_path, overrides, network or "", _dtype_name(dtype),
                          _paths(include_dirs, "include_dirs"), _cache_arg(cache_dir), int(seed))


def cache_dir():
    """The default cache folder: $DOPA_CACHE_DIR, else $XDG_CACHE_HOME/dopa, else ~/.cache/dopa."""
    return _dopa.cache_dir()


def cache_list(cache_dir=None):
    """The entries of a cache folder (default: dopa.cache_dir()), newest first, as dicts:
    key, dir, spec, network, dims, bytes, valid (manifest and library check out), problem."""
    return _dopa._cache_list(_cache_arg(cache_dir))


def cache_clear(cache_dir=None):
    """Remove every entry of a cache folder (default: dopa.cache_dir()); returns how many.
    Networks already loaded in this process keep working."""
    return _dopa._cache_clear(_cache_arg(cache_dir))


def load_checkpoint_params(net, path, strict=True):
    """Load parameters by name from a safetensors file into `net` (a dopa.Network, or anything
    with a `.net` attribute holding one, such as a dopa.torch.DopaModule); returns their names.

    path: a file of `dopa export` or `dopa grad --save-params` (one tensor per parameter, under
    the spec's names: "w", "i2h.weight"), or a training checkpoint of `dopa train` / `dopa train
    lm` (the flat "params" tensor, split by its __metadata__.param_layout; a run folder means its
    checkpoint.st; its checksum is not verified here: `dopa export` does). F32 or F64 values, cast
    to the network's dtype. strict: every parameter must be in the file and nothing else (other
    than a checkpoint's optimizer state and a grad file's "output.*" tensors); otherwise only the
    names both have are loaded. Everything is checked before anything is written.
    """
    target = _network_of(net, "load_checkpoint_params()")
    values = _checkpoint_values(target, path, strict)
    views = target.params
    for name, value in values.items():
        views[name][...] = value
    return list(values)


# ----------------------------------------------------------------------------------------------
# Helpers (also used by dopa.torch)


def _dtype_name(dtype):
    """'float32' or 'float64' for a dtype given as a string, a NumPy or a torch dtype."""
    if dtype is None:
        raise ValueError("dopa: dtype must be float32 or float64, not None")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        text = str(dtype)
        name = text[len("torch."):] if text.startswith("torch.") else text
    if name not in ("float32", "float64"):
        raise ValueError(f"dopa: dtype must be float32 or float64, not {dtype!r}")
    return name


def _paths(value, what):
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)):
        value = [value]
    out = []
    for item in value:
        path = os.fspath(item)
        out.append(path if isinstance(path, str) else os.fsdecode(path))
    return out


def _cache_arg(value):
    if value is None:
        return ""
    path = os.fspath(value)
    return path if isinstance(path, str) else os.fsdecode(path)


def _network_of(obj, fn):
    net = getattr(obj, "net", obj)
    if not isinstance(net, Network):
        raise TypeError(f"{fn}: expected a dopa.Network or a dopa.torch.DopaModule, not "
                        f"{type(obj).__name__}")
    return net


_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "I16": "<i2",
              "I8": "<i1", "U8": "<u1", "BOOL": "?"}


def _read_safetensors(path):
    """({name: ndarray (read-only)}, {metadata}) of a safetensors file, checked entry by entry: an
    8-byte little-endian header length, a JSON header, then the raw little-endian data."""
    with open(path, "rb") as f:
        data = f.read()

    def bad(why):
        return ValueError(f"{path}: not a valid safetensors file: {why}")

    if len(data) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise bad(f"a header of {n} bytes runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad(f"the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise bad("__metadata__ is not an object")
    base, tensors = 8 + n, {}
    for name, entry in header.items():
        try:
            dtype_name = entry["dtype"]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor '{name}': malformed entry {entry!r}") from None
        if dtype_name not in _ST_DTYPES:
            raise bad(f"tensor '{name}': unsupported dtype '{dtype_name}'")
        dtype = np.dtype(_ST_DTYPES[dtype_name])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if min(shape, default=0) < 0 or begin < 0 or end != begin + count * dtype.itemsize or \
                base + end > len(data):
            raise bad(f"tensor '{name}': offsets {begin}..{end} do not hold {count} {dtype_name} "
                      f"values inside the file")
        tensors[name] = np.frombuffer(data, dtype=dtype, count=count,
                                      offset=base + begin).reshape(shape)
    return tensors, meta


def _parse_layout(text, path):
    """'name:d0xd1,name:d0,scalar:' (a checkpoint's param_layout) -> [(name, shape)]."""
    out = []
    for item in text.split(",") if text else []:
        name, colon, dims = item.partition(":")
        if not colon or not name:
            raise ValueError(f"{path}: __metadata__.param_layout: '{item}' is not name:shape")
        shape = []
        for d in dims.split("x") if dims else []:
            if not d.isdigit():
                raise ValueError(f"{path}: __metadata__.param_layout: '{item}' has a malformed "
                                 f"shape")
            shape.append(int(d))
        out.append((name, tuple(shape)))
    return out


_CHECKPOINT_EXTRAS = ("params", "adam.m", "adam.v")


def _checkpoint_values(net, path, strict):
    """{parameter name: ndarray} from a params or checkpoint file, checked against `net`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.st")
    tensors, meta = _read_safetensors(path)
    fmt = meta.get("format", "")
    if "params" in tensors and "param_layout" in meta:  # a checkpoint of dopa train (lm)
        flat = tensors["params"]
        if flat.ndim != 1 or flat.dtype.kind != "f":
            raise ValueError(f"{path}: params: not a float vector")
        layout = _parse_layout(meta["param_layout"], path)
        total = sum(int(np.prod(shape, dtype=np.int64)) for _, shape in layout)
        if total != flat.size:
            raise ValueError(f"{path}: __metadata__.param_layout: {total} values, but params "
                             f"holds {flat.size}")
        values, at = {}, 0
        for name, shape in layout:
            size = int(np.prod(shape, dtype=np.int64))
            values[name] = flat[at:at + size].reshape(shape)
            at += size
        ignored = set()
    elif fmt in ("dopa-checkpoint", "dopa-lm-checkpoint"):
        raise ValueError(f"{path}: a checkpoint without __metadata__.param_layout (written before "
                         f"dopa recorded it): convert it with `dopa export {path} --out params.st` "
                         f"and load that")
    else:
        values = dict(tensors)
        ignored = {name for name in values if name.startswith("output.")}
        ignored |= {name for name in _CHECKPOINT_EXTRAS if name in values}
    shapes = net.param_shapes
    missing = [name for name in net.param_names if name not in values]
    unexpected = sorted(name for name in values if name not in shapes and name not in ignored)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unexpected:
            parts.append("not parameters of " + net.name + ": " + ", ".join(unexpected))
        raise ValueError(f"{path}: " + "; ".join(parts) + " (strict=False loads the names both "
                         f"have)")
    out = {}
    for name in net.param_names:
        if name not in values:
            continue
        value = values[name]
        if value.dtype.kind != "f":
            raise ValueError(f"{path}: parameter '{name}' has dtype {value.dtype}, expected F32 "
                             f"or F64")
        if tuple(value.shape) != tuple(shapes[name]):
            raise ValueError(f"{path}: parameter '{name}' has shape {tuple(value.shape)} in the "
                             f"file, but {tuple(shapes[name])} in {net.name} (compiled with other "
                             f"dimensions?)")
        out[name] = value
    return out
