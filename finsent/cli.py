"""A stage script's config: the file, then `--set` overrides, then the script's own flags; and the
`.env` of the working directory, read here once for every script (API keys, HF_TOKEN)."""
from __future__ import annotations

import argparse
from typing import Any

from dotenv import find_dotenv, load_dotenv

from finsent.config import FinsentConfig, load_config
from utils.cli import parse_set


def config_from_args(args: argparse.Namespace, flag_overrides: dict[str, Any] | None = None) -> FinsentConfig:
    """Config file, then `--set` overrides, then the script's own flags (None = not given). Loads
    `.env` first: a variable already in the environment wins over it."""
    load_dotenv(find_dotenv(usecwd=True), override=False)
    overrides = parse_set(args.overrides)
    overrides.update({k: v for k, v in (flag_overrides or {}).items() if v is not None})
    return load_config(args.config, overrides)
