"""Text clean-up shared by steps 04 and 05: the original's sanitising, and the key that
decides whether two texts are "the same text" for leak-free splits."""
from __future__ import annotations

import re
import unicodedata

# The original replaced smart quotes and the em dash before joining; we also fold the other
# dashes and non-breaking spaces that arrive from news feeds and spreadsheets.
_PLAIN_PUNCTUATION = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u202f": " ",
    "\u2026": "...",
})
_WHITESPACE = re.compile(r"\s+")


def sanitise_text(text: str) -> str:
    """NFC, smart quotes → plain, dashes → '-', ellipsis → '...', no-break spaces → ' '."""
    return unicodedata.normalize("NFC", text).translate(_PLAIN_PUNCTUATION)


def text_key(text: str) -> str:
    """The identity of a text for splitting: sanitised, case-folded, whitespace collapsed."""
    return _WHITESPACE.sub(" ", sanitise_text(text)).strip().casefold()
