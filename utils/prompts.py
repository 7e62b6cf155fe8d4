"""The prompt every stage shares: a system prompt and 5-shot instructions (files in
`utils/messages/`), with `{date_msg}` filled for dated news, just before the text."""
from __future__ import annotations

import re
from datetime import date
from functools import cache
from importlib.resources import files

_SPACE_RUN = re.compile(r" {2,}")


@cache
def _message(name: str) -> str:
    return files("utils").joinpath("messages", name).read_text(encoding="utf-8").strip()


def system_prompt() -> str:
    return _message("system.txt")


def date_message(published: date | str | None) -> str:
    if not published:
        return ""
    return f"The text was published on {published}; judge it as of that date."


def instructions(date_msg: str = "") -> str:
    """The 5-shot instructions; `{date_msg}` is their last line, so every article's prompt shares
    all that comes before it and a server's prompt cache (llama.cpp, Ollama, OpenAI) reuses it."""
    return _message("instructions.txt").replace("{date_msg}", date_msg).rstrip()


def prompt_text(text: str) -> str:
    """A text as every prompt carries it, in training (finetune/data.py) and when served: runs of
    spaces made one and the ends stripped. Gemma's tokenizer in transformers and llama.cpp's split
    a run of spaces differently ("▁▁", "travel", "ing" against "▁", "▁traveling"), so a tweet with
    two spaces would be trained in one tokenization and served in another; single spaces agree."""
    return _SPACE_RUN.sub(" ", text).strip()


def analysis_messages(text: str, date_msg: str = "", few_shot: bool = True) -> list[dict[str, str]]:
    """OpenAI-style chat messages asking for a SentimentResponse about `text`.

    `few_shot=False` gives the short form a fine-tuned model was trained on: system + text.
    """
    text = prompt_text(text)
    user = f"{instructions(date_msg)}\n\nText: {text}\nAnswer:" if few_shot else text
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": user}]
