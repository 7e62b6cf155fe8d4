"""`--push-to-hub REPO`: upload the ShareGPT folder as a Hugging Face dataset repository (utils.hub:
the token only from HF_TOKEN, never in a message; one line for every failure)."""
from __future__ import annotations

from pathlib import Path

from utils.hub import upload_folder


def push_folder(folder: Path, repo_id: str, private: bool) -> str:
    """Create (if needed) the dataset repo `repo_id` and upload `folder`; returns its URL."""
    upload_folder(folder, repo_id, "dataset", private, "finsent dataset builder: step 05")
    return f"https://huggingface.co/datasets/{repo_id}"
