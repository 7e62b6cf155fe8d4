"""`--push-to-hub REPO`: upload the ShareGPT folder as a Hugging Face dataset repository.

The token comes only from HF_TOKEN (environment or `.env`, which the scripts load: finsent.cli) and
never appears in a message.
"""
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


def push_folder(folder: Path, repo_id: str, private: bool) -> str:
    """Create (if needed) the dataset repo `repo_id` and upload `folder`; returns its URL."""
    from huggingface_hub import HfApi  # imported here: only this path needs it

    token = hub_token(repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message="finsent dataset builder: step 05")
    except Exception as exc:  # network, auth and hub errors all end the same way: one line
        raise FinsentError(f"--push-to-hub {repo_id}: {_describe(exc, token)}") from None
    return f"https://huggingface.co/datasets/{repo_id}"


def _describe(error: Exception, token: str) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        reason = f"the token was refused (HTTP {status}); check HF_TOKEN has write access"
    elif status is not None:
        reason = f"the hub answered HTTP {status}"
    else:
        reason = "cannot reach the Hugging Face Hub (offline?)"
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0].replace(token, "***")
    return f"{reason}: {type(error).__name__}: {detail[:200]}"
