"""Reads the compiler's sharded checkpoints (docs/design.md, "Checkpoints")
into whole numpy tensors, independently of the C++ runtime.

A checkpoint directory `step-NNNNNNNN/` holds `index.json` and one
`rank-RRRRR.safetensors` per rank that holds parts no other rank holds.
For each tensor the index gives its global `shape`, its tensor-parallel cut
(`tp_axis`, -1 for none; `tp_blocks`: along the axis the tensor is that many
equal blocks, each cut into tp pieces, and tp rank t holds piece t of every
block, concatenated), the shape of that tp-local tensor, whether it is also
cut into ZeRO shares (`zero`: dp rank d holds the d-th 1/dp of the flattened
tp-local tensor) and, in `pieces`, the file that holds each (tp_rank,
dp_rank) piece under the tensor's name. `tp_padded`, when present, is the
length along tp_axis of the padded tensor the pieces cut (Megatron's
vocabulary padding to a multiple of tp x llm-compile's --vocab-align, with
one rank too): entries past `shape` are padding."""
import json
import os

import numpy as np

from llm_ref import safetensors_io


def load_checkpoint(step_dir, optimizer=False):
    """Whole parameters (HF names) of a checkpoint; with `optimizer`, the
    AdamW moments (exp_avg.<name>, exp_avg_sq.<name>) instead."""
    with open(os.path.join(step_dir, "index.json")) as f:
        index = json.load(f)
    tp = index["plan"]["tp"]
    dp = index["plan"]["dp"]
    files = {}
    out = {}
    for name, t in index["tensors"].items():
        is_moment = name.startswith("exp_avg.") or name.startswith("exp_avg_sq.")
        if is_moment != optimizer:
            continue
        pieces = {(p["tp_rank"], p["dp_rank"]): p["file"] for p in t["pieces"]}
        axis = t["tp_axis"]
        local_shape = t["tp_local_shape"]
        tparts = tp if axis >= 0 else 1
        dparts = dp if t["zero"] else 1
        locals_ = []
        for tr in range(tparts):
            flat = []
            for dr in range(dparts):
                fname = pieces[(tr, dr)]
                if fname not in files:
                    files[fname] = safetensors_io.load(
                        os.path.join(step_dir, fname))[0]
                flat.append(files[fname][name].reshape(-1))
            locals_.append(np.concatenate(flat).reshape(local_shape))
        if axis < 0:
            out[name] = locals_[0].reshape(t["shape"])
            continue
        blocks = t["tp_blocks"]
        # Piece t of block k is the k-th 1/blocks of rank t's local tensor.
        parts = [np.split(l, blocks, axis=axis) for l in locals_]
        out[name] = np.concatenate(
            [parts[tr][k] for k in range(blocks) for tr in range(tparts)],
            axis=axis)
        if "tp_padded" in t:
            assert out[name].shape[axis] == t["tp_padded"], name
            out[name] = np.take(out[name], np.arange(t["shape"][axis]), axis=axis)
        assert list(out[name].shape) == t["shape"], name
    return out
