"""safetensors_np.py - read and write the safetensors format with NumPy only.

Debian 12 has no python3-safetensors package; the format is small enough to implement here:
an 8-byte little-endian header length, a JSON header, and the raw little-endian data.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def load(path):
    """Return ({name: ndarray}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    base = 8 + n
    for name, entry in header.items():
        b, e = entry["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=_DTYPES[entry["dtype"]])
        out[name] = arr.reshape(entry["shape"]).copy()
    return out, meta


def save(path, tensors, metadata=None):
    """Write {name: ndarray} (float32/float64/int32/int64) as safetensors."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.array(arr, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    js = json.dumps(header).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for raw in blobs:
            f.write(raw)
