"""Publish a fine-tune to the Hugging Face Hub: the run's folder as a model repository.

What goes up (paths in the repo are the run folder's own, so the Modelfiles' `FROM ./x.gguf` and
`from_pretrained(REPO, subfolder="merged")` work on a download): `README.md` (the model card
written here), `train_summary.json`, `adapter/` (the LoRA adapter, where there is one),
`merged/` (the merged 16-bit model) and every `gguf/*.gguf` with its `gguf/Modelfile.<quant>`.
Checkpoints and logs stay home.

The upload is utils.hub's (huggingface_hub's `upload_folder` over `hf_xet`: chunked, committed in
parts, resumed when run again); the token comes only from HF_TOKEN and is never printed.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.settings import FinetuneConfig, model_name_from_base
from utils.chat_templates import family_record
from utils.errors import FinsentError
from utils.hub import upload_folder
from utils.io import atomic_write_text, read_csv_rows, read_json
from utils.labelled_runs import read_metrics, read_run, weighted_f1_interval
from utils.prompts import system_prompt

CARD = "README.md"
UPLOADED = [CARD, "train_summary.json", "adapter/*", "merged/*", "gguf/*.gguf", "gguf/Modelfile.*"]


@dataclass(frozen=True)
class RepoFile:
    path: str  # in the repo (= relative to the run folder)
    size: int


def files_to_upload(run_dir: Path) -> list[RepoFile]:
    """Every file of the run folder that is published (the card included once it is written)."""
    if not run_dir.is_dir():
        raise FinsentError(f"run folder not found: {run_dir} (finetune.output_dir, or --output-dir)")
    found = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(run_dir).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) for pattern in UPLOADED) and "/." not in f"/{relative}":
            found.append(RepoFile(relative, path.stat().st_size))
    if not any(f.path.startswith(("merged/", "adapter/", "gguf/")) for f in found):
        raise FinsentError(f"{run_dir}: no merged/, adapter/ or gguf/ to publish (train and export first)")
    return found


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def figures_table(labelled: list[Path]) -> str:
    """The card's measured figures: one row per evaluate_labelled run."""
    if not labelled:
        return ("No `evaluate_labelled` run was found for this model (pass `--labelled FOLDER`); measure it with "
                "`python eval/evaluate_labelled.py --gguf ... --prompt trained --output FOLDER`.")
    lines = ["| model | data | rows | valid JSON | t | accuracy | macro-F1 | weighted F1 [95% interval] | "
             "sentiment values |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for folder in labelled:
        m = read_metrics(folder)
        chosen = m["at_chosen_threshold"]
        low, high = weighted_f1_interval(read_run(folder))
        lines.append(f"| {m['model']} | {Path(str(m['input']).split(' (')[0]).name} | {m['rows']} | "
                     f"{m['valid_json_rate']:.1%} | {m['threshold_chosen']:.2f} | {chosen['accuracy']:.3f} | "
                     f"{chosen['macro_f1']:.3f} | {chosen['weighted_f1']:.3f} [{low:.3f}, {high:.3f}] | "
                     f"{m.get('sentiment_distinct_values', '-')} |")
    return "\n".join(lines)


DETAILS_COLUMNS = ("Model Name", "Valid JSON Rate", "Mean Per-Article Variance", "Sentiment Variance")


def consistency_table(model_details: Path | None, name: str) -> str:
    """The eval stage's consistency figures of this model's quants (model_details.csv, as
    eval/generate_model_comparison_report.py writes it), if it ran; a file that is not that
    table is one line naming it."""
    if model_details is None:
        return ""
    rows = []
    for line, row in read_csv_rows(model_details, DETAILS_COLUMNS, "model details CSV"):
        if row["Model Name"].lower().startswith(name.lower()):
            rows.append((row["Model Name"], *(_number(row, column, f"{model_details}: line {line}")
                                              for column in DETAILS_COLUMNS[1:])))
    if not rows:
        return ""
    lines = ["", "Consistency on the eval stage's news snapshot (`eval/generate_model_metrics.py`):", "",
             "| model | valid JSON | mean per-article variance | sentiment variance |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {model} | {valid:.1%} | {per_article:.4f} | {variance:.4f} |"
              for model, valid, per_article, variance in rows]
    return "\n".join(lines)


def _number(row: dict[str, str], column: str, where: str) -> float:
    try:
        return float(row[column])
    except ValueError:
        raise FinsentError(f"{where}: {column} {row[column]!r} is not a number") from None


def model_card(repo_id: str, name: str, cfg: FinetuneConfig, summary: dict[str, Any], files: list[RepoFile],
               labelled: list[Path], model_details: Path | None) -> str:
    """README.md of the model repo: metadata, what it is, how it was made and measured, how to run it."""
    from huggingface_hub import ModelCardData

    family = summary.get("family") or cfg.family
    base = summary.get("base_model") or cfg.base_model
    licence = family_record(family).license
    ggufs = [f.path for f in files if f.path.endswith(".gguf")]
    quants = [Path(g).stem.removeprefix(f"{name}-") for g in ggufs]
    has_adapter = any(f.path.startswith("adapter/") for f in files)
    metadata = ModelCardData(base_model=base if "/" in base and not Path(base).exists() else None,
                             license=licence, library_name="transformers", pipeline_tag="text-generation",
                             tags=["finsent", "financial-sentiment", "sentiment-analysis", "gguf",
                                   "lora" if has_adapter else "full-finetune"]).to_yaml()
    recipe = summary.get("recipe") or {**cfg.model_dump(mode="json"), "from_config": True}
    files_table = "\n".join(f"| `{f.path}` | {human_size(f.size)} |" for f in files)
    ollama = "\n".join(f"hf download {repo_id} gguf/{Path(g).name} gguf/Modelfile.{q} --local-dir {name}\n"
                       f"ollama create {name}-{q} -f {name}/gguf/Modelfile.{q}" for g, q in zip(ggufs, quants))
    return f"""---
{metadata}
---

# {name}

A financial-sentiment model: `{base}` ({family} chat format) fine-tuned with
finsent to answer, about a financial text, one JSON object
`{{"reasoning": str, "sentiment": float in [-1, 1], "confidence": float in [0, 1]}}`.
A sentiment above t is positive, below -t negative, else neutral.

## Files

| file | size |
| --- | ---: |
{files_table}

`merged/` is the 16-bit model (`AutoModelForCausalLM.from_pretrained("{repo_id}", subfolder="merged")`);
{"`adapter/` the LoRA adapter over the base; " if has_adapter else ""}`gguf/` the llama.cpp quantizations
({", ".join(quants) or "none"}), each with its Ollama `Modelfile.<quant>` (template, stops, system prompt).

## Data and recipe

- base model: `{base}`, chat family `{family}`; backend `{summary.get("backend", cfg.backend)}`,
  precision {summary.get("precision", "-")}, on {summary.get("device", "-")}
- data: finsent's step 05 ShareGPT dataset (`{Path(str(recipe["train_file"])).name}`: airline tweets, Financial
  PhraseBank, LLM-labelled news), one system prompt + the bare text → the JSON answer
- recipe{" (from the config: the run recorded none)" if recipe.get("from_config") else ""}: {recipe_line(recipe)}
- train loss {_figure(summary.get("train_loss"))}, validation loss {_figure(summary.get("eval_loss"))}

The system prompt it was trained with (send it, then the text alone, as the user turn):

```text
{system_prompt()}
```

## Measured

{figures_table(labelled)}
{consistency_table(model_details, name)}

## Run it

```bash
{ollama or "# no GGUF in this repository"}
python eval/ask.py --gguf {name}/{ggufs[0] if ggufs else "gguf/MODEL.gguf"} "Operating profit rose to EUR 13.1 mn."
```

## Licence

`{licence}`: the licence of the base model `{base}`, whose terms this fine-tune inherits.
"""


def recipe_line(recipe: dict[str, Any]) -> str:
    how = ("full fine-tune" if recipe["full_finetune"]
           else f"LoRA r = {recipe['lora_r']}, alpha = {recipe['lora_alpha']}, dropout {recipe['lora_dropout']:g}")
    steps = recipe["max_steps"]
    length = f"{steps} step{'s' * (steps != 1)}" if steps > 0 else f"{recipe['epochs']:g} epochs"
    return (f"{how}; {length}, learning rate {recipe['learning_rate']:g} ({recipe['lr_scheduler']}, warmup "
            f"{recipe['warmup_ratio']:g}), batch {recipe['batch_size']} × {recipe['gradient_accumulation_steps']} "
            f"accumulation, max sequence {recipe['max_seq_length']}{', packed' if recipe['packing'] else ''}, "
            f"seed {recipe['seed']}")


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def write_card(run_dir: Path, repo_id: str, cfg: FinetuneConfig, labelled_folders: list[Path],
               model_details: Path | None) -> tuple[Path, list[RepoFile]]:
    """Write README.md into the run folder; returns it and the files to upload (the card among them)."""
    summary_path = run_dir / "train_summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    name = cfg.model_name or _name_from_ggufs(run_dir) or model_name_from_base(summary.get("base_model") or cfg.base_model)
    for folder in labelled_folders:
        try:
            read_metrics(folder)
        except FinsentError as exc:
            raise FinsentError(f"--labelled {exc}") from None
    files = [f for f in files_to_upload(run_dir) if f.path != CARD]
    card = model_card(repo_id, name, cfg, summary, files, labelled_folders, model_details)
    path = run_dir / CARD
    atomic_write_text(path, card)
    return path, files_to_upload(run_dir)


def _name_from_ggufs(run_dir: Path) -> str | None:
    """The model name the export used: the GGUFs' common stem before -<quant>."""
    names = {p.stem.rsplit("-", 1)[0] for p in (run_dir / "gguf").glob("*.gguf")}
    return names.pop() if len(names) == 1 else None


def push(run_dir: Path, repo_id: str, private: bool) -> str:
    """Create the model repo (private unless told) and upload the run's published files; its URL."""
    return upload_folder(run_dir, repo_id, "model", private, "finsent: fine-tuned model, GGUF quants and model card",
                         allow_patterns=UPLOADED)
