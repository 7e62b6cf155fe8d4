"""finsent/chain.py, the chain train → export → evaluate, on CPU through the real scripts: a tiny
random Llama with the real Llama-3 tokenizer trains 2 steps (--backend hf), exports f16 and q4_k_m
and answers 2 labelled rows on the embedded engine; a rerun reuses the finished training and export
until an input changes; bad input to `python -m finsent.chain` is one `error:` line, exit 2."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from finsent.chain import (Evaluation, Export, FineTunedModel, FinishedSteps, Progress, Training, evaluate, export,
                           fingerprint, train)
from tests.conftest import REPO_ROOT, script_env
from tests.finetune_fixtures import (llama_cpp_vendor, phrasebank_rows, sharegpt_splits, tiny_llama,  # noqa: F401
                                     write_sharegpt)
from utils.errors import FinsentError


def chain_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finsent.chain", *map(str, args)], cwd=REPO_ROOT, env=script_env(),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def chained(tmp_path_factory, tiny_llama, sharegpt_splits, shared_data) -> dict:  # noqa: F811
    """One whole chain, its printed progress and the steps it ran."""
    root = tmp_path_factory.mktemp("chain")
    test_rows = write_sharegpt(root / "data" / "test.jsonl", phrasebank_rows(shared_data, 4, offset=2000))
    write_sharegpt(root / "data" / "validation.jsonl", phrasebank_rows(shared_data, 4, offset=2100))
    training = Training(root / "run", "hf", base_model=tiny_llama, family="llama-3",
                        train_file=sharegpt_splits["train"], max_steps=2, max_seq_length=256,
                        settings=("finetune.validation_file=null", "finetune.batch_size=4",
                                  "finetune.gradient_accumulation_steps=1", "finetune.save_steps=0"),
                        log=root / "train.log")
    exporting = Export(root / "run", ("f16", "q4_k_m"))
    progress = Progress(total=3)
    trained = train(training, progress)
    files, exported = export(exporting, progress)
    model = FineTunedModel("tiny-q4_k_m", files["q4_k_m"], threads=1)
    metrics, evaluated = evaluate(Evaluation(test_rows, root / "eval", model, limit=2, validation_limit=2,
                                             max_tokens=16, parallel=1, num_ctx=1024, progress_bars=False),
                                  progress)
    return {"root": root, "training": training, "export": exporting, "files": files, "metrics": metrics,
            "runs": (trained, exported, evaluated)}


@pytest.mark.slow
def test_the_chain_trains_exports_and_scores_the_fine_tune(chained):
    assert all(run.ok and not run.reused for run in chained["runs"])
    layout = chained["training"].layout
    assert layout.summary.is_file() and (layout.merged / "config.json").is_file()
    assert {quant: path.parent for quant, path in chained["files"].items()} == {"f16": layout.gguf,
                                                                                 "q4_k_m": layout.gguf}
    assert chained["files"]["q4_k_m"].name == "model-finsent-q4_k_m.gguf"  # export's name: the base folder's + -finsent
    metrics = chained["metrics"]
    assert metrics["model"] == "tiny-q4_k_m" and metrics["prompt"] == "trained" and metrics["structured"] is False
    assert metrics["gguf"] == str(chained["files"]["q4_k_m"])
    assert metrics["rows"] == 2 and 0 <= metrics["valid_json_rate"] <= 1
    log = (chained["root"] / "train.log").read_text(encoding="utf-8")
    assert "train_summary.json" in log or "tokens/s" in log
    assert not re.search(r"it/s\]\s*$", log, flags=re.M)  # the progress bars' redraws stay out of the log


@pytest.mark.slow
def test_a_rerun_reuses_the_finished_training_and_export_until_an_input_changes(chained, capfd):
    gguf = chained["files"]["q4_k_m"]
    written = gguf.stat().st_mtime_ns
    progress = Progress(total=2)
    rerun = train(chained["training"], progress)
    files, exported = export(chained["export"], progress)
    printed = capfd.readouterr().out
    assert rerun.reused and exported.reused and files == chained["files"] and gguf.stat().st_mtime_ns == written
    assert "=== [1/2] fine-tune" in printed and "=== [2/2] export: GGUF f16, q4_k_m" in printed
    assert f"reused: {chained['training'].layout.summary}" in printed

    # the command line's export of the same run is the same step: reused too
    cli = chain_cli("export", "--run", chained["root"] / "run", "--quants", "f16,q4_k_m")
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "reused: model-finsent-f16.gguf, model-finsent-q4_k_m.gguf" in cli.stdout
    assert f"q4_k_m: {gguf}" in cli.stdout and gguf.stat().st_mtime_ns == written

    # another train file: the record no longer matches, so the step would run again
    training = chained["training"]
    finished = FinishedSteps(training.layout)
    current = fingerprint(["train.py", *training.arguments(training.backend)],
                          [training.train_file, None, training.base_model], None)
    assert finished.reusable("train", current) == [training.layout.summary]
    changed = chained["root"] / "train-changed.jsonl"
    changed.write_text(training.train_file.read_text(encoding="utf-8") * 2, encoding="utf-8")
    other = fingerprint(["train.py", *training.arguments(training.backend)], [changed, None, training.base_model], None)
    assert finished.reusable("train", other) is None


@pytest.mark.parametrize("args, message", [
    (["train", "--output-dir", "{tmp}/run", "--train", "{tmp}/missing.jsonl"], "--train: file not found: {tmp}/missing.jsonl"),
    (["export", "--run", "{tmp}/no-run", "--quants", "q4_k_m"], "--run: folder not found: {tmp}/no-run"),
    (["export", "--run", "{tmp}", "--quants", "q4_k_m", "--quantize", "{tmp}/no-quantize"],
     "--quantize: not an executable: {tmp}/no-quantize"),
    (["evaluate", "--input", "README.md", "--output", "{tmp}/eval", "--gguf", "{tmp}/no.gguf", "--name", "x"],
     "--gguf: file not found: {tmp}/no.gguf"),
    (["evaluate", "--input", "README.md", "--output", "{tmp}/eval", "--gguf", "README.md"],
     "--name: needed with --gguf or --server-url"),
    (["export", "--run", "{tmp}", "--quants", "q4_k_m", "--bogus"], "unrecognized arguments: --bogus"),
    (["evaluate", "--input", "README.md", "--output", "{tmp}/eval", "--gguf", "README.md", "--name", "x",
      "--server-slots", "4"], "--server-slots: a whole number ≥ 1, with --server-url"),
])
def test_bad_input_is_one_error_line_naming_the_flag(tmp_path, args, message):
    result = chain_cli(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(tmp=tmp_path) in lines[0], lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists()


def test_a_fine_tune_on_several_servers_is_one_openai_entry_with_their_slots_each():
    """benchmarks/llama_server.sh's served_urls and served_slots, as gpu_quality.sh passes them on."""
    import yaml

    from eval.backends import make_backend, parse_model_entry
    from eval.settings import EvalConfig

    urls = ("http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1")
    model = FineTunedModel("ft-q4_k_m", server_urls=urls, server_slots=8)
    flags = model.evaluate_flags()
    entry = yaml.safe_load(flags[flags.index("--model") + 1])
    assert entry == {"backend": "openai", "model": "finsent", "base_urls": list(urls), "parallel": 8}
    assert model.models_to_test_entry(16) == {"name": "ft-q4_k_m", "prompt": "trained", **entry}
    backend = make_backend(parse_model_entry(entry, 1, EvalConfig(parallel_requests=16)), EvalConfig())
    try:
        assert backend.parallel == 16 and backend.where == ", ".join(urls)  # 8 in flight on each
    finally:
        backend.close()
    with pytest.raises(FinsentError, match="give a GGUF or server URLs"):
        FineTunedModel("neither")
