"""Fine-tune a chat model on step 05's ShareGPT splits: Unsloth LoRA (or full fine-tuning) on a
CUDA GPU, or the same recipe on transformers + PEFT with --backend hf (any device; several
GPUs under `accelerate launch`). Saves checkpoints, the LoRA adapter and a merged 16-bit model.

  python finetune/train.py --config config.yaml [--backend hf] [--resume | --overwrite]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from finetune.settings import ATTN_IMPLEMENTATIONS  # noqa: E402
from utils.cli import help_before_imports, stage_parser  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__.strip().splitlines()[0] + " (config keys: finetune.*)")
    parser.add_argument("--backend", choices=["unsloth", "hf"], help="training backend (finetune.backend)")
    parser.add_argument("--base-model", help="HF folder or hub id of the base model (finetune.base_model)")
    parser.add_argument("--family", help="chat format: gemma-3, llama-3, mistral, phi-3 (finetune.family)")
    parser.add_argument("--train", help="ShareGPT JSONL to train on (finetune.train_file)")
    parser.add_argument("--validation", help="ShareGPT JSONL for the validation loss (finetune.validation_file)")
    parser.add_argument("--output-dir", help="where checkpoints, adapter and merged model go (finetune.output_dir)")
    parser.add_argument("--full-finetune", action="store_true", default=None, help="train every weight, not LoRA")
    parser.add_argument("--epochs", type=float, help="finetune.epochs")
    parser.add_argument("--learning-rate", type=float, help="finetune.learning_rate")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps (finetune.max_steps)")
    parser.add_argument("--packing", action=argparse.BooleanOptionalAction, help="pack sequences (finetune.packing)")
    parser.add_argument("--max-seq-length", type=int, help="finetune.max_seq_length")
    parser.add_argument("--padding-free", action=argparse.BooleanOptionalAction,
                        help="flatten each batch into one row, positions per conversation (finetune.padding_free)")
    parser.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS,
                        help="transformers' attention kernel, hf backend (finetune.attn_implementation)")
    parser.add_argument("--liger-kernel", action=argparse.BooleanOptionalAction, dest="use_liger_kernel",
                        help="liger-kernel's fused kernels, hf backend on CUDA (finetune.use_liger_kernel)")
    parser.add_argument("--torch-compile", action=argparse.BooleanOptionalAction,
                        help="torch.compile the model, hf backend (finetune.torch_compile)")
    parser.add_argument("--resume", action="store_true", help="continue from the output folder's last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing output folder and start over")
    return parser.parse_args(argv)


help_before_imports(parse_args)  # --help answers without the fine-tune extras

from utils.errors import require_extra  # noqa: E402

require_extra("finetune")  # one line naming the install command, not an ImportError's traceback

from finetune.multigpu import keep_multicast_off  # noqa: E402

keep_multicast_off()  # before torch.distributed starts NCCL in this process

from finetune.recipe import exit_if_unsloth_without_cuda, import_unsloth_if_chosen  # noqa: E402
from finsent.cli import config_from_args  # noqa: E402

exit_if_unsloth_without_cuda(sys.argv[1:], config_from_args)
import_unsloth_if_chosen(sys.argv[1:], config_from_args)  # before transformers, peft and trl: Unsloth patches them at import

from accelerate import PartialState  # noqa: E402
from transformers import set_seed  # noqa: E402

from finetune.data import read_sharegpt, read_validation, tokenized_dataset  # noqa: E402
from finetune.llama_cpp_source import llama_cpp_dir  # noqa: E402
from finetune.recipe import (Device, check_backend, choose_precision, count_params, flops_per_token,  # noqa: E402
                             load_model, peak_flops)
from finetune.run_layout import OutputLayout  # noqa: E402
from finetune.tokenizer_check import check_before_training, sample_conversations  # noqa: E402
from finetune.trainer_setup import ThroughputCallback, build_trainer, save_outputs, write_summary  # noqa: E402
from utils.chat_templates import family_record  # noqa: E402
from utils.errors import Interrupted, cli_entry  # noqa: E402
from utils.io import check_writable  # noqa: E402

log = logging.getLogger("finetune.train")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args, {
        "finetune.backend": args.backend, "finetune.base_model": args.base_model, "finetune.family": args.family,
        "finetune.train_file": args.train, "finetune.validation_file": args.validation,
        "finetune.output_dir": args.output_dir, "finetune.full_finetune": args.full_finetune,
        "finetune.epochs": args.epochs, "finetune.learning_rate": args.learning_rate,
        "finetune.max_steps": args.max_steps, "finetune.packing": args.packing,
        "finetune.max_seq_length": args.max_seq_length, "finetune.padding_free": args.padding_free,
        "finetune.attn_implementation": args.attn_implementation, "finetune.use_liger_kernel": args.use_liger_kernel,
        "finetune.torch_compile": args.torch_compile}).finetune
    family_record(cfg.family)
    device = Device.detect()
    check_backend(cfg, device)
    layout = OutputLayout(cfg.output_dir)
    resume_from = layout.check(resume=args.resume, overwrite=args.overwrite)
    check_writable(layout.root, folder=True)  # before the data is read and the model loaded
    conversations = {"train": read_sharegpt(cfg.train_file),
                     "validation": read_validation(cfg.validation_file, cfg.eval_limit, device.cuda)
                     if cfg.validation_file else None}
    if resume_from:
        log.info("resuming from %s", resume_from)
    state = PartialState()
    if state.is_main_process and args.overwrite:
        layout.clear()
    state.wait_for_everyone()
    set_seed(cfg.seed)

    n_params, matmul_params = count_params(cfg.base_model)
    precision = choose_precision(cfg, device, n_params)
    log.info("%s backend, %s, %.0fM parameters, %s%s on %s (%d process(es))", cfg.backend,
             "full fine-tune" if cfg.full_finetune else f"LoRA r={cfg.lora_r}", n_params / 1e6, precision.name,
             ", 4-bit base" if precision.load_in_4bit else "", device.name, state.num_processes)
    model, tokenizer = load_model(cfg, precision)
    if state.is_main_process:  # seconds, before hours of GPU time are spent on ids llama.cpp will not serve
        check_before_training(tokenizer, cfg.family, cfg.base_model, sample_conversations(conversations["train"]),
                              llama_cpp_dir(cfg.llama_cpp_source))
    train_set = tokenized_dataset(conversations["train"], tokenizer, cfg.family, cfg.max_seq_length, str(cfg.train_file))
    validation_set = (tokenized_dataset(conversations["validation"], tokenizer, cfg.family, cfg.max_seq_length,
                                        str(cfg.validation_file))
                      if conversations["validation"] else None)

    peak = peak_flops(device, precision)
    throughput = ThroughputCallback(flops_per_token(matmul_params, cfg.full_finetune),
                                    peak * state.num_processes if peak else None, layout.throughput_log)
    trainer = build_trainer(cfg, model, tokenizer, train_set, validation_set, precision, layout, throughput,
                            use_cpu=not device.cuda)
    try:
        train_metrics = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None).metrics
    except KeyboardInterrupt:
        raise Interrupted(layout.resume_hint()) from None
    figures = throughput.summary(trainer.accelerator)
    eval_metrics = trainer.evaluate() if validation_set is not None else {}
    if cfg.save_final:
        save_outputs(trainer, cfg, tokenizer, precision, layout)
    if state.is_main_process:
        summary = write_summary(layout, cfg, precision, device.name, state.num_processes,
                                train_metrics, eval_metrics, figures)
        print(json.dumps(summary, indent=2))
        if cfg.save_final:
            print(f"merged model: {layout.merged}  (next: python finetune/export_gguf.py --config ...)")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
