# Source before `accelerate launch` (or torchrun) on a multi-GPU machine:  source finetune/accelerate/env.sh
# NVLink multicast (NVLS) off: on the lent multi-GPU machines it hangs or fails NCCL's collectives.
# finetune/train.py sets the same variables in each of its processes (finetune/multigpu.py);
# exporting them here covers the launcher and anything else it starts.
export NCCL_NVLS_ENABLE=0
export TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export NVSHMEM_DISABLE_NVLS=1
