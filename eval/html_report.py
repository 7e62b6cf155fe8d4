"""One self-contained HTML page of the eval results, for a person to read offline.

Sections: the per-model summary; every comparison pair with a plain-language verdict
(which model is more consistent, by how much, significant after Holm or not) over its
table; accuracy on labelled data wherever `evaluate_labelled.py` wrote a metrics.json;
the heatmaps and confusion matrices inline as base64 PNG; links (relative) to the xlsx and
csv files beside it. No script, no external resource: the file opens from disk anywhere.
"""
from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

ALPHA = 0.05
SUMMARY_COLUMNS = {"Model Name": None, "Valid JSON Rate": "{:.1%}", "Mean Sentiment": "{:.3f}",
                   "Sentiment Variance": "{:.4f}", "Mean Per-Article Variance": "{:.4f}",
                   "Mean Confidence": "{:.2f}", "Mean Inference Time (s)": "{:.2f}",
                   "Valid Answers": "{:d}", "Answers": "{:d}", "Iterations": "{:d}"}
PAIR_COLUMNS = {"Comparison": None, "Mean Article Variance 1": "{:.4f}", "Mean Article Variance 2": "{:.4f}",
                "Consistency Wilcoxon P (Holm)": "{:.3g}", "Paired Articles": "{:d}", "Mean 1": "{:.3f}",
                "Mean 2": "{:.3f}", "Wilcoxon P (Holm)": "{:.3g}", "Cohen's d": "{:.2f}",
                "Valid JSON Rate 1": "{:.1%}", "Valid JSON Rate 2": "{:.1%}", "Fisher P (Holm)": "{:.3g}"}
CONSISTENCY_P = "Consistency Wilcoxon P (Holm)"


@dataclass
class Picture:
    title: str
    data_uri: str


@dataclass
class LabelledResult:
    """One evaluate_labelled output folder: its metrics.json and confusion matrix."""
    folder: Path
    metrics: dict[str, Any]
    picture: Picture | None


def png_picture(path: Path, title: str) -> Picture:
    return Picture(title, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"))


def html_table(frame: pd.DataFrame, formats: dict[str, str | None]) -> str:
    """The columns of `formats` that `frame` has, each value in its format ('–' where missing)."""
    columns = [c for c in formats if c in frame.columns]

    def formatter(fmt: str | None):
        return lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else (
            fmt.format(int(v) if fmt == "{:d}" else v) if fmt else str(v))

    return frame[columns].to_html(index=False, border=0, classes="table", escape=True, na_rep="–",
                                  formatters={c: formatter(formats[c]) for c in columns})


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def pair_verdict(row: dict[str, Any], n_pairs: int) -> str:
    """Which model of the pair is more consistent (lower mean per-article variance over
    iterations), by how much, and whether the paired Wilcoxon test says so after Holm."""
    model1, model2 = row["Model 1"], row["Model 2"]
    var1, var2 = row["Mean Article Variance 1"], row["Mean Article Variance 2"]
    if pd.isna(var1) or pd.isna(var2):  # the first note says why
        return f"Cannot compare {model1} and {model2}: {(row.get('Note') or 'too few valid answers').split('; ')[0]}."
    if var1 == var2:
        return f"{model1} and {model2} are equally consistent (mean per-article variance {var1:.4f})."
    steady, other, low, high = (model1, model2, var1, var2) if var1 < var2 else (model2, model1, var2, var1)
    how_much = "never at all" if low == 0 else f"{high / low:.1f}× less"
    verdict = (f"{steady} is more consistent than {other}: its answer to the same article varies "
               f"{how_much} between iterations (mean per-article variance {low:.4f} against {high:.4f}).")
    p = row[CONSISTENCY_P]
    test = (f"after Holm's correction over {n_pairs} pair{'s' * (n_pairs != 1)} (Wilcoxon signed-rank "
            f"over {row['Paired Articles']} articles, p = {_p(p) if pd.notna(p) else 'undefined'})")
    if pd.isna(p):
        return verdict + f" Not tested: {row.get('Note') or 'the test is undefined here'}."
    if p < ALPHA:
        return verdict + f" The difference is significant {test}."
    return verdict + f" The difference is not significant {test}: it may be chance."


def find_labelled(folders: Iterable[Path]) -> list[LabelledResult]:
    """Every evaluate_labelled output (a metrics.json with 'at_chosen_threshold') under `folders`."""
    results, seen = [], set()
    for folder in folders:
        for path in sorted(Path(folder).rglob("metrics.json")) if Path(folder).is_dir() else []:
            try:
                metrics = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not ours, or half-written: nothing to report from it
            if not isinstance(metrics, dict) or "at_chosen_threshold" not in metrics or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            png = path.parent / "confusion_matrix.png"
            picture = png_picture(png, f"Confusion matrix: {metrics.get('model')}") if png.is_file() else None
            results.append(LabelledResult(path.parent, metrics, picture))
    return results


def accuracy_table(results: Sequence[LabelledResult]) -> pd.DataFrame:
    rows = []
    for result in results:
        m = result.metrics
        chosen, fixed = m["at_chosen_threshold"], m["at_0.15"]
        rows.append({"Model": m.get("model"), "Input": m.get("input"), "Rows": m.get("rows"),
                     "Valid JSON": m.get("valid_json_rate"), "t chosen": m.get("threshold_chosen"),
                     "Accuracy": chosen.get("accuracy"), "Macro F1": chosen.get("macro_f1"),
                     "Weighted F1": chosen.get("weighted_f1"),
                     "Weighted F1 (t = 0.15)": fixed.get("weighted_f1"),
                     "MAE": m.get("mae"), "Spearman": m.get("spearman")})
    return pd.DataFrame(rows)


ACCURACY_FORMATS = {"Model": None, "Input": None, "Rows": "{:d}", "Valid JSON": "{:.1%}",
                    "t chosen": "{:.2f}", "Accuracy": "{:.3f}", "Macro F1": "{:.3f}",
                    "Weighted F1": "{:.3f}", "Weighted F1 (t = 0.15)": "{:.3f}", "MAE": "{:.3f}",
                    "Spearman": "{:.3f}"}

TEMPLATE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string("""\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>finsent report: {{ models|length }} models</title>
<style>
 body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
 h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
 table.table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
 .table th, .table td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
 .table th { background: #f0f3f7; } .table td:first-child, .table th:first-child { text-align: left; }
 .verdict { margin: .4em 0; } .significant { font-weight: 600; }
 .note { color: #555; } img { max-width: 100%; border: 1px solid #eee; margin: .5em 0 1.5em; }
</style></head><body>
<h1>finsent eval report</h1>
<p>{{ models|length }} model{{ "" if models|length == 1 else "s" }} read from <code>{{ sentiments }}</code>, written {{ written }}.</p>
{% for line in notes %}<p class="note">{{ line }}</p>
{% endfor %}
<h2 id="summary">Per-model summary</h2>
<p class="note">Sentiment variance: all valid sentiments pooled; mean per-article variance: how much a
model's answer to the same article changes between iterations (0 = always the same).</p>
{{ summary_table|safe }}
<h2 id="comparisons">Statistical comparisons</h2>
{% if verdicts %}
{% for verdict in verdicts %}<p class="verdict{{ ' significant' if verdict.significant }}">{{ verdict.text }}</p>
{% endfor %}
<p class="note">Consistency: each model's sentiment variance over iterations, per article, compared
by Wilcoxon's signed-rank test paired by article; mean sentiments: Wilcoxon on per-article means;
valid JSON: Fisher's exact test. Every p-value is adjusted by Holm's method over all pairs
(significant: p &lt; {{ alpha }}). The workbook holds every test.</p>
{{ pairs_table|safe }}
{% else %}<p class="note">No comparison pair (set comparison_pairs in config.yaml).</p>
{% endif %}
<h2 id="accuracy">Accuracy on labelled data</h2>
{% if accuracy_table %}{{ accuracy_table|safe }}
{% for verdict in accuracy_verdicts %}<p class="verdict{{ ' significant' if verdict.significant }}">{{ verdict.text }}</p>
{% endfor %}
{% if accuracy_verdicts %}<p class="note">Runs on the same rows, paired by row: weighted-F1 difference with a
paired bootstrap 95% interval (rows resampled), McNemar's exact test on right/wrong per row, Holm over
the pairs. The table is eval/compare_labelled.py's labelled_comparison.csv.</p>
{% endif %}
{% for result in labelled if result.picture %}<img alt="{{ result.picture.title }}" src="{{ result.picture.data_uri }}">
{% endfor %}
{% else %}<p class="note">No evaluate_labelled output found (run eval/evaluate_labelled.py --output FOLDER
and pass --labelled FOLDER).</p>
{% endif %}
<h2 id="heatmaps">Heatmaps</h2>
{% for picture in heatmaps %}<h3>{{ picture.title }}</h3><img alt="{{ picture.title }}" src="{{ picture.data_uri }}">
{% else %}<p class="note">No heatmap found in <code>{{ heatmaps_folder }}</code> (run eval/generate_heatmaps.py first).</p>
{% endfor %}
<h2 id="files">Files</h2>
<ul>{% for name, href in links %}<li><a href="{{ href }}">{{ name }}</a></li>{% endfor %}</ul>
</body></html>
""")


@dataclass
class Verdict:
    text: str
    significant: bool


def render_report(*, sentiments: str | Path, details: pd.DataFrame, comparisons: pd.DataFrame,
                  notes: Sequence[str], labelled: Sequence[LabelledResult], heatmaps: Sequence[Picture],
                  heatmaps_folder: str | Path, links: Sequence[tuple[str, str]],
                  accuracy_pairs: pd.DataFrame | None = None) -> str:
    """The whole page as one string. `accuracy_pairs`: eval.paired_accuracy's table of the
    labelled runs on the same rows."""
    rows = comparisons.to_dict("records")
    verdicts = [Verdict(pair_verdict(row, len(rows)),
                        bool(pd.notna(row[CONSISTENCY_P]) and row[CONSISTENCY_P] < ALPHA))
                for row in rows]
    accuracy = accuracy_table(labelled)
    return TEMPLATE.render(
        models=list(details["Model Name"]), sentiments=str(sentiments), notes=list(notes), alpha=ALPHA,
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary_table=html_table(details, SUMMARY_COLUMNS), verdicts=verdicts,
        pairs_table=html_table(comparisons, PAIR_COLUMNS) if rows else "",
        accuracy_table=html_table(accuracy, ACCURACY_FORMATS) if len(accuracy) else "",
        labelled=labelled, accuracy_verdicts=accuracy_verdicts(accuracy_pairs), heatmaps=heatmaps, heatmaps_folder=str(heatmaps_folder), links=links)


def accuracy_verdicts(pairs: pd.DataFrame | None) -> list[Verdict]:
    from eval.paired_accuracy import is_significant

    rows = [] if pairs is None else pairs.to_dict("records")
    return [Verdict(row["Verdict"], is_significant(row)) for row in rows]


def relative_links(report: Path, files: Iterable[Path]) -> list[tuple[str, str]]:
    """(file name, href relative to the report's folder) of each existing file, once."""
    links = {}
    for path in files:
        if path.is_file():
            links.setdefault(path.resolve(), (str(path), os.path.relpath(path.resolve(), report.resolve().parent)))
    return [(name, Path(href).as_posix()) for name, href in links.values()]
