"""Minimal safetensors reader/writer (numpy only, no `safetensors` package).

Format: u64 little-endian header length N, then N bytes of JSON (padded with
spaces to a multiple of 8), then the tensor bytes. The JSON maps each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
the end of the header) and may hold "__metadata__", a string -> string map.

load() returns every floating tensor as float32 (F32, F16, BF16, F64);
save() writes float tensors as F32 (default), BF16 (round to nearest even) or
F16, contiguous in the order given.
"""
import json
import os
import struct

import numpy as np

__all__ = ["load", "save", "f32_to_bf16_bits", "bf16_bits_to_f32"]

_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
_MAX_HEADER = 100 * 1024 * 1024


def bf16_bits_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> uint16 bfloat16 bit patterns, round to nearest even; NaN
    stays a (quiet) NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> np.uint64(16)).astype(np.uint16) | np.uint16(0x0040))
    return out


def load(path):
    """Read `path`; returns (dict name -> float32 np.ndarray, metadata dict)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: file too short for a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER or 8 + n > size:
            raise ValueError(f"{path}: header length {n} exceeds the file size {size}")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: invalid JSON header: {e}") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: header is not a JSON object")
        data = f.read()
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must be a string -> string map")
    tensors = {}
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor '{name}': malformed header entry {info!r}") from None
        if dtype not in _ITEMSIZE:
            raise ValueError(f"{path}: tensor '{name}': unsupported dtype {dtype} "
                             f"(supported: {', '.join(_ITEMSIZE)})")
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            raise ValueError(f"{path}: tensor '{name}': bad shape {shape}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != count * _ITEMSIZE[dtype]:
            raise ValueError(f"{path}: tensor '{name}': data_offsets [{begin}, {end}] do not "
                             f"fit {dtype}{shape} within {len(data)} data bytes")
        buf = data[begin:end]
        if dtype == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        elif dtype == "F64":
            arr = np.frombuffer(buf, dtype="<f8").astype(np.float32)
        elif dtype == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        else:  # BF16
            arr = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2"))
        tensors[name] = arr.reshape(shape)
        spans.append((begin, end, name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin < pos:
            raise ValueError(f"{path}: tensor '{name}' overlaps the previous tensor")
        pos = end
    return tensors, metadata


def save(path, tensors, metadata=None, dtype="F32"):
    """Write `tensors` (name -> array-like, in the given order) to `path`."""
    if dtype not in ("F32", "BF16", "F16"):
        raise ValueError(f"unsupported dtype {dtype} (supported: F32, BF16, F16)")
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is not a valid tensor name")
        if hasattr(t, "detach"):  # torch tensor
            t = t.detach().cpu().numpy()
        a = np.asarray(t, dtype=np.float32)
        if dtype == "F32":
            b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif dtype == "F16":
            b = np.ascontiguousarray(a, dtype="<f2").tobytes()
        else:
            b = f32_to_bf16_bits(a).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
