"""Step 03's calls to its providers' APIs, for the synchronous labeller and the Batch API alike: a
transient failure tried again by utils.llm_client's RetryPolicy (the wait the server asked for,
else backoff with jitter); 401/403/404 stop the run; outages in a row counted per provider, which is
dropped at max_consecutive_failures (and the run stops when none is left, or when the articles
cannot move to another provider)."""
from __future__ import annotations

import logging

from tenacity import AsyncRetrying

from dataset_builder.providers import Lane, ProviderAuthError, ProviderPool
from dataset_builder.settings import LabellerConfig
from utils.errors import FinsentError
from utils.llm_client import RetryPolicy, describe_error, is_outage, status_code

log = logging.getLogger(__name__)


class ProviderGone(FinsentError):
    """Every provider was dropped after too many outages in a row: the run stops."""


EVERY_RECORD_KEPT = "every record is kept: rerun when it is back"


class ProviderCalls:
    """The retry, outage and drop rules of one run's provider pool."""

    def __init__(self, config: LabellerConfig, pool: ProviderPool):
        self.config = config
        self.pool = pool
        self.retry_policy = RetryPolicy(config.max_retries + 1, config.backoff_initial_s, config.backoff_max_s,
                                        config.retry_after_max_s)
        self._outages_in_a_row: dict[str, int] = {}  # provider → outages since its last answer

    def retrying(self) -> AsyncRetrying:
        """Transient failures tried again (max_retries), by the run's RetryPolicy."""
        return self.retry_policy.async_retrying()

    def outages_in_a_row(self, lane: Lane, exc: BaseException | None) -> int:
        """Count `exc` (None: an answer) and return the outages of `lane`'s provider in a row:
        any answer, 429 included, shows the provider is there and starts the count again."""
        name = lane.provider.name
        self._outages_in_a_row[name] = self._outages_in_a_row.get(name, 0) + 1 if exc and is_outage(exc) else 0
        return self._outages_in_a_row[name]

    def outages_message(self, lane: Lane, exc: BaseException) -> str:
        return (f"provider '{lane.provider.name}' at {str(lane.client.base_url).rstrip('/')}: "
                f"{self.config.max_consecutive_failures} requests in a row failed (last: {describe_error(exc)})")

    def count_outage(self, lane: Lane, exc: BaseException, movable: bool = True) -> None:
        """At `max_consecutive_failures` outages in a row drop the provider, and stop when none
        is left or the article cannot move to another one."""
        count = self.outages_in_a_row(lane, exc)
        if not count:
            return
        if count == self.config.max_consecutive_failures:
            self.pool.drop(lane.provider)
            what = self.outages_message(lane, exc)
            if not movable:
                raise ProviderGone(f"{what}; a batch's articles cannot move to another provider, stopping "
                                   f"({EVERY_RECORD_KEPT})")
            if not self.pool.lanes:
                raise ProviderGone(f"{what}; no provider left, stopping ({EVERY_RECORD_KEPT})")
            log.warning("%s; dropped, the other providers carry on", what)
        self.raise_if_dropped(lane)

    def raise_if_dropped(self, lane: Lane) -> None:
        if lane.provider.name in self.pool.dropped:
            raise ProviderGone(f"provider '{lane.provider.name}' was dropped")


def stop_if_fatal(exc: BaseException, lane: Lane) -> None:
    code = status_code(exc)
    provider = lane.provider
    if code in {401, 403}:
        where = f" from {provider.api_key_env}" if provider.api_key_env else ""
        raise ProviderAuthError(f"provider '{provider.name}' refused the API key{where} (HTTP {code}): "
                                f"check the key and its access to model '{lane.model}'") from None
    if code == 404:
        raise FinsentError(f"provider '{provider.name}' answered HTTP 404 for model '{lane.model}': "
                           f"check the model name and base_url") from None
