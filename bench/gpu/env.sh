# Sourced by run.sh and profile.sh on the GPU machine with their arguments
# [BUNDLE] [OUTDIR] (default $root/.devbundle, /tmp/llm-gpu): sets $bundle
# and $out (made), and the library path: the bundle's libraries, then
# CUDA's, then cuBLAS and NCCL from PyTorch's wheels where the toolkit has
# none. Sets $py (the Python with PyTorch). Needs $root.
bundle=$(cd "${1:-$root/.devbundle}" && pwd) || exit 1
out=${2:-/tmp/llm-gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
py=$(command -v python3)
for pkg in cublas nccl; do
  dir=$("$py" -c "import nvidia.$pkg, os; print(os.path.join(list(nvidia.$pkg.__path__)[0], 'lib'))" 2>/dev/null || true)
  [ -n "$dir" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir"
done
