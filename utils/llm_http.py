"""What step 03's labeller and eval's backends agree on about asking an LLM server over HTTP: which
answers are worth another try, the wait a server asks for, and where an API key comes from. The
clients themselves differ (async with rate limits and Retry-After there, sync with tenacity here);
the rules are these, once."""
from __future__ import annotations

import email.utils
import os
import time
from typing import Mapping

from utils.errors import FinsentError

# A request timeout, a conflict and a rate limit: the same request may succeed later. So may any 5xx.
TRANSIENT_STATUSES = frozenset({408, 409, 429})


def is_transient_status(code: int) -> bool:
    """An HTTP status worth another try: a timeout, a conflict, a rate limit, a server error."""
    return code in TRANSIENT_STATUSES or code >= 500


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for (retry-after-ms, else Retry-After in seconds or as an HTTP date)."""
    if milliseconds := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value)  # an HTTP date
        return max(0.0, moment.timestamp() - time.time()) if moment else None


def api_key(variable: str | None, who: str) -> str | None:
    """The key in environment variable `variable` (the scripts load `.env` into the environment:
    finsent.cli); None where no variable is named. A named variable that is unset or empty is an
    error naming `who` and the variable, never the value."""
    if not variable:
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise FinsentError(f"{who}: the environment variable {variable} is not set (set it or put it in .env)")
    return key
