"""Helpers for the labeller's tests: newsdata.io-style CSV exports and labeller configs."""
from __future__ import annotations

import csv
from pathlib import Path

import yaml

from dataset_builder.settings import LabellerConfig

EXPORT_COLUMNS = ["article_id", "title", "link", "keywords", "creator", "video_url", "description",
                  "content", "pubDate", "pubDateTZ", "image_url", "source_id", "source_priority",
                  "source_name", "source_url", "source_icon", "language", "country", "category",
                  "duplicate"]


def write_export(path: Path, articles: list[tuple[str, str]], day: str = "2024-05-14") -> Path:
    """A newsdata.io CSV export with these (title, description) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, restval="None")
        writer.writeheader()
        for number, (title, description) in enumerate(articles):
            writer.writerow({"article_id": f"a{number:05d}", "title": title, "description": description,
                             "link": f"https://news.example.com/{number}", "pubDate": f"{day} 09:{number % 60:02d}:00",
                             "pubDateTZ": "UTC", "source_id": "examplewire", "language": "english",
                             "category": "['business']", "duplicate": "False"})
    return path


def numbered_articles(count: int, prefix: str = "Company") -> list[tuple[str, str]]:
    return [(f"{prefix} {n} reports quarter number {n}", f"Revenue moved by {n % 17} percent in quarter {n}.")
            for n in range(count)]


def provider(kind: str, server, **extra) -> dict:
    """A provider entry reaching the fault server through the official client of `kind`."""
    url = server.root_url if kind == "groq" else server.base_url
    return {"name": extra.pop("name", kind), "kind": kind, "base_url": url,
            "models": extra.pop("models", ["test-model"]), "timeout_s": extra.pop("timeout_s", 2.0),
            **extra}


def fast_config(providers: list[dict], **extra) -> LabellerConfig:
    """Short waits so that retries and backoff take milliseconds in tests."""
    options = {"backoff_initial_s": 0.02, "backoff_max_s": 0.2, "max_retries": 4, "max_in_flight": 8}
    return LabellerConfig(providers=providers, **{**options, **extra})


def write_config(path: Path, config: LabellerConfig, **dataset) -> Path:
    data = {"dataset": {**{k: str(v) for k, v in dataset.items()},
                        "labeller": config.model_dump(mode="json")}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
