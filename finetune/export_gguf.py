"""Export a merged fine-tuned model to GGUF (f16, q8_0, q5_k_m, q4_k_m) with an Ollama Modelfile
per quant, offline: llama.cpp's converter from llama-cpp-python's sdist and its quantizer.
The chat family and the default name come from the run that trained the model (train_summary.json).

  python finetune/export_gguf.py --config config.yaml [--model DIR] [--quants q4_k_m,q8_0]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from finetune.settings import QUANTS  # noqa: E402
from utils.cli import help_before_imports, stage_parser  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__.strip().splitlines()[0])
    parser.add_argument("--model", help="merged HF model folder (default: <finetune.output_dir>/merged)")
    parser.add_argument("--output-dir", help="finetune.output_dir: the GGUFs go to its gguf/ folder")
    parser.add_argument("--gguf-dir", help="write the GGUFs and Modelfiles here instead")
    parser.add_argument("--quants", help=f"comma-separated, of {','.join(QUANTS)} (finetune.quants)")
    parser.add_argument("--name", help="file and model name (finetune.model_name; default: the base model's "
                                       "name + -finsent)")
    parser.add_argument("--family", help="chat format (default: the one the model was trained with)")
    parser.add_argument("--llama-cpp-source", help="llama-cpp-python sdist or a folder with convert_hf_to_gguf.py")
    return parser.parse_args(argv)


help_before_imports(parse_args)  # --help answers without the fine-tune extras

from utils.errors import require_extra  # noqa: E402

require_extra("finetune")  # one line naming the install command, not an ImportError's traceback

from finetune.gguf_export import TrainedRun, convert_to_f16, quantize  # noqa: E402
from finetune.llama_cpp_source import llama_cpp_dir  # noqa: E402
from finetune.modelfile import write_modelfile  # noqa: E402
from finetune.run_layout import OutputLayout, gguf_name  # noqa: E402
from finetune.settings import model_name_from_base  # noqa: E402
from finetune.tokenizer_check import check_exported_gguf, probe_conversations  # noqa: E402
from finsent.cli import config_from_args  # noqa: E402
from utils.chat_templates import family_record  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import read_json  # noqa: E402

log = logging.getLogger("finetune.export_gguf")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args, {
        "finetune.output_dir": args.output_dir, "finetune.model_name": args.name,
        "finetune.quants": args.quants.split(",") if args.quants else None,
        "finetune.llama_cpp_source": args.llama_cpp_source}).finetune
    layout = OutputLayout(cfg.output_dir)
    model_dir = Path(args.model) if args.model else layout.merged
    if not (model_dir / "config.json").is_file():
        raise FinsentError(f"no merged model in {model_dir} (train first, or pass --model DIR)")
    read_json(model_dir / "config.json")  # a damaged file named now, not by the converter's traceback
    run = TrainedRun.read(model_dir)
    family = run.family_for(args.family, cfg.family)
    family_record(family)
    name = cfg.model_name or model_name_from_base(run.base_model or cfg.base_model)
    log.info("exporting %s as %s (chat family %s, from %s)", model_dir, name, family,
             run.source if run.family else "the config")
    gguf_dir = Path(args.gguf_dir) if args.gguf_dir else layout.gguf
    gguf_dir.mkdir(parents=True, exist_ok=True)

    f16 = convert_to_f16(model_dir, gguf_dir / gguf_name(name, "f16"), llama_cpp_dir(cfg.llama_cpp_source))
    check_exported_gguf(f16, model_dir, family, probe_conversations())
    for quant in cfg.quants:
        target = f16 if quant == "f16" else quantize(f16, gguf_dir / gguf_name(name, quant), quant)
        modelfile = write_modelfile(gguf_dir / f"Modelfile.{quant}", target, family, cfg.temperature, cfg.num_ctx)
        print(f"{quant}: {target} ({target.stat().st_size / 1e6:.1f} MB)  ollama create {name}-{quant} "
              f"-f {modelfile}")
    if "f16" not in cfg.quants:
        f16.unlink()
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
