"""Several-GPU fine-tune, measured on the LLaMA-3 8B shape, all through finetune/train.py under
`accelerate launch` with the configs in finetune/accelerate/ (the path users run):

- ddp_1gpu, ddp_2gpu, ddp_4gpu, ddp_8gpu: LoRA r16 on all linear layers, 2,048-token packed rows,
  the same per-GPU batch, on 1 GPU and on every DDP count up to the GPUs visible; the ratio of each
  to one GPU (targets: 2 GPUs >= 1.85x, 4 GPUs >= 3.6x);
- resume_2gpu_to_1gpu: the 2-GPU run's last checkpoint resumed by one process for 3 more steps;
- fsdp_full: FSDP full shard, full fine-tune (bf16 compute over fp32 master weights) on all the
  GPUs visible: weights + Adam state (~128 GB) that do not fit one GPU;
- allreduce: what limits the scaling: DDP's per-step all-reduce (the LoRA gradients' bytes, timed
  with NCCL on the same GPUs) against the step time, and the 2-GPU step time against one GPU's.

Model: random bf16 weights with Meta-Llama-3-8B's config (throughput does not depend on the
values) and its real tokenizer (llama.cpp's Llama-3 vocab, from llama-cpp-python's sdist, or a
saved tokenizer folder: --tokenizer). Data: synthetic ShareGPT conversations packed into
2,048-token rows. tokens/s counts non-padding tokens of all GPUs over the optimizer steps after
the warm-up (no evaluation; the one checkpoint is written after the last timed step).
NVLink multicast stays off in every process (finetune/multigpu.py).

  python benchmarks/bench_multigpu.py [--steps 30] [--warmup-steps 5] [--batch-size 4]
  python benchmarks/bench_multigpu.py --tiny [--gpus 2]   # a tiny model: checks the harness in seconds
                                                          # (on CPU processes, gloo, where no GPU is)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finetune.multigpu import keep_multicast_off  # noqa: E402
from finetune.random_models import SPECS, save_random_model  # noqa: E402
from finetune.random_models import TINY as TINY_SIZES  # noqa: E402
from utils.engine import free_port  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

# Meta-Llama-3-8B's config.json (the architecture only).
# The 8B shape and --tiny's (the same architecture at a size CPU processes train in seconds, to
# check the harness), as finetune/random_models.py builds them for every benchmark.
LLAMA3_8B = SPECS["llama-3"].real_config
TINY = {**LLAMA3_8B, **TINY_SIZES}
LORA_RANK = 16
DDP_COUNTS = (2, 4, 8)
RESUME_EXTRA_STEPS = 3
WORDS = ("revenue profit margin guidance quarter shares investors dividend growth forecast market demand "
         "costs outlook earnings sales operating cash flow debt rating analyst upgrade downgrade merger "
         "acquisition contract order backlog supply chain inflation rates central bank currency").split()


def build_model(folder: Path, args: argparse.Namespace) -> None:
    """The 8B shape (or --tiny's) with random bf16 weights (filled on the GPU where there is
    room: seconds) and LLaMA-3's tokenizer (--tokenizer, else its vocab GGUF)."""
    from finetune.llama_cpp_source import llama_cpp_dir

    if (folder / "config.json").is_file():
        return
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        from finetune.recipe import prepare_tokenizer

        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(args.tokenizer), "llama-3")
    save_random_model("llama-3", folder, llama_cpp_dir(), tiny=args.tiny, tokenizer=tokenizer)


def build_data(path: Path, conversations: int, words: tuple[int, int], seed: int = 0) -> None:
    """ShareGPT rows: a system prompt, a 'news' text of `words` words, a JSON answer."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(conversations):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words)))
            answer = json.dumps({"reasoning": " ".join(rng.choice(WORDS) for _ in range(30)),
                                 "sentiment": round(rng.uniform(-1, 1), 2), "confidence": 0.8})
            out.write(json.dumps({"conversations": [
                {"from": "system", "value": "You are a financial sentiment analyst."},
                {"from": "human", "value": text}, {"from": "gpt", "value": answer}],
                "source": "synthetic", "label": "neutral"}) + "\n")


def lora_trainable_params(config: dict, rank: int = LORA_RANK) -> int:
    """LoRA adapters' parameters on every linear layer: rank x (in + out) per projection."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * hidden // config["num_attention_heads"]
    per_layer = rank * (2 * (hidden + hidden) + 2 * (hidden + kv) + 3 * (hidden + inter))
    return per_layer * config["num_hidden_layers"]


def launch(name: str, accelerate_config: str, processes: int, output: Path, args: argparse.Namespace,
           steps: int, *extra: str) -> tuple[int, float]:
    """One `accelerate launch … finetune/train.py` run; (exit code, wall seconds). Its log is kept."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "finetune" / "accelerate" / accelerate_config), "--num_processes", str(processes),
               "--main_process_port", str(free_port()),
               str(REPO / "finetune" / "train.py"), "--backend", "hf", "--base-model", str(args.model),
               "--family", "llama-3", "--train", str(args.data), "--set", "finetune.validation_file=null",
               "--output-dir", str(output), "--packing", "--max-seq-length", str(args.seq_len),
               "--max-steps", str(steps), "--set", f"finetune.batch_size={args.batch_size}",
               "--set", "finetune.gradient_accumulation_steps=1", "--set", "finetune.logging_steps=1",
               "--set", f"finetune.lora_r={LORA_RANK}", "--set", f"finetune.lora_alpha={2 * LORA_RANK}",
               "--set", "finetune.warmup_ratio=0", "--set", "finetune.save_final=false", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if args.cuda:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(processes))
    print(f"[{name}] {processes} process(es): {' '.join(command[command.index('--backend'):])}", flush=True)
    started = time.perf_counter()
    with (args.work_dir / f"{name}.log").open("w", encoding="utf-8") as log:
        code = subprocess.run(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    return code, time.perf_counter() - started


def failure(name: str, code: int, wall: float, args: argparse.Namespace) -> dict:
    lines = (args.work_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
    errors = ([line for line in lines if line.startswith("error:")] or [line for line in lines if "Error" in line]
              or lines or ["no output"])
    print(f"[{name}] failed (exit {code}, {wall:.0f} s): {errors[-1][:300]}", flush=True)
    return {"status": "failed", "exit_code": code, "error": errors[-1][:500], "wall_s": round(wall, 1)}


def measure(name: str, output: Path, processes: int, wall: float, first_step: int) -> dict:
    """tokens/s and step time over the logged steps from `first_step` on (throughput.jsonl)."""
    summary = json.loads((output / "train_summary.json").read_text())
    logged = [json.loads(line) for line in (output / "throughput.jsonl").read_text().splitlines()]
    measured = [s for s in logged if s["step"] >= first_step]
    tokens = sum(s["tokens"] for s in measured)
    seconds = sum(s["train_seconds"] for s in measured)
    median_step = statistics.median(s["train_seconds"] for s in measured)
    figures = {"status": "ok", "gpus": processes, "tokens_per_s": round(tokens / seconds, 1),
               "tokens_per_s_per_gpu": round(tokens / seconds / processes, 1),
               "median_step_s": round(median_step, 4),
               # Steps over 1.5x the median (a stall the mean carries and the median does not).
               "slow_steps": [s["step"] for s in measured if s["train_seconds"] > 1.5 * median_step],
               "measured_steps": len(measured), "tokens_per_step": round(tokens / len(measured)),
               "mfu": summary.get("mfu"), "peak_gib_per_gpu": summary.get("peak_gib_per_gpu"),
               "wall_s": round(wall, 1), "train_loss": summary.get("train_loss")}
    peak = figures["peak_gib_per_gpu"]
    print(f"[{name}] {figures['tokens_per_s']:.0f} tokens/s on {processes} GPU(s), median step "
          f"{figures['median_step_s']:.3f} s, peak {peak} GiB, wall {wall:.0f} s", flush=True)
    return figures


def run_setup(name: str, accelerate_config: str, processes: int, args: argparse.Namespace, *extra: str,
              steps: int | None = None, warmup: int | None = None) -> dict:
    steps, warmup = steps or args.steps, args.warmup_steps if warmup is None else warmup
    output = args.work_dir / name
    code, wall = launch(name, accelerate_config, processes, output, args, steps, "--overwrite", *extra)
    if code != 0:
        return failure(name, code, wall, args)
    return measure(name, output, processes, wall, first_step=warmup + 1)


def run_resume(args: argparse.Namespace) -> dict:
    """The 2-GPU run's checkpoint (written under DDP) continued by one process."""
    name, source = "resume_2gpu_to_1gpu", args.work_dir / "ddp_2gpu"
    checkpoint = source / "checkpoints" / f"checkpoint-{args.steps}"
    if not checkpoint.is_dir():
        return {"status": "failed", "error": f"no checkpoint {checkpoint} from ddp_2gpu"}
    steps = args.steps + RESUME_EXTRA_STEPS
    code, wall = launch(name, "single_gpu.yaml", 1, source, args, steps, "--resume")
    if code != 0:
        return failure(name, code, wall, args)
    logged = [json.loads(line)["step"] for line in (source / "throughput.jsonl").read_text().splitlines()]
    figures = measure(name, source, 1, wall, first_step=args.steps + 1)
    figures.update({"resumed_from": checkpoint.name, "steps_logged": logged,
                    "continued": logged == list(range(1, steps + 1)),
                    "processes": json.loads((source / "train_summary.json").read_text())["processes"]})
    print(f"[{name}] steps {logged[0]}..{logged[-1]} logged; continued from {checkpoint.name}: "
          f"{figures['continued']}", flush=True)
    return figures


def allreduce_probe(numel: int, repeats: int) -> None:
    """Run under torch.distributed.run: all-reduce `numel` fp32 values (DDP's gradient bytes) with
    NCCL, timed with CUDA events; rank 0 prints one JSON line."""
    import torch
    import torch.distributed as dist

    keep_multicast_off()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    buffer = torch.randn(numel, device="cuda")
    times = []
    for i in range(repeats + 5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dist.all_reduce(buffer)
        end.record()
        torch.cuda.synchronize()
        if i >= 5:
            times.append(start.elapsed_time(end))
    if rank == 0:
        median = statistics.median(times)
        size = numel * 4
        # Ring all-reduce moves 2(n-1)/n of the buffer per GPU: NCCL's "bus bandwidth".
        world = dist.get_world_size()
        print(json.dumps({"allreduce_ms": round(median, 3), "bytes": size,
                          "bus_gb_per_s": round(size * 2 * (world - 1) / world / (median / 1e3) / 1e9, 1)}))
    dist.destroy_process_group()


def measure_allreduce(processes: int, numel: int) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(free_port()), __file__, "--allreduce-probe", str(numel)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(processes))}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        return {"status": "failed", "error": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    return {"status": "ok", "gpus": processes, **json.loads(lines[-1])}


def scaling(setups: dict, allreduce: dict[int, dict]) -> dict:
    """Each DDP count against one GPU, and what the lost fraction is made of."""
    one = setups.get("ddp_1gpu", {})
    out = {}
    for count in DDP_COUNTS:
        run = setups.get(f"ddp_{count}gpu", {})
        if one.get("status") != "ok" or run.get("status") != "ok":
            continue
        speedup = run["tokens_per_s"] / one["tokens_per_s"]
        # The same from each run's median step (tokens per step / median step time): robust to stalls.
        median_speedup = ((run["tokens_per_step"] / run["median_step_s"])
                          / (one["tokens_per_step"] / one["median_step_s"]))
        entry = {"speedup": round(speedup, 3), "efficiency": round(speedup / count, 3),
                 "speedup_from_median_steps": round(median_speedup, 3),
                 "step_time_vs_1gpu": round(run["median_step_s"] / one["median_step_s"], 3)}
        probe = allreduce.get(count, {})
        if probe.get("status") == "ok":
            entry["allreduce_share_of_step"] = round(probe["allreduce_ms"] / 1e3 / run["median_step_s"], 4)
        out[f"ddp_{count}gpu_vs_1gpu"] = entry
        target = {2: 1.85, 4: 3.6}.get(count)
        met = "" if target is None else f" (target >= {target}x: {'met' if speedup >= target else 'MISSED'})"
        print(f"DDP {count} GPUs / 1 GPU: {speedup:.2f}x tokens/s ({median_speedup:.2f}x from the median steps), "
              f"efficiency {speedup / count:.1%}{met}", flush=True)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per DDP setup")
    parser.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of tokens/s")
    parser.add_argument("--fsdp-steps", type=int, default=12, help="optimizer steps of the FSDP full fine-tune")
    parser.add_argument("--batch-size", type=int, default=4, help="packed rows per GPU per step")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per packed row")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs (processes with --tiny) to use: default all")
    parser.add_argument("--skip-fsdp", action="store_true", help="leave out the FSDP full fine-tune")
    parser.add_argument("--tiny", action="store_true", help="a tiny model of the same architecture (CPU processes where no GPU is)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="a saved Llama-3 tokenizer folder (default: llama.cpp's vocab GGUF from the sdist)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/finsent-bench-multigpu"))
    parser.add_argument("--output", type=Path, default=None,
                        help="results JSON (default: benchmarks/results/multigpu.json; --tiny: in --work-dir)")
    parser.add_argument("--allreduce-probe", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    keep_multicast_off()  # inherited by every process the launches start
    if args.allreduce_probe is not None:
        allreduce_probe(args.allreduce_probe, repeats=20)
        return 0
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("error: bench_multigpu needs CUDA GPUs (or --tiny for CPU processes)", file=sys.stderr)
        return 2
    args.cuda = cuda
    gpus = args.gpus or (torch.cuda.device_count() if cuda else 2)
    if args.tiny:
        args.seq_len = min(args.seq_len, 256)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.output = args.output or (args.work_dir / "multigpu_tiny.json" if args.tiny else
                                  REPO / "benchmarks" / "results" / "multigpu.json")
    args.model, args.data = args.work_dir / ("llama3-tiny" if args.tiny else "llama3-8b-random"), \
        args.work_dir / "train.jsonl"
    started = time.perf_counter()
    build_model(args.model, args)
    # ~500-token rows (2,048-token sequences pack ~4); --tiny's 256-token sequences take ~100-token rows.
    words = (60, 100) if args.tiny else (300, 500)
    rows_needed = (args.steps + RESUME_EXTRA_STEPS) * args.batch_size * gpus * args.seq_len // (words[0] + 50)
    build_data(args.data, conversations=max(200, rows_needed + 50), words=words)
    print(f"model and data ready in {time.perf_counter() - started:.0f} s", flush=True)

    results = {"device": torch.cuda.get_device_name(0) if cuda else "cpu processes (gloo)", "gpus_visible": gpus,
               "model": f"Meta-Llama-3-8B config{' (--tiny: hidden 64, 2 layers)' if args.tiny else ''}, "
                        "random bf16 weights", "lora_rank": LORA_RANK, "seq_len": args.seq_len, "packing": True,
               "batch_size_per_gpu": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps,
               "multicast_off": {name: os.environ[name] for name in
                                 ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")}}
    setups: dict = {}

    def record(name: str, figures: dict) -> None:
        """Written after each setup: a run cut short keeps what it measured."""
        setups[name] = figures
        atomic_write_json(args.output, {**results, **setups})

    record("ddp_1gpu", run_setup("ddp_1gpu", "single_gpu.yaml", 1, args))
    for count in DDP_COUNTS:
        if count > gpus:
            record(f"ddp_{count}gpu", {"status": "not_run", "reason": f"needs {count} GPUs, {gpus} visible"})
            continue
        save = ["--set", f"finetune.save_steps={args.steps}"] if count == 2 else ["--set", "finetune.save_steps=0"]
        record(f"ddp_{count}gpu", run_setup(f"ddp_{count}gpu", "ddp.yaml", count, args, *save))
    record("resume_2gpu_to_1gpu", run_resume(args) if setups["ddp_2gpu"].get("status") == "ok"
           else {"status": "not_run", "reason": "no 2-GPU run"})
    allreduce = {count: measure_allreduce(count, lora_trainable_params(TINY if args.tiny else LLAMA3_8B))
                 for count in DDP_COUNTS if cuda and count <= gpus}
    for count, probe in allreduce.items():
        if probe.get("status") == "ok":
            print(f"all-reduce of the LoRA gradients ({probe['bytes'] / 1e6:.0f} MB) on {count} GPUs: "
                  f"{probe['allreduce_ms']:.2f} ms ({probe['bus_gb_per_s']} GB/s bus)", flush=True)
    if args.skip_fsdp or gpus < 2 or not cuda:
        reason = "--skip-fsdp" if args.skip_fsdp else "needs 2 GPUs" if cuda else "accelerate's FSDP needs GPUs"
        record("fsdp_full", {"status": "not_run", "reason": reason})
    else:
        record("fsdp_full", run_setup("fsdp_full", "fsdp.yaml", gpus, args, "--full-finetune",
                                      "--set", "finetune.save_steps=0", "--set", "finetune.learning_rate=1e-5",
                                      steps=args.fsdp_steps, warmup=min(3, args.fsdp_steps - 1)))
    results.update(setups)
    results["allreduce"] = {f"{count}gpu": probe for count, probe in allreduce.items()}
    results["scaling"] = scaling(setups, allreduce)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    atomic_write_json(args.output, results)
    print(f"wrote {args.output} ({results['wall_s']:.0f} s in all)")
    return 0 if all(s.get("status") != "failed" for s in setups.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
