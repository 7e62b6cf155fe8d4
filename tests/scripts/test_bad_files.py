"""Every stage script against every kind of bad file, run as a real subprocess the way the README
runs it: an input that cannot be read, a binary file, an empty file, a file cut short, and an
output path that cannot be written each give one `error:` line naming the path, exit 2, no
traceback, and leave what an earlier run wrote exactly as it was. These fail before any model
loads, so each run takes the imports' time only."""
from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO_ROOT, run_script
from tests.reports_data import write_iteration

CASES = ("unreadable", "binary", "empty", "truncated", "unwritable")
# A PNG header, NUL bytes and bytes that are not UTF-8: what a wrong file picked in a dialog holds.
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\xc3\x28" * 64
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Setup:
    spoiled: Path | None  # the input file a case spoils (None: the script reads no local file)
    args: list[str]
    output: Path          # the file or folder the script writes


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _lines(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ANSWER = json.dumps({"reasoning": "Demand fell.", "sentiment": -0.6, "confidence": 0.8})
LABELLED = ["Article,JSON", f'Shares fell after the warning,"{ANSWER.replace(chr(34), 2 * chr(34))}"',
            f'Orders dropped again this quarter,"{ANSWER.replace(chr(34), 2 * chr(34))}"']


def step_01(inp: Path, out: Path) -> Setup:
    source = _copy(REPO_ROOT / "examples/airline_tweets/tweets_example.csv", inp / "tweets.csv")
    return Setup(source, ["--input", source, "--output", out / "step_01.csv"], out / "step_01.csv")


def step_02(inp: Path, out: Path) -> Setup:
    for sample in (REPO_ROOT / "examples/financial_phrasebank").glob("finsent_sample_*.txt"):
        _copy(sample, inp / "fpb" / sample.name.replace("finsent_sample_", "Sentences_"))
    return Setup(inp / "fpb" / "Sentences_50Agree.txt", ["--input", inp / "fpb", "--output", out / "step_02.csv"],
                 out / "step_02.csv")


# A labelling provider where nothing listens: a script that got as far as asking it would fail otherwise.
NO_PROVIDER = ["--set", "dataset.labeller.providers=[{name: local, kind: openai_compatible, "
                        "base_url: 'http://127.0.0.1:9/v1', models: [m]}]"]


def step_03(inp: Path, out: Path) -> Setup:
    source = _copy(REPO_ROOT / "examples/news/newsdata_companies_2024-05-15.csv", inp / "news.csv")
    return Setup(source, ["--input", source, "--output", out / "step_03.csv", "--results", out / "step_03.jsonl",
                          *NO_PROVIDER, "--no-progress"], out / "step_03.csv")


def synthesize_texts(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "against.csv", "text", "Shares fell after the warning", "Orders dropped again this quarter")
    return Setup(source, ["--count", "2", "--against", source, "--results", out / "synthetic.jsonl",
                          "--output", out / "synthetic.csv", *NO_PROVIDER, "--no-progress"], out / "synthetic.csv")


def step_03b(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "step_01.csv", *LABELLED)
    return Setup(source, ["tweets", "--input", source, "--output", out / "explained.csv",
                          "--results", out / "explained.jsonl", *NO_PROVIDER,
                          "--no-progress"], out / "explained.csv")


def batch_jobs(inp: Path, out: Path) -> Setup:
    batch = {"kind": "batch", "input_file_id": "file-1", "batch_id": "batch-1", "state": "submitted",
             "provider": "local", "model": "m", "ids": ["a"]}
    source = _lines(inp / "step_03.jsonl", json.dumps(batch))
    return Setup(source, ["status", "--results", source, *NO_PROVIDER],
                 out / "nothing_written")


def step_04(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "news.csv", *LABELLED)
    return Setup(source, ["--input", f"news={source}", "--output", out / "step_04.csv"], out / "step_04.csv")


def step_05(inp: Path, out: Path) -> Setup:
    rows = [LABELLED[0] + ",Source"] + [f"{line},news" for line in LABELLED[1:]] * 10
    source = _lines(inp / "joined.csv", *rows)
    return Setup(source, ["--input", source, "--output", out / "sharegpt"], out / "sharegpt")


def build_corpus(inp: Path, out: Path) -> Setup:
    row = {"text": "Orders dropped again.", "sentiment": -0.5, "confidence": 0.8, "reasoning": "Orders dropped.",
           "style": "news", "topic": "orders"}
    source = _lines(inp / "parts" / "part_1.jsonl", json.dumps(row))
    return Setup(source, ["--parts", inp / "parts", "--output", out / "corpus.csv"], out / "corpus.csv")


def evaluate_labelled(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "labelled.csv", "text,label", "Shares fell,negative", "Orders rose,positive")
    return Setup(source, ["--input", source, "--output", out / "eval", "--no-progress"], out / "eval")


def generate_model_sentiments(inp: Path, out: Path) -> Setup:
    source = _copy(REPO_ROOT / "examples/news_snapshot.json", inp / "snapshot.json")
    return Setup(source, ["--snapshot", source, "--no-progress", "--set", "eval.models_to_test=[gemma]",
                          "--set", f"eval.sentiment_save_folder={out / 'sentiments'}",
                          "--set", f"eval.generation_summary_file={out / 'sentiments' / 'summary.json'}"],
                 out / "sentiments")


def _report(option: str, name: str) -> Callable[[Path, Path], Setup]:
    def setup(inp: Path, out: Path) -> Setup:
        source = write_iteration(inp / "sentiments", "m", 1, [0.5, -0.2, 0.1])
        return Setup(source, ["--sentiments", inp / "sentiments", "--set", "eval.models_to_test=[m]",
                              "--set", "eval.comparison_pairs=[]", option, out / name], out / name)
    return setup


def generate_report(inp: Path, out: Path) -> Setup:
    setup = _report("--output", "report.html")(inp, out)
    return Setup(setup.spoiled, [*setup.args, "--set", f"eval.report_output_csv_folder={inp / 'reports'}",
                                 "--set", f"eval.heatmaps_folder={inp / 'heatmaps'}"], setup.output)


def fetch_news(inp: Path, out: Path) -> Setup:
    return Setup(None, ["--output", out / "snapshot.json", "--feed-url", "http://127.0.0.1:9/rss"],
                 out / "snapshot.json")


def compare_labelled(inp: Path, out: Path) -> Setup:
    for name in ("base", "tuned"):
        _lines(inp / name / "predictions.csv", "split,row,text,label,predicted_label",
               "test,2,Shares fell,negative,negative", "test,3,Orders rose,positive,neutral")
        _lines(inp / name / "metrics.json", json.dumps({"model": name}))
    return Setup(inp / "base" / "predictions.csv", [inp / "base", inp / "tuned", "--output", out / "comparison.csv"],
                 out / "comparison.csv")


def ask(inp: Path, out: Path) -> Setup:
    source = _copy(REPO_ROOT / "examples/news_snapshot.json", inp / "model.gguf")  # any file: each case spoils it
    return Setup(source, ["--gguf", source, "Profit rose 20%."], out / "nothing_written")


def train(inp: Path, out: Path) -> Setup:
    record = {"conversations": [{"from": "human", "value": "Shares fell"}, {"from": "gpt", "value": ANSWER}]}
    source = _lines(inp / "train.jsonl", *[json.dumps(record)] * 4)
    return Setup(source, ["--backend", "hf", "--train", source, "--set", "finetune.validation_file=null",
                          "--output-dir", out / "run"], out / "run")


def export_gguf(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "merged" / "config.json", json.dumps({"model_type": "gemma3_text"}))
    return Setup(source, ["--model", inp / "merged", "--gguf-dir", out / "gguf", "--family", "gemma-3"],
                 out / "gguf")


def prepare_base(inp: Path, out: Path) -> Setup:
    source = _lines(inp / "base.gguf", "GGUF")
    return Setup(source, ["--gguf", source, "--output", out / "base"], out / "base")


def publish(inp: Path, out: Path) -> Setup:
    """The model card goes into the run folder publish reads (WRITES_WHERE_IT_READS); --dry-run:
    the card, no upload."""
    run = out / "run"
    _lines(run / "merged" / "config.json", json.dumps({"model_type": "gemma3_text"}))
    details = _lines(inp / "model_details.csv",
                     "Model Name,Valid JSON Rate,Mean Per-Article Variance,Sentiment Variance",
                     "gemma-3-270m-finsent-q8_0,1,0.004,0.09")
    return Setup(details, ["--push-to-hub", "someone/finsent", "--dry-run", "--output-dir", run,
                           "--model-details", details], run / "README.md")


def average_models(inp: Path, out: Path) -> Setup:
    for name in ("a", "b"):
        _lines(inp / name / "config.json", json.dumps({"model_type": "gemma3_text"}))
        _lines(inp / name / "model.safetensors", "")
    return Setup(inp / "a" / "model.safetensors",
                 ["--model", inp / "a", "--model", inp / "b", "--output", out / "avg", "--no-progress"], out / "avg")


SCRIPTS: dict[str, Callable[[Path, Path], Setup]] = {
    "dataset_builder/step_01_process_tweets.py": step_01,
    "dataset_builder/step_02_process_financial_phrasebank.py": step_02,
    "dataset_builder/step_03_label_articles.py": step_03,
    "dataset_builder/step_03b_explain_labels.py": step_03b,
    "dataset_builder/batch_jobs.py": batch_jobs,
    "dataset_builder/step_04_join_outputs.py": step_04,
    "dataset_builder/step_05_build_sharegpt_dataset.py": step_05,
    "dataset_builder/build_corpus.py": build_corpus,
    "dataset_builder/synthesize_texts.py": synthesize_texts,
    "eval/evaluate_labelled.py": evaluate_labelled,
    "eval/generate_model_sentiments.py": generate_model_sentiments,
    "eval/generate_model_metrics.py": _report("--output", "metrics.xlsx"),
    "eval/generate_model_comparison_report.py": _report("--output", "comparison.xlsx"),
    "eval/generate_heatmaps.py": _report("--output", "heatmaps"),
    "eval/generate_report.py": generate_report,
    "eval/fetch_news.py": fetch_news,
    "eval/compare_labelled.py": compare_labelled,
    "eval/ask.py": ask,
    "finetune/train.py": train,
    "finetune/export_gguf.py": export_gguf,
    "finetune/prepare_base.py": prepare_base,
    "finetune/average_models.py": average_models,
    "finetune/publish.py": publish,
}
# The fine-tune scripts import torch first (seconds each on a busy machine); publish does not.
SLOW = {script for script in SCRIPTS if script.startswith("finetune/") and script != "finetune/publish.py"}
# Its output goes into a folder it reads (publish: the card into the run folder), so no folder of
# its own can be unwritable: the output's own path is blocked in that folder (block_in_place).
WRITES_WHERE_IT_READS = {"finetune/publish.py"}


def test_every_script_is_covered():
    scripts = {str(path.relative_to(REPO_ROOT)) for folder in ("dataset_builder", "finetune", "eval")
               for path in (REPO_ROOT / folder).glob("*.py")
               if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")}
    assert scripts == set(SCRIPTS)


def spoil(path: Path, case: str) -> None:
    """Make `path` the bad input of `case`."""
    if case == "unreadable":
        if IS_ROOT:  # root reads any file: a folder where the file should be is as unreadable
            path.unlink()
            path.mkdir()
        else:
            path.chmod(0)
    elif case == "binary":
        path.write_bytes(BINARY)
    elif case == "empty":
        path.write_bytes(b"")
    else:  # truncated: cut inside its first line, as a copy or a download that stopped
        data = path.read_bytes()
        path.write_bytes(data[: max(1, min(len(data) // 2, data.find(b"\n") // 2 if b"\n" in data else 4))])


def make_unwritable(folder: Path) -> Path:
    """A folder nothing can be written into (for root, which ignores permissions: a path under a
    regular file); returns the output folder to give the script."""
    if IS_ROOT:
        blocker = folder / "not_a_folder"
        blocker.write_text("a file, not a folder\n", encoding="utf-8")
        return blocker / "out"
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder / "out"


def block_in_place(target: Path) -> Path:
    """Make the file `target` unwritable where its folder stays readable: the folder read-only
    (for root: a folder in the file's place); returns the path the error must name."""
    if IS_ROOT:
        target.mkdir()
        return target
    target.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return target.parent


def contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _params():
    for script in SCRIPTS:
        for case in CASES:
            marks = [pytest.mark.slow] if script in SLOW else []
            if case != "unwritable" and script == "eval/fetch_news.py":
                continue  # it reads a URL, no local file
            if case == "unwritable" and script == "eval/ask.py":
                continue  # it writes nothing
            if case in ("empty", "truncated", "unwritable") and script == "dataset_builder/batch_jobs.py":
                continue  # it writes nothing, and an empty or torn results file is one a kill left: no batch
            yield pytest.param(script, case, marks=marks, id=f"{Path(script).stem}-{case}")


@pytest.mark.parametrize("script, case", _params())
def test_bad_file_is_one_error_line_naming_it(script, case, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    if case == "unwritable" and script in WRITES_WHERE_IT_READS:
        setup = SCRIPTS[script](inputs, out)
        named = block_in_place(setup.output)
    elif case == "unwritable":
        setup = SCRIPTS[script](inputs, make_unwritable(out))
        named = out / "not_a_folder" / "out" if IS_ROOT else out
    else:
        setup = SCRIPTS[script](inputs, out)
        spoil(setup.spoiled, case)
        named = setup.spoiled
        earlier = setup.output if setup.output.suffix else out / "earlier.txt"  # an output folder must be new
        _lines(earlier, "written by an earlier run")
    before = contents(out)
    try:
        result = run_script(script, *setup.args, cwd=tmp_path, timeout=300)
    finally:
        for folder in (out, named):
            if folder.is_dir():
                folder.chmod(0o755)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr[-3000:]
    assert lines[-1] == errors[0], result.stderr[-3000:]
    # (A script that looks for its files in a folder passes over a folder in a file's place: it
    # names the folder where it found none.)
    folder_scan = IS_ROOT and case == "unreadable" and str(named.parent) in errors[0]
    assert str(named) in errors[0] or folder_scan, errors[0]
    assert contents(out) == before
