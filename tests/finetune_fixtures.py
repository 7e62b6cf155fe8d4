"""Fixtures of the fine-tune tests: the families' real tokenizers (finetune/random_models.py), a tiny
random Llama with the real Llama-3 tokenizer, and ShareGPT files built from the real Financial
PhraseBank in step 05's format, with step 02's reasoning. Import the fixtures a test module uses by name."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from dataset_builder.evidence import evidence_reasoning
from utils.prompts import system_prompt

LABEL_SCORES = {"positive": 0.8, "neutral": 0.0, "negative": -0.8}


@pytest.fixture(scope="session")
def llama_cpp_vendor() -> Path:
    from finetune.llama_cpp_source import llama_cpp_dir

    return llama_cpp_dir()


@cache
def load_family_tokenizer(family: str, vendor: Path):
    """Read once per session (converting a GGUF vocab takes seconds); callers copy before changing it."""
    from finetune.random_models import family_tokenizer

    return family_tokenizer(family, vendor)


def phrasebank_rows(shared_data: Path, count: int, offset: int = 0) -> list[tuple[str, str]]:
    lines = (shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt").read_text(encoding="latin-1").splitlines()
    rows = [line.rsplit("@", 1) for line in lines if "@" in line]
    return [(text.strip(), label.strip()) for text, label in rows[offset: offset + count]]


def sharegpt_record(text: str, label: str) -> dict:
    answer = {"reasoning": evidence_reasoning(text, label),
              "sentiment": LABEL_SCORES[label], "confidence": 0.9}
    return {"conversations": [{"from": "system", "value": system_prompt()},
                              {"from": "human", "value": text},
                              {"from": "gpt", "value": json.dumps(answer)}],
            "source": "financial_phrasebank", "label": label}


def write_sharegpt(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(sharegpt_record(text, label)) + "\n" for text, label in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sharegpt_splits(tmp_path_factory, shared_data) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sharegpt")
    return {"train": write_sharegpt(folder / "train.jsonl", phrasebank_rows(shared_data, 24)),
            "validation": write_sharegpt(folder / "validation.jsonl", phrasebank_rows(shared_data, 8, offset=1000))}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, llama_cpp_vendor) -> Path:
    """A 2-layer random Llama (hidden 64) with the real Llama-3 tokenizer, saved as an HF folder."""
    from finetune.random_models import save_random_model

    return save_random_model("llama-3", tmp_path_factory.mktemp("tiny-llama") / "model", llama_cpp_vendor, tiny=True,
                             tokenizer=load_family_tokenizer("llama-3", llama_cpp_vendor))
