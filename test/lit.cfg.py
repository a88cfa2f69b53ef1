# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "LLM"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py", "unit", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.llm_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%models", os.path.join(config.llm_src_root, "examples", "models")))
config.substitutions.append(("%clusters", os.path.join(config.llm_src_root, "examples", "clusters")))
config.environment["FILECHECK_OPTS"] = "-enable-var-scope --allow-unused-prefixes=false"

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.llm_tools_dir, config.llvm_tools_dir]
llvm_config.add_tool_substitutions(["llm-opt", "llm-import", "llm-compile", "llm-tokenize"], tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# The CUDA backend: "cuda" where it is built; "cuda-device" where a GPU is
# visible too (the tests of the no-GPU error path are unsupported there).
if getattr(config, "llm_have_cuda", False):
    config.available_features.add("cuda")
    import shutil, subprocess
    smi = shutil.which("nvidia-smi")
    if smi and subprocess.run([smi, "-L"], capture_output=True).returncode == 0:
        config.available_features.add("cuda-device")

# ptxas checks the PTX the compiler generates (the CUDA toolkit's).
import shutil as _shutil
_ptxas = _shutil.which("ptxas") or _shutil.which("ptxas", path="/usr/local/cuda/bin")
if _ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", _ptxas))
