"""Every stage script, run as `python <folder>/<script>.py` the way the README says: --help shows
its purpose and options; a malformed --set or flag value is one `error:` line and exit 2; it runs
the code of the checkout it sits in, whether that checkout is installed or not and whatever other
copy of the packages comes first on the path; without the fine-tune extras the fine-tune scripts
say in one line what to install."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPTS = sorted(
    str(path.relative_to(REPO_ROOT))
    for folder in ("dataset_builder", "finetune", "eval")
    for path in (REPO_ROOT / folder).glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")
)
OWN_PACKAGES = ("utils", "finsent", "dataset_builder", "eval", "finetune")
REQUIRED_FLAGS = {"dataset_builder/build_corpus.py": ["--parts", "parts", "--output", "corpus.csv"],
                  "dataset_builder/step_03b_explain_labels.py": ["tweets"],
                  "dataset_builder/batch_jobs.py": ["status"],
                  "eval/compare_labelled.py": ["run_a", "run_b"],
                  "dataset_builder/synthesize_texts.py": ["--count", "1"],
                  "finetune/publish.py": ["--push-to-hub", "a/b"],
                  "eval/evaluate_labelled.py": ["--input", "in.csv", "--output", "out"],
                  "finetune/average_models.py": ["--model", "a", "--model", "b", "--output", "out"]}


@pytest.fixture(scope="session")
def other_checkout(tmp_path_factory) -> Path:
    """Another copy of finsent's packages, as an editable install of another checkout puts them
    on the path; importing any of them fails loudly, naming this copy."""
    root = tmp_path_factory.mktemp("other_checkout")
    for package in OWN_PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text(
            f"raise ImportError('imported {package} from another checkout: ' + __file__)\n")
    return root


def run_from_checkout(script: str, *args: str, cwd: Path, python_path: Path,
                      python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python <repo>/<script>`, with PYTHONPATH = `python_path` only (never the repo)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(python_path)
    return subprocess.run([sys.executable, *python_flags, str(REPO_ROOT / script), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_there_are_scripts_to_check():
    assert SCRIPTS, "no stage scripts found"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_a_malformed_set(script, tmp_path, other_checkout):
    result = run_from_checkout(script, "--help", cwd=tmp_path, python_path=other_checkout)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "--config" in result.stdout
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20, f"{script}: --help has no description of its purpose"

    malformed = run_from_checkout(script, *REQUIRED_FLAGS.get(script, []), "--set", "dataset.seed=[1,",
                                  cwd=tmp_path, python_path=other_checkout)
    assert malformed.returncode == 2, malformed.stderr
    lines = malformed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set dataset.seed=[1,: not a YAML value ("), lines


def test_a_malformed_flag_value_is_one_line(tmp_path, other_checkout):
    result = run_from_checkout("dataset_builder/step_05_build_sharegpt_dataset.py", "--seed", "forty-two",
                               cwd=tmp_path, python_path=other_checkout)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: argument --seed: invalid int value: 'forty-two' (see step_05_build_sharegpt_dataset.py --help)"]
    result = run_from_checkout("eval/evaluate_labelled.py", "--input", "in.csv", "--output", "out",
                               "--model", "{backend: openai", cwd=tmp_path, python_path=other_checkout)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: --model (a model name or a YAML mapping): not a YAML value (expected ',' or '}', but got "
        "'<stream end>')"]


def _top_level_entries(distribution: str) -> set[str]:
    """The names a distribution installed at the top of site-packages (packages, modules, dist-info)."""
    files = metadata.distribution(distribution).files or []
    return {file.parts[0] for file in files if file.parts and file.parts[0] != ".."}


def _requirement_names(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line.split("==")[0] for line in lines if line]


@pytest.fixture(scope="session")
def requirements_only_site(tmp_path_factory) -> Path:
    """site-packages as `pip install -r requirements.txt` leaves it: this venv's packages (links)
    without finsent itself and without the fine-tune extras. Used with `python -S`, which does not
    read site-packages' .pth files (where an editable install lives)."""
    hidden = set()
    for name in ["finsent", *_requirement_names(REPO_ROOT / "requirements-finetune.txt")]:
        hidden |= _top_level_entries(name) if _installed(name) else set()
    site = tmp_path_factory.mktemp("requirements_only_site")
    for folder in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]):
        for entry in Path(folder).iterdir():
            if entry.name not in hidden and not entry.name.endswith(".pth") and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    return site


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_a_step_runs_from_a_checkout_that_is_not_installed(tmp_path, requirements_only_site):
    output = tmp_path / "tweets.csv"
    result = run_from_checkout("dataset_builder/step_01_process_tweets.py",
                               "--input", REPO_ROOT / "examples" / "airline_tweets" / "tweets_example.csv",
                               "--output", output, cwd=tmp_path, python_path=requirements_only_site,
                               python_flags=("-S",))
    assert result.returncode == 0, result.stderr
    assert output.read_text(encoding="utf-8").startswith("Article,JSON")


def test_fine_tune_scripts_without_the_extras_name_the_install_command(tmp_path, requirements_only_site):
    for script in ("finetune/train.py", "finetune/prepare_base.py", "finetune/export_gguf.py"):
        result = run_from_checkout(script, cwd=tmp_path, python_path=requirements_only_site, python_flags=("-S",))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: '"), result.stderr
        assert lines[0].endswith("is not installed: this script needs the finetune extras, "
                                 "`pip install -e '.[finetune]'`")


def test_ask_and_publish_need_no_fine_tune_extras(tmp_path, requirements_only_site):
    for script in ("eval/ask.py", "finetune/publish.py"):
        result = run_from_checkout(script, "--help", cwd=tmp_path, python_path=requirements_only_site,
                                   python_flags=("-S",))
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
