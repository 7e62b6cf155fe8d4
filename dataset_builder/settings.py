"""The `dataset:` section of config.yaml (steps 01–05)."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tweets_csv: Path = Path("examples/airline_tweets/Tweets.csv")
    phrasebank_dir: Path = Path("examples/financial_phrasebank")
    news_dir: Path = Path("examples/news")
    output_dir: Path = Path("data")
    seed: int = 42
