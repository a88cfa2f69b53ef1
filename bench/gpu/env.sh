# Sourced by run.sh and profile.sh on the GPU machine with their arguments
# [BUNDLE] [OUTDIR] (default $root/.devbundle, /tmp/llm-gpu): sets $bundle
# (its executables unpacked) and $out (made), and the library path: the bundle's libraries, then
# CUDA's, then cuBLAS and NCCL from PyTorch's wheels where the toolkit has
# none. Sets $py (the Python with PyTorch). Needs $root.
bundle=$(cd "${1:-$root/.devbundle}" && pwd) || exit 1
out=${2:-/tmp/llm-gpu}
mkdir -p "$out"
# prepare.sh packs the executables (bin.tar.gz): unpacked beside it, or
# into a copy of the bundle under $out where the bundle is read-only.
# (tar, or Python's tarfile where there is no tar).
unpack() {
  if command -v tar > /dev/null; then
    tar -C "$1" -xzf "$1/bin.tar.gz" 2> /dev/null
  else
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
      "$1/bin.tar.gz" "$1" 2> /dev/null
  fi
}
if [ ! -d "$bundle/bin" ] && [ -f "$bundle/bin.tar.gz" ]; then
  if ! unpack "$bundle"; then
    mkdir -p "$out/bundle" && cp -r "$bundle/." "$out/bundle/" && bundle=$out/bundle &&
      unpack "$bundle" || { echo "env.sh: cannot unpack $bundle/bin.tar.gz" >&2; exit 1; }
  fi
fi
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
py=$(command -v python3)
for pkg in cublas nccl; do
  dir=$("$py" -c "import nvidia.$pkg, os; print(os.path.join(list(nvidia.$pkg.__path__)[0], 'lib'))" 2>/dev/null || true)
  [ -n "$dir" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$dir"
done
