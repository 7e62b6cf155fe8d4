"""Several processes through accelerate (issue 7's CPU part): the launch configs, 2 processes
(gloo on CPU) training under `accelerate launch`, and their checkpoint resumed by 1 process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from finetune.multigpu import MULTICAST_OFF, keep_multicast_off
from finetune.recipe import Device, check_backend
from finetune.settings import FinetuneConfig
from tests.conftest import REPO_ROOT, run_script, script_env
from tests.finetune_fixtures import llama_cpp_vendor, sharegpt_splits, tiny_llama  # noqa: F401
from tests.finetune.test_train import TRAIN, train_args
from utils.engine import free_port
from utils.errors import FinsentError

CONFIGS = REPO_ROOT / "finetune" / "accelerate"


def test_accelerate_configs_describe_ddp_fsdp_full_shard_bf16_and_one_gpu():
    ddp = yaml.safe_load((CONFIGS / "ddp.yaml").read_text())
    fsdp = yaml.safe_load((CONFIGS / "fsdp.yaml").read_text())
    single = yaml.safe_load((CONFIGS / "single_gpu.yaml").read_text())
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_machines"] == 1
    assert fsdp["distributed_type"] == "FSDP" and fsdp["mixed_precision"] == "bf16"
    assert fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # resumable on any GPU count
    assert single["distributed_type"] == "NO" and single["num_processes"] == 1
    env_sh = (CONFIGS / "env.sh").read_text()
    for name, value in MULTICAST_OFF.items():
        assert f"export {name}={value}" in env_sh


def test_train_keeps_nvlink_multicast_off_in_its_process(monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")
    for name in ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"):
        monkeypatch.delenv(name, raising=False)
    keep_multicast_off()
    assert {name: os.environ[name] for name in MULTICAST_OFF} == MULTICAST_OFF


@pytest.mark.parametrize("env, expected", [({"WORLD_SIZE": "2"}, "ddp.yaml"),
                                           ({"ACCELERATE_USE_FSDP": "true"}, "fsdp.yaml")])
def test_unsloth_refuses_multi_process_setups_naming_the_alternative(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gpu = Device(cuda=True, name="NVIDIA H200", bf16=True, memory_gib=139)
    with pytest.raises(FinsentError, match=f"--backend hf.*{expected}|{expected}"):
        check_backend(FinetuneConfig(backend="unsloth"), gpu)
    check_backend(FinetuneConfig(backend="hf"), gpu)  # the alternative is accepted


@pytest.mark.slow
def test_two_processes_under_accelerate_launch_then_resume_on_one(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    output = tmp_path / "out"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port()), str(REPO_ROOT / TRAIN),
              *map(str, train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "2",
                                   "--set", "finetune.batch_size=2"))]
    result = subprocess.run(launch, cwd=REPO_ROOT, env=script_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output / "train_summary.json").read_text())
    assert summary["processes"] == 2
    checkpoint = output / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 2 and state["epoch"] == pytest.approx(2 * 2 * 2 / 24)  # 2 procs x 2 rows

    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "3",
                                           "--set", "finetune.batch_size=2", "--resume"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output / "train_summary.json").read_text())["processes"] == 1
    logged = [json.loads(line)["step"] for line in (output / "throughput.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]  # steps 1-2 under 2 processes, step 3 resumed under 1


def test_bench_counts_the_lora_gradients_it_all_reduces_as_peft_does():
    """bench_multigpu.py times an all-reduce of this many values: PEFT's trainable count, r16 on all linear layers."""
    import importlib.util

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = importlib.util.spec_from_file_location("bench_multigpu", REPO_ROOT / "benchmarks" / "bench_multigpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config = {**bench.TINY, "vocab_size": 512}
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(LlamaConfig(**config)),
                           LoraConfig(r=bench.LORA_RANK, target_modules=FinetuneConfig().target_modules))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert bench.lora_trainable_params(config) == trainable
