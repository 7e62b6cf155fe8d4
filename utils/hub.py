"""Uploads to the Hugging Face Hub, for step 05's dataset and the fine-tune stage's model: the token
only from HF_TOKEN (the environment, or `.env`, which the scripts load: finsent.cli) and never in a
message; every failure (no token, a refused token, no network, the Hub's refusal) one line.

`upload_folder` is huggingface_hub's `HfApi.upload_folder`: with `hf_xet` (a huggingface_hub
dependency) it streams files in chunks, commits large folders in several parts and resumes an
interrupted upload when run again (committed files skipped, uploaded chunks deduplicated).
`HF_ENDPOINT` points it at another Hub (the tests use a local server)."""
from __future__ import annotations

import os
from pathlib import Path

from utils.errors import FinsentError


def hub_token(repo_id: str) -> str:
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise FinsentError(f"--push-to-hub {repo_id}: no Hugging Face token: set HF_TOKEN in the "
                           "environment or in .env (a token with write access)")
    return token


def upload_folder(folder: Path, repo_id: str, repo_type: str, private: bool, commit_message: str,
                  allow_patterns: list[str] | None = None) -> str:
    """Create the repo if needed (private or not), upload `folder` (the files of `allow_patterns`);
    the repo's URL."""
    from huggingface_hub import HfApi  # imported here: only this path needs it

    token = hub_token(repo_id)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                          allow_patterns=allow_patterns, commit_message=commit_message)
    except Exception as exc:  # network, auth and hub errors all end the same way: one line
        raise FinsentError(f"--push-to-hub {repo_id}: {describe_hub_error(exc, token)}") from None
    return str(url)


def check_repo_id(repo_id: str) -> None:
    """USER/REPO as the Hub accepts it, else one line (before any request)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise FinsentError(f"--push-to-hub {repo_id!r}: expected USER/REPO (letters, digits, '-', '_', '.')") from None
    if "/" not in repo_id:
        raise FinsentError(f"--push-to-hub {repo_id!r}: expected USER/REPO, with the user or organisation")


def describe_hub_error(error: Exception, token: str) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        reason = f"the token was refused (HTTP {status}); check HF_TOKEN has write access"
    elif status is not None:
        reason = f"the hub answered HTTP {status}"
    else:
        reason = "cannot reach the Hugging Face Hub (offline?)"
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0].replace(token, "***")
    return f"{reason}: {type(error).__name__}: {detail[:200]}"
