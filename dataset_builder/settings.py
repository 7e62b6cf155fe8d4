"""The `dataset:` section of config.yaml (steps 01–05)."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SplitFractions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: float = Field(default=0.8, ge=0, le=1)
    validation: float = Field(default=0.1, ge=0, le=1)
    test: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitFractions":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, got {total:g}")
        return self


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # inputs
    tweets_csv: Path = Path("examples/airline_tweets/Tweets.csv")
    phrasebank_dir: Path = Path("examples/financial_phrasebank")
    phrasebank_encoding: str = "iso-8859-1"
    news_dir: Path = Path("examples/news")
    output_dir: Path = Path("data")
    seed: int = 42

    # step 01: keep the first tweet of each repeated text only (14,427 of 14,640)
    tweets_dedupe: bool = False
    # step 02: the original's concatenation of the four nested files (14,780 rows, leaky)
    phrasebank_original_concat: bool = False

    # outputs of each step (step 03's is written by the labeller)
    step_01_csv: Path = Path("data/step_01_tweets.csv")
    step_02_csv: Path = Path("data/step_02_phrasebank.csv")
    step_03_csv: Path = Path("data/step_03_news.csv")
    step_04_csv: Path = Path("data/step_04_joined.csv")
    step_05_dir: Path = Path("data/sharegpt")

    # step 05
    split_fractions: SplitFractions = Field(default_factory=SplitFractions)
    # |sentiment| above this is labelled positive/negative, otherwise neutral
    label_threshold: float = Field(default=0.15, ge=0, lt=1)
    hub_private: bool = True
