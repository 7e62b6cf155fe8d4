"""The layers, read from the code's own import statements (those inside functions too): utils/
imports no stage, a stage module imports no other stage and not finsent/ (the whole-file config
and the demo above the stages; only a stage's scripts load it), and no module reaches itself
through its imports. The contracts the stages share load without torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT as REPO
STAGES = ("dataset_builder", "eval", "finetune")
PACKAGES = ("utils", "finsent", *STAGES)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(path): ast.parse(path.read_text(encoding="utf-8"))
            for package in PACKAGES for path in sorted((REPO / package).glob("*.py"))}


MODULES = _modules()


def _imports(tree: ast.Module) -> set[str]:
    """The project modules a module imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name if name in MODULES else node.module for name in names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _is_script(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


GRAPH = {name: _imports(tree) for name, tree in MODULES.items()}


def test_utils_imports_nothing_above_it():
    reaching_up = {name: sorted(i for i in imports if not i.startswith("utils"))
                   for name, imports in GRAPH.items() if name.startswith("utils.")}
    assert {name: imports for name, imports in reaching_up.items() if imports} == {}


def test_a_stage_module_imports_no_other_stage_and_only_its_scripts_load_the_whole_config():
    wrong = {}
    for name, imports in GRAPH.items():
        stage = name.split(".")[0]
        if stage not in STAGES:
            continue
        allowed = {stage, "utils"} | ({"finsent"} if _is_script(MODULES[name]) else set())
        outside = sorted(i for i in imports if i.split(".")[0] not in allowed)
        if outside:
            wrong[name] = outside
    assert wrong == {}


def test_no_module_reaches_itself_through_its_imports():
    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            name, path = stack.pop()
            for target in GRAPH.get(name, ()):
                if target == start:
                    return path + [start]
                if target in GRAPH and target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
        return None

    cycles = {name: cycle for name in GRAPH if (cycle := cycle_from(name))}
    assert cycles == {}


@pytest.mark.parametrize("module", ["utils.labels", "utils.grounding", "utils.sharegpt_format",
                                    "utils.phrasebank_files", "eval.sentiment_folder", "finetune.run_layout",
                                    "finsent.config"])
def test_a_shared_contract_loads_without_torch_or_another_stage(module):
    own = module.split(".")[0]
    others = [] if own == "finsent" else [stage for stage in STAGES if stage != own]  # the config has every section
    probe = (f"import sys, {module}; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {['torch', *others]!r}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_dotenv_is_loaded_in_one_place():
    """finsent.cli.config_from_args loads `.env` for every script; no module loads it again its own way."""
    loading = sorted(name for name, tree in MODULES.items()
                     if any(isinstance(node, ast.Name | ast.Attribute) and getattr(node, "id", getattr(node, "attr", None))
                            == "load_dotenv" for node in ast.walk(tree)))
    assert loading == ["finsent.cli"]
