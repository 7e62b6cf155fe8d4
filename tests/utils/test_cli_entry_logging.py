"""utils.errors.cli_entry shows the pipeline's INFO lines even where a library configured the root
logger at WARNING when it was imported, as Unsloth's import does (`logging.basicConfig(level=WARNING)`
in unsloth/import_fixes.py): under --backend unsloth, train.py's per-step tokens/s lines were lost."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging, sys
{library_import}
from utils.errors import cli_entry
log = logging.getLogger("finetune.trainer_setup")

@cli_entry
def main():
    log.info("step 3: loss 1.2345, 7571 tokens/s")
    log.debug("not shown")

sys.exit(main())
"""


def run(library_import: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(library_import=library_import)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_info_lines_show_after_a_library_set_the_root_logger_to_warning():
    # what unsloth/import_fixes.py does when it is imported (UNSLOTH_ENABLE_LOGGING unset)
    done = run('logging.basicConfig(level=logging.WARNING, format="[%(name)s|%(levelname)s]%(message)s")')
    assert done.returncode == 0, done.stderr
    assert "[finetune.trainer_setup|INFO]step 3: loss 1.2345, 7571 tokens/s" in done.stderr
    assert "not shown" not in done.stderr


def test_info_lines_show_in_the_pipelines_format_otherwise():
    done = run("")
    assert done.returncode == 0, done.stderr
    assert "INFO finetune.trainer_setup: step 3: loss 1.2345, 7571 tokens/s" in done.stderr
    assert "not shown" not in done.stderr
