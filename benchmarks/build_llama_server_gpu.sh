#!/usr/bin/env bash
# Builds llama.cpp's CUDA llama-server ON the lent GPU machine (its image has nvcc 13.0, cmake and
# ninja; 424 s on its 16 cores at nice 19 beside a training, 2026-12-01), from a trimmed copy of the
# llama.cpp that llama-cpp-python 0.3.36 vendors (gpu_carry.sh packs it: 6 MB), into OUT/llama-server:
# a wrapper that puts the toolkit's libraries on LD_LIBRARY_PATH and runs OUT/bin/llama-server.
# benchmarks/server_build.sh runs it beside the trainings for gpu_quality.sh and gpu_quality_pair.sh
# (SERVER_SOURCE), which then measure on the GPU with it.
#
#   bash benchmarks/build_llama_server_gpu.sh SOURCE OUT     # SOURCE: a folder or a .tar.xz
#
# Exit status 0 with OUT/llama-server answering --version; the logs are OUT/configure.log, OUT/build.log.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 2; }
source=$1; out=$(mkdir -p "$2" && cd "$2" && pwd)
if [ -f "$source" ]; then
  mkdir -p "$out/src" && tar xJf "$source" -C "$out/src"; source=$out/src
fi
[ -f "$source/CMakeLists.txt" ] || { echo "error: SOURCE: no llama.cpp CMakeLists.txt in $source" >&2; exit 2; }
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -1 || true)
[ -x "$nvcc" ] || { echo "error: no nvcc on PATH or in /usr/local/cuda*/bin" >&2; exit 2; }
cuda=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
# NO_VMM: no link to the driver library; no OpenSSL or curl; the CPU part for any x86-64 with AVX2.
cmake -S "$source" -B "$out/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$cuda" \
  -DGGML_CUDA_NO_VMM=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_USE_PREBUILT_UI=OFF \
  > "$out/configure.log" 2>&1 \
  || { tail -20 "$out/configure.log" >&2; exit 1; }
cmake --build "$out/build" --target llama-server -j "$(nproc)" > "$out/build.log" 2>&1 \
  || { grep -m5 -i error "$out/build.log" >&2; exit 1; }
mkdir -p "$out/bin" && cp "$out/build/bin/llama-server" "$out/bin/"
libs="$cuda/lib64:$cuda/lib:$(python3 -c "import nvidia, os; print(':'.join(os.path.join(p, d, 'lib') for p in nvidia.__path__ for d in ('cu13', 'cublas', 'cuda_runtime')))" 2>/dev/null || true)"
cat > "$out/llama-server" <<WRAP
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$out/bin/llama-server" "\$@"
WRAP
chmod +x "$out/llama-server"
"$out/llama-server" --version 2>&1 | tail -2
