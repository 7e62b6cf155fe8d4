"""User-facing errors: one line that names the file, row or key; exit code 2."""
from __future__ import annotations

import logging
import re
import sys
from functools import wraps
from importlib import metadata
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]


class FinsentError(Exception):
    """A problem with the user's input or environment, reported in one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, re-raised with what a rerun continues from (cli_entry prints it after `interrupted:`)."""


INTERRUPTED = "what was written so far is kept; rerun to continue"


def quiet_client_logs(verbose: bool = False) -> None:
    """The HTTP clients log one INFO line per request (hundreds per run, breaking the progress
    bar; the embedded engine's health polls too): keep them at WARNING unless `verbose`."""
    # openai 3 sends through httpx2/httpcore2, groq through httpx/httpcore.
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "groq"):
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def show_info_logs() -> None:
    """The pipeline's INFO lines (train.py's per-step tokens/s, MFU and peak memory among them) are
    its progress: a library that configured the root logger at import, before basicConfig could
    (Unsloth's import sets it to WARNING), would silence them. Its handler stays; the level is raised
    to INFO only where it is coarser."""
    root = logging.getLogger()
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a script's main(): FinsentError, a file that cannot be read or written (an OSError
    naming it) and Ctrl-C become one line on stderr, exit ≠ 0."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        show_info_logs()
        quiet_client_logs()
        try:
            return main(*args, **kwargs) or 0
        except FinsentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            if exc.filename is None:  # not about a file the user named: a bug, shown whole
                raise
            print(f"error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            _close_progress_bars()
            print(f"interrupted: {exc if isinstance(exc, Interrupted) else INTERRUPTED}", file=sys.stderr)
            return 130

    return wrapper


def _close_progress_bars() -> None:
    """Close the bars a Ctrl-C left open now, so that their last redraw comes before the
    `interrupted:` line, not after it on the same line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


def require_extra(extra: str) -> None:
    """Before a script imports an optional extra's packages: if one of requirements-<extra>.txt
    is not installed, say so in one line naming the install command, and exit 2."""
    requirements = REPO_ROOT / f"requirements-{extra}.txt"
    lines = requirements.read_text(encoding="utf-8").splitlines() if requirements.is_file() else []
    for line in lines:
        name = re.split(r"[\s=<>!~;\[#]", line.strip(), maxsplit=1)[0]
        if not name:
            continue
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"error: '{name}' is not installed: this script needs the {extra} extras, "
                  f"`pip install -e '.[{extra}]'`", file=sys.stderr)
            raise SystemExit(2) from None
