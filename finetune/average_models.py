"""Average the weights of several full fine-tunes of one base model (a "model soup") into one HF
folder that export_gguf.py exports like a merged run (its chat template comes along, or pass --family).

  python finetune/average_models.py --model RUN1/merged --model RUN2/merged --output SOUP [--weights 0.5,0.5]
  python finetune/export_gguf.py --model SOUP --gguf-dir G --name N --family gemma-3 --quants f16
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from utils.cli import help_before_imports, stage_parser  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__.strip().splitlines()[0])
    parser.add_argument("--model", action="append", required=True, type=Path, metavar="DIR",
                        help="a merged full fine-tune's HF folder (RUN/merged); twice or more")
    parser.add_argument("--output", required=True, type=Path, help="the averaged model's folder")
    parser.add_argument("--weights", help="comma-separated, one positive number per --model (default: equal); "
                                          "normalised to sum 1")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar over the tensors")
    return parser.parse_args(argv)


help_before_imports(parse_args)  # --help answers without the fine-tune extras

from utils.errors import require_extra  # noqa: E402

require_extra("finetune")  # one line naming the install command, not an ImportError's traceback

from finetune.model_soup import average_models, soup_weights  # noqa: E402
from finsent.cli import config_from_args  # noqa: E402
from utils.errors import cli_entry  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config_from_args(args)  # no config key is read, but --config and --set are checked as every stage checks them
    record = average_models(args.model, args.output, soup_weights(args.weights, len(args.model)),
                            overwrite=args.overwrite, progress=not args.no_progress)
    print(json.dumps(record, indent=2))
    print(f"averaged model: {args.output}  (next: python finetune/export_gguf.py --model {args.output} ...)")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
