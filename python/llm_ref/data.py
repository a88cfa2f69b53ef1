"""Data sampling of the runtime, bit-exact: llm.c token files, splitmix64,
and the batch draw.

Token file: 256 little-endian int32 header (magic 20240520, version 1, token
count), then `count` uint16 tokens.

Batch for one training step (B sequences of length S, N tokens in the file):
  for b in 0..B-1: r = splitmix64.next(); off = r % (N - S);
                   inputs[b] = tokens[off : off+S]; targets[b] = tokens[off+1 : off+S+1]
The generator's initial state is the seed (uint64) and it runs on across
steps.
"""
import os

import numpy as np

__all__ = ["MAGIC", "VERSION", "HEADER_INTS", "read_tokens", "write_tokens",
           "SplitMix64", "sample_batch", "BatchSampler"]

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MASK64 = (1 << 64) - 1


def read_tokens(path, vocab_size=0):
    """Read and validate an llm.c token file -> np.ndarray uint16. Checks the
    magic, version, that the size matches the count, and (vocab_size > 0)
    that every token is below vocab_size. Errors name the file and offset."""
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ValueError(f"{path}: offset 0: file of {size} bytes is shorter than the "
                         f"{HEADER_BYTES}-byte header")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
        if header[0] != MAGIC:
            raise ValueError(f"{path}: offset 0: bad magic {header[0]} (expected {MAGIC})")
        if header[1] != VERSION:
            raise ValueError(f"{path}: offset 4: unsupported version {header[1]} "
                             f"(expected {VERSION})")
        count = int(header[2])
        if count < 0:
            raise ValueError(f"{path}: offset 8: negative token count {count}")
        expected = HEADER_BYTES + 2 * count
        if size != expected:
            raise ValueError(f"{path}: offset {min(size, expected)}: file is {size} bytes but "
                             f"the header declares {count} tokens ({expected} bytes)")
        tokens = np.frombuffer(f.read(2 * count), dtype="<u2").astype(np.uint16)
    if vocab_size > 0 and count:
        bad = np.nonzero(tokens >= vocab_size)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{path}: offset {HEADER_BYTES + 2 * i}: token {int(tokens[i])} "
                             f"at index {i} is not below the vocabulary size {vocab_size}")
    return tokens


def write_tokens(path, tokens):
    """Write an llm.c token file (atomically: temp file + rename)."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() > 0xFFFF):
        raise ValueError("tokens must fit in uint16")
    if tokens.size > 0x7FFFFFFF:
        raise ValueError("too many tokens for an int32 count")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = MAGIC, VERSION, tokens.size
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())
    os.replace(tmp, path)


class SplitMix64:
    """splitmix64 (Steele, Lea, Flood; Vigna's reference), 64-bit wraparound."""

    def __init__(self, seed):
        self.state = int(seed) & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def sample_batch(tokens, B, S, rng):
    """Draw one batch -> (inputs, targets) as int64 np arrays [B, S]."""
    N = len(tokens)
    if N - S <= 0:
        raise ValueError(f"token file has {N} tokens; sequences of {S} need at "
                         f"least {S + 1}")
    inputs = np.empty((B, S), dtype=np.int64)
    targets = np.empty((B, S), dtype=np.int64)
    for b in range(B):
        off = rng.next() % (N - S)
        inputs[b] = tokens[off:off + S]
        targets[b] = tokens[off + 1:off + S + 1]
    return inputs, targets


class BatchSampler:
    """The runtime's sampler: one SplitMix64 seeded once, B draws per step."""

    def __init__(self, tokens, B, S, seed):
        self.tokens, self.B, self.S = tokens, B, S
        self.rng = SplitMix64(seed)

    def next(self):
        return sample_batch(self.tokens, self.B, self.S, self.rng)
