"""Settings every process of a multi-GPU run needs, set where the processes start.

NVLink multicast (NVLS) stays off: on the lent multi-GPU machines it hangs or fails NCCL's
collectives (the device tool's KINDS.md). `finetune/accelerate/env.sh` exports the same
variables for a shell that runs `accelerate launch`; train.py sets them again in its own
process before torch.distributed starts NCCL, so no launch path can miss them.
"""
from __future__ import annotations

import os

MULTICAST_OFF = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


def keep_multicast_off() -> None:
    """Set the variables in this process's environment (inherited by what it starts)."""
    os.environ.update(MULTICAST_OFF)
