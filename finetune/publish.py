"""Publish a fine-tune to the Hugging Face Hub: the merged 16-bit model, the LoRA adapter (where
there is one), every GGUF quant with its Modelfile, and a model card (README.md: base, family,
data and recipe, the trained system prompt, the measured figures of --labelled runs, the
`ollama create` commands, the licence). Private unless --public (finetune.hub_private); the token
only from HF_TOKEN (environment or .env); an interrupted upload resumes when run again.

  python finetune/publish.py --push-to-hub USER/REPO --labelled reports/labelled/finetune
  python finetune/publish.py --push-to-hub USER/REPO --dry-run   # list files and sizes, write the card"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from finetune.hub_publish import human_size, push, write_card
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.hub import check_repo_id
from utils.errors import cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--push-to-hub", required=True, metavar="USER/REPO", help="the model repository")
    parser.add_argument("--output-dir", help="the run folder (finetune.output_dir)")
    parser.add_argument("--labelled", action="append", default=[], metavar="FOLDER",
                        help="evaluate_labelled output folder(s) of this model, for the card's figures")
    parser.add_argument("--model-details", help="eval's model_details.csv, for the card's consistency figures "
                                                "(default: <eval.report_output_csv_folder>/model_details.csv)")
    parser.add_argument("--public", action="store_true", default=None, help="a public repository (default: private)")
    parser.add_argument("--dry-run", action="store_true", help="list the files and their sizes, write the card, "
                                                               "upload nothing")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"finetune.output_dir": args.output_dir,
                                     "finetune.hub_private": False if args.public else None})
    repo_id, run_dir = args.push_to_hub, Path(config.finetune.output_dir)
    check_repo_id(repo_id)
    # The eval stage's table where it ran (none: no consistency figures); one named must be read.
    details = Path(config.eval.report_output_csv_folder) / "model_details.csv"
    details = Path(args.model_details) if args.model_details else details if details.exists() else None

    card, files = write_card(run_dir, repo_id, config.finetune, [Path(f) for f in args.labelled], details)
    for file in files:
        print(f"{human_size(file.size):>10}  {file.path}")
    visibility = "private" if config.finetune.hub_private else "public"
    print(f"{len(files)} files, {human_size(sum(f.size for f in files))}, for the {visibility} repo {repo_id}; "
          f"model card: {card}")
    if args.dry_run:
        print("dry run: nothing uploaded")
        return 0
    print(f"uploaded: {push(run_dir, repo_id, config.finetune.hub_private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
