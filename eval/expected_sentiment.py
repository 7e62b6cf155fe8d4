"""The sentiment read from the model's probabilities: the expected value of the answer's
`sentiment` number over the alternatives the backend reports at the tokens that spell it.

Input: the answer's tokens in OpenAI's chat-completions format (`choices[0].logprobs.content`,
what llama.cpp's server and OpenAI give for `logprobs: true, top_logprobs: N`): a list of
`{"token", "bytes", "logprob", "top_logprobs": [{"token", "bytes", "logprob"}, ...]}`.

The estimator. Gemma's tokenizer (like Llama's) spells a number one character a token: an
optional sign, the integer digit, the point, the decimals. The positions read are the tokens
from the colon after `"sentiment"` (a lone space there competes with " -") to the one just
after the number (where a further digit competes with "," or a newline). At each position k
the generated token g_k competes with the reported alternatives a. An alternative's value is
the number the answer would hold had the model written a there and then gone on as it did:
the number's characters written before k, then a, then the parts of the generated number that
a did not write (after a sign, the integer digit and the rest: "0.4" → "-0.4"; after a digit
in place of the sign, the point and decimals: "-0.4" → "0.4"; after a decimal, the later
decimals). An alternative that ends the number ("," for the point) is the number written so
far. A value outside [-1, 1] is clipped where what is written up to a still begins a valid
answer ("1" → 1.0) and the alternative is dropped where it does not ("3", "0-", a quote, "0."
with nothing after), as is anything that makes the answer no number: an answer the schema
rejects is no sentiment. Probabilities are renormalised over g_k and the kept alternatives,
and the expected value is computed from the last position back:

    V_after_last = the generated number,  V_k = p(g_k) V_(k+1) + sum over a != g_k of p(a) value(a).

Approximations: only the top N alternatives are seen (their renormalisation spreads the rest
of the mass over them); a branch the model did not take is assumed to go on as the generated
number does (it was not decoded: the first deviation is exact, what follows it is not);
llama.cpp reports the probabilities of the model's logits before temperature and grammar,
what the model believes rather than what the sampler drew from. `certainty`, the product of
the renormalised p(g_k), is the probability of the number as written:
|expected - generated| <= 2 (1 - certainty), so where it is ~1 the two agree.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

TOP_LOGPROBS = 10  # alternatives asked per token (OpenAI allows at most 20)

# The last `"sentiment":` that is a key, not a quoted word inside the reasoning (\"sentiment\").
_KEY = re.compile(rb'(?<!\\)"sentiment"\s*:')
_NUMBER_AFTER_KEY = re.compile(rb"\s*(-?[0-9][0-9.]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_PARTS = re.compile(r"(-?)([0-9]*)(\.?)([0-9]*)")  # sign, integer, point, decimals of a number begun
_VALID_BEGINNING = re.compile(r"-?(?:0(?:\.[0-9]*)?|1(?:\.0*)?)?")  # what |s| <= 1 can begin with
_NUMBER_CHARS = set("-.0123456789")
_NUMBER_ENDS = set(" \t\r\n,}")  # what JSON lets follow a number in the answer's object


@dataclass(frozen=True)
class ExpectedSentiment:
    value: float  # the expected value, in [-1, 1]
    certainty: float  # the renormalised probability of the number as written
    positions: list[dict[str, Any]]  # the tokens read, as the backend gave them


def _bytes(token: Mapping[str, Any]) -> bytes:
    raw = token.get("bytes")
    return bytes(raw) if raw is not None else str(token.get("token", "")).encode("utf-8")


def _in_range(number: str, begun: str) -> float | None:
    """`number`'s value if it is a JSON number in [-1, 1]; ±1 if it is beyond but `begun` (what the
    model wrote of it) still begins a valid one; else None."""
    if not _JSON_NUMBER.fullmatch(number):
        return None
    value = float(number)
    if abs(value) <= 1:
        return value
    return math.copysign(1.0, value) if _VALID_BEGINNING.fullmatch(begun) else None


def alternative_value(written: str, alternative: str, generated: str) -> float | None:
    """The sentiment had the model written `alternative` after the number's first characters
    `written` and gone on as in `generated` (the module docstring's rule); None: no valid answer."""
    begun = written + (alternative if written else alternative.lstrip())
    end = next((i for i, char in enumerate(begun) if char not in _NUMBER_CHARS), None)
    if end is not None:  # the alternative ends the number
        return _in_range(begun[:end], begun[:end]) if begun[end] in _NUMBER_ENDS else None
    parts, ours = _PARTS.fullmatch(begun), _PARTS.fullmatch(generated)
    if parts is None:
        return None
    sign, integer, point, decimals = parts.groups()
    if not integer:
        number = (sign or ours[1]) + generated[len(ours[1]):] if not (point or decimals) else ""
    elif not point:
        number = begun + ours[3] + ours[4]
    else:
        number = begun + ours[4][len(decimals):]
    return _in_range(number, begun)


def expected_sentiment(tokens: Iterable[Mapping[str, Any]] | None) -> ExpectedSentiment | None:
    """The expected sentiment of an answer from its tokens' logprobs (module docstring); None
    when there are none or the answer holds no `"sentiment": <number>`."""
    tokens = list(tokens or [])
    pieces = [_bytes(token) for token in tokens]
    text = b"".join(pieces)
    keys = list(_KEY.finditer(text))
    if not keys:
        return None
    colon = keys[-1].end()
    match = _NUMBER_AFTER_KEY.match(text, colon)
    if match is None or not _JSON_NUMBER.fullmatch(match.group(1).decode()):
        return None
    generated, start = match.group(1).decode(), match.start(1)
    begins = [sum(map(len, pieces[:k])) for k in range(len(pieces))]
    positions = [k for k, begin in enumerate(begins) if colon <= begin <= match.end(1)]
    value, certainty = float(generated), 1.0
    for k in reversed(positions):
        written = generated[:max(0, begins[k] - start)]
        weights = {pieces[k]: math.exp(tokens[k]["logprob"])}
        values = {pieces[k]: value}
        for alternative in tokens[k].get("top_logprobs") or []:
            piece = _bytes(alternative)
            if piece in weights:
                continue
            alternative_number = alternative_value(written, piece.decode("utf-8", "replace"), generated)
            if alternative_number is not None:
                weights[piece], values[piece] = math.exp(alternative["logprob"]), alternative_number
        total = sum(weights.values())
        if total > 0:  # else the generated token's probability underflowed and no alternative is valid
            value = sum(weights[piece] * values[piece] for piece in weights) / total
            certainty *= weights[pieces[k]] / total
    return ExpectedSentiment(max(-1.0, min(1.0, value)), certainty, [dict(tokens[k]) for k in positions])
