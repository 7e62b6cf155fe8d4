# Source on the lent GPU machine, from the repo root, after benchmarks/gpu_carry.sh's bundle is
# unpacked into $FG (default /tmp/fg): the packages the image lacks, offline hubs, the tools.
#   FG=/tmp/fg; . benchmarks/gpu_env.sh
export FG=${FG:-/tmp/fg}
export PYTHONPATH="$FG/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FINSENT_LLAMA_CPP_SOURCE="$FG/llama.cpp"   # the converter and vocab GGUFs gpu_carry.sh packed
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export FINSENT_CACHE="$FG/cache"   # utils.engine.default_gguf_path() finds the base GGUF here
# NVLink multicast stays off (the device tool's KINDS.md), also for processes started from here.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
