"""Financial PhraseBank's folder: one `Sentences_<agreement>.txt` per agreement level, nested (a
sentence of AllAgree is in every other file too). Step 02 reads all four; eval reads one."""
from __future__ import annotations

from pathlib import Path

from utils.errors import FinsentError

AGREEMENTS = ("AllAgree", "75Agree", "66Agree", "50Agree")  # highest first


def level_file(folder: Path, level_name: str) -> Path:
    """The dataset's own `Sentences_<level>.txt`, else the one `*_<level>.txt` in the folder (a
    sample under another name, such as examples/). Not found: the dataset's name, for the error."""
    folder = Path(folder)
    exact = folder / f"Sentences_{level_name}.txt"
    if exact.is_file():
        return exact
    found = sorted(folder.glob(f"*_{level_name}.txt"))
    if len(found) > 1:
        raise FinsentError(f"{folder}: several files for agreement level {level_name}: "
                           f"{', '.join(path.name for path in found)}")
    return found[0] if found else exact
