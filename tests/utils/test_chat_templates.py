"""The model families' one table (utils.chat_templates): each record's templates are its package data
files, every file belongs to a family, and every other table keyed by family (the random models'
specs) names only families of this one."""
from __future__ import annotations

import jinja2
import pytest

from finetune.gguf_export import FTYPES
from finetune.random_models import SPECS
from finetune.settings import QUANTS, FinetuneConfig
from utils.chat_templates import FAMILIES, TEMPLATES_DIR, family_of_chat_template, family_record
from utils.errors import FinsentError


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_family_reads_its_templates_from_its_files(name):
    family = family_record(name)
    assert family.jinja == (TEMPLATES_DIR / f"{name}.jinja").read_bytes().decode("utf-8")
    assert family.ollama == (TEMPLATES_DIR / f"{name}.gotmpl").read_bytes().decode("utf-8")
    rendered = jinja2.Environment().from_string(family.jinja).render(
        messages=[{"role": "user", "content": "Text: profit rose"}, {"role": "assistant", "content": "{}"}],
        bos_token="<bos>", eos_token="</s>", add_generation_prompt=False)
    assert "Text: profit rose" in rendered and rendered.rstrip().endswith(family.end_of_turn)
    assert family.end_of_turn in family.stop
    assert family_of_chat_template(family.jinja) == name


def test_every_template_file_is_a_familys_and_every_family_table_uses_these_names():
    files = {path.name for path in TEMPLATES_DIR.iterdir()}
    assert files == {f"{name}.{kind}" for name in FAMILIES for kind in ("jinja", "gotmpl")}
    assert set(SPECS) <= set(FAMILIES)
    assert FinetuneConfig().family in FAMILIES
    with pytest.raises(FinsentError, match=r"unknown model family 'llama-2' \(known: gemma-3, llama-3, mistral, phi-3\)"):
        family_record("llama-2")


def test_one_quant_list():
    assert list(FTYPES) == list(QUANTS) == FinetuneConfig().quants
