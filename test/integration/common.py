"""Shared helpers of the integration tests: build paths, temporary dirs,
running the tools, reading logs and safetensors."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

from llm_ref import safetensors_io  # noqa: E402

BIN = os.environ.get("LLM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
MODELS = os.path.join(ROOT, "examples", "models")
REF = os.path.join(ROOT, "python", "llm_ref", "train_ref.py")
TEXT = os.path.join(ROOT, "examples", "data", "tinyshakespeare.txt")


def run(cmd, **kw):
    """Runs `cmd`; on failure raises with its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s\n%s" %
                           (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def losses(path, key="loss"):
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                out.append(rec[key])
    return out


def compile_model(tmp, model, batch, seq, layers, name=None, flags=(),
                  config=None):
    """llm-import + llm-compile (with extra `flags`); returns the
    executable's path. `config`: the model's JSON, by default
    examples/models/<model>.json."""
    name = name or model
    mlir = os.path.join(tmp, name + ".mlir")
    exe = os.path.join(tmp, name + ".exe")
    run([os.path.join(BIN, "llm-import"), "--hf-config",
         config or os.path.join(MODELS, model + ".json"), "--batch", str(batch),
         "--seq", str(seq), "--layers", str(layers), "-o", mlir])
    run([os.path.join(BIN, "llm-compile"), mlir, "-o", exe] + list(flags))
    return exe


def token_file(tmp, nbytes=200000):
    """Byte-level token file of the first `nbytes` of the demo text."""
    txt = os.path.join(tmp, "text.txt")
    with open(TEXT, "rb") as f:
        data = f.read(nbytes)
    with open(txt, "wb") as f:
        f.write(data)
    out = os.path.join(tmp, "train.bin")
    run([os.path.join(BIN, "llm-tokenize"), txt, "-o", out])
    return out


def tempdir():
    return tempfile.TemporaryDirectory(prefix="llm-it-")
