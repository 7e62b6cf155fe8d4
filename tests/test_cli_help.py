"""Every stage script answers --help with its purpose and options, and exits 0."""
import pytest

from tests.conftest import REPO_ROOT, run_script

SCRIPTS = sorted(
    str(path.relative_to(REPO_ROOT))
    for folder in ("dataset_builder", "finetune", "eval")
    for path in (REPO_ROOT / folder).glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")
)


def test_there_are_scripts_to_check():
    assert SCRIPTS, "no stage scripts found"


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = run_script(script, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "--config" in result.stdout
    description = result.stdout.split("\n\n")[1].strip()
    assert len(description) > 20, f"{script}: --help has no description of its purpose"
