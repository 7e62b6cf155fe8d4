"""Ollama Modelfiles: FROM the GGUF, the family's TEMPLATE and stop PARAMETERs (utils.chat_templates),
the sampling settings, and SYSTEM = the system prompt the model was trained with."""
from __future__ import annotations

from pathlib import Path

from utils.chat_templates import family_record
from utils.errors import FinsentError
from utils.io import atomic_write_text
from utils.prompts import system_prompt


def _triple_quoted(name: str, text: str) -> str:
    if '"""' in text:
        raise FinsentError(f'the Modelfile {name} cannot hold text containing """')
    return f'{name} """{text}"""'


def render_modelfile(gguf: str, family: str, temperature: float, num_ctx: int, system: str | None = None) -> str:
    """A Modelfile for `gguf` (a path as Ollama reads it: relative to the Modelfile's folder)."""
    lines = [f"FROM {gguf}",
             _triple_quoted("TEMPLATE", family_record(family).ollama),
             _triple_quoted("SYSTEM", system if system is not None else system_prompt())]
    lines += [f'PARAMETER stop "{stop}"' for stop in family_record(family).stop]
    lines += [f"PARAMETER temperature {temperature:g}", f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"


def write_modelfile(path: Path, gguf: Path, family: str, temperature: float, num_ctx: int) -> Path:
    """Write a Modelfile at `path` whose FROM points at `gguf` relative to the Modelfile."""
    relative = Path(gguf).resolve().relative_to(Path(path).resolve().parent) if _is_under(gguf, path) else Path(gguf)
    source = f"./{relative.as_posix()}" if not relative.is_absolute() else relative.as_posix()
    atomic_write_text(path, render_modelfile(source, family, temperature, num_ctx))
    return path


def _is_under(gguf: Path, modelfile: Path) -> bool:
    return Path(gguf).resolve().is_relative_to(Path(modelfile).resolve().parent)
