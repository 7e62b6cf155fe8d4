#!/usr/bin/env bash
# Builds, on this CPU machine, llama.cpp's llama-server for the lent H200 (CUDA 13.0, sm_90) into
# .gpu/cu/llama-server-cuda13-sm90.tar.xz (41 MB: one device call carries it), so the GPU machine
# can score the fine-tunes on its GPU instead of its 16 CPU cores (benchmarks/results/engine_slots.json:
# the embedded engine is bound by arithmetic there, ~2/3 of a quality run's time).
# The source is the llama.cpp that llama-cpp-python 0.3.36 vendors (the converter and quantizer the
# product already uses); nvcc, the CUDA headers, cuBLAS and CCCL come from pip's nvidia-* wheels
# (13.0, as the image's torch 2.11+cu130). Built 2026-11-28 in 24 minutes on 2 cores; it started and
# answered on the CPU here. NOT YET RUN ON THE GPU.
#
#   bash benchmarks/build_cuda_server.sh [WORK]       # WORK: /tmp/cudab (sources, build, toolkit)
#
# On the GPU machine: the libraries come from the image's torch (its nvidia-* packages), the
# driver from the host; a fine-tuned GGUF carries its chat template, the base GGUF needs
# --chat-template gemma:
#   tar xJf .gpu/cu/llama-server-cuda13-sm90.tar.xz -C /tmp/fg
#   export LD_LIBRARY_PATH=$(python3 -c "import nvidia, os; print(':'.join(os.path.join(p, 'cu13', 'lib') for p in nvidia.__path__))")
#   /tmp/fg/llama-server -m MODEL.gguf -ngl 99 --parallel 16 -c 32768 --port 8080 &
#   python eval/evaluate_labelled.py --model '{"backend": "openai", "model": "finsent", "base_urls": ["http://127.0.0.1:8080/v1"]}' ...
set -euo pipefail
work=${1:-/tmp/cudab}; here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
out=$here/.gpu/cu/llama-server-cuda13-sm90.tar.xz
mkdir -p "$work" "$(dirname "$out")"
toolkit=$work/cuda13; cuda=$toolkit/nvidia/cu13
if [ ! -x "$cuda/bin/nvcc" ]; then
  # one pip call: a second --target install into the same folder replaces the shared nvidia/ tree
  "$py" -m pip install -q --target "$toolkit" --no-deps "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" \
    "nvidia-cuda-crt==13.0.88" "nvidia-cuda-runtime==13.0.96" "nvidia-cublas==13.0.2.14" "nvidia-cuda-cccl==13.0.85"
  for lib in cudart cublas cublasLt; do ln -sf "lib$lib.so.13" "$cuda/lib/lib$lib.so"; done
  ln -sfn lib "$cuda/lib64"   # where nvcc.profile looks for libraries
fi
source_dir=$work/llama_cpp_python-0.3.36/vendor/llama.cpp
if [ ! -d "$source_dir/ggml/src/ggml-cuda" ]; then
  "$py" -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$work"
  tar xzf "$work/llama_cpp_python-0.3.36.tar.gz" -C "$work"
fi
export PATH=$cuda/bin:$PATH
# A fresh build folder: CMake that finds another compiler path in an old cache starts again from its
# defaults (no CUDA, shared libraries) and says so only in its log.
rm -rf "$work/build"
# NO_VMM: no link to the driver library (pip has no stub of it); no OpenSSL or curl: one file to carry
cmake -S "$source_dir" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DCUDAToolkit_ROOT="$cuda" -DCMAKE_CUDA_FLAGS="-I$cuda/include/cccl" \
  -DGGML_CUDA_NO_VMM=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
  -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON > "$work/configure.log"
cmake --build "$work/build" --target llama-server -j "$(nproc)" > "$work/build.log"
LD_LIBRARY_PATH=$cuda/lib "$work/build/bin/llama-server" --version 2>&1 | tail -2
tar cf - -C "$work/build/bin" llama-server | xz -T0 -6 > "$out"
ls -la "$out"
