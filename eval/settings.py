"""The `eval:` section of config.yaml. The original study's keys keep their names and
meaning, and may stand at the top level of the file as they did there."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- the original's keys -------------------------------------------------------------
    models_to_test: list[str | dict] = Field(default_factory=list)
    comparison_pairs: list[list[str]] = Field(default_factory=list)
    sentiment_save_folder: str = "sentiments"
    sample_size: int = Field(default=15, ge=1)
    report_example_sample_size: int = Field(default=5, ge=0)
    ticker_symbol: str = "MSFT"
    max_news_age: float = Field(default=1, gt=0)
    max_news_items: int = Field(default=20, ge=1)
    report_output_file: str = "reports/model_metrics.xlsx"
    report_output_csv_file: str = "reports/model_metrics.csv"
    report_output_csv_folder: str = "reports"
    heatmaps_folder: str = "heatmaps"
    default_temperature: float = Field(default=0.2, ge=0)
    context_window_size: int = Field(default=8192, ge=256)
    num_tokens_to_predict: int = Field(default=1024, ge=1)
    # --- reports (added by the reports stage) ----------------------------------------------
    comparison_report_file: str = "reports/model_comparisons.xlsx"
    quantization_families: dict[str, list[str]] = Field(default_factory=dict)
    heatmap_workers: int = Field(default=0, ge=0)
