"""LLM providers for step 03: their clients, client-side rate limits and the choice of model for
each article (round-robin or weighted). Which failures are retried and how, the wait a server asks
for, where a key comes from and how a client is built are utils.llm_client's, as for eval's backends."""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from dataset_builder.settings import LabellerConfig, ProviderConfig
from utils.errors import FinsentError
from utils.llm_client import api_key, make_client
from utils.schema import json_schema_response_format


class ProviderAuthError(FinsentError):
    """A provider refused our credentials (401/403): every further request would fail too."""


class _Bucket:
    """A token bucket refilled at `per_minute`/60 per second, holding up to 5 s of budget."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 5)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        # A request larger than the bucket goes when the bucket is full and leaves it in debt.
        needed = min(amount, self.capacity) - self.level
        return max(0.0, needed / self.rate)


class RateLimiter:
    """Client-side requests/min and tokens/min of one provider, shared by its models."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self._requests = _Bucket(requests_per_minute) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute) if tokens_per_minute else None
        self._lock = asyncio.Lock()  # first come, first served

    async def acquire(self, tokens: int) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                waits = [0.0]
                for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
                    if bucket:
                        bucket.refill(now)
                        waits.append(bucket.wait_for(amount))
                if max(waits) <= 0:
                    break
                await asyncio.sleep(max(waits))
            if self._requests:
                self._requests.level -= 1
            if self._tokens:
                self._tokens.level -= tokens

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token budget once the answer says what the request really cost."""
        if self._tokens:
            self._tokens.level += estimated - actual


def provider_client(provider: ProviderConfig) -> Any:
    """The provider's async SDK client (groq for kind groq, else openai)."""
    key = api_key(provider.api_key_env, f"provider '{provider.name}'")  # None: a local server, any key
    if provider.kind == "openai_compatible" and not provider.base_url:
        raise FinsentError(f"provider '{provider.name}': kind openai_compatible needs a base_url")
    return make_client("groq" if provider.kind == "groq" else "openai", key, provider.request_timeout_s,
                       provider.base_url, asynchronous=True)


def response_format(provider: ProviderConfig) -> dict[str, Any] | None:
    if provider.response_format == "json_schema":
        return json_schema_response_format()
    if provider.response_format == "json_object":
        return {"type": "json_object"}
    return None


@dataclass
class Lane:
    """One (provider, model) pair that articles are sent to."""

    provider: ProviderConfig
    model: str
    weight: float
    client: Any
    limiter: RateLimiter
    current: float = field(default=0.0, repr=False)  # smooth weighted round-robin state


class ProviderPool:
    """Clients and limits for every configured provider, and the model for each article."""

    def __init__(self, config: LabellerConfig):
        self.weighted = config.strategy == "weighted"
        self.lanes: list[Lane] = []
        for provider in config.providers:
            client = provider_client(provider)
            limiter = RateLimiter(provider.requests_per_minute, provider.tokens_per_minute)
            self.lanes += [Lane(provider, m.name, m.weight, client, limiter) for m in provider.models]
        self.all_lanes = list(self.lanes)  # those dropped or kept out included
        self.dropped: set[str] = set()  # names of providers taken out of the rotation
        self._cycle = itertools.cycle(self.lanes)

    def keep(self, wanted) -> None:
        """Choose models only among the lanes for which `wanted(lane)` holds."""
        self.lanes = [lane for lane in self.lanes if wanted(lane)]
        self._cycle = itertools.cycle(self.lanes)

    def drop(self, provider: ProviderConfig) -> None:
        """Take every model of `provider` out of the rotation (it is not answering)."""
        self.dropped.add(provider.name)
        self.keep(lambda lane: lane.provider.name != provider.name)

    def next_lane(self) -> Lane:
        if not self.lanes:
            raise FinsentError("no provider left to ask")
        if not self.weighted:
            return next(self._cycle)
        # Smooth weighted round-robin (as in nginx): deterministic and evenly interleaved.
        total = sum(lane.weight for lane in self.lanes)
        for lane in self.lanes:
            lane.current += lane.weight
        chosen = max(self.lanes, key=lambda lane: lane.current)
        chosen.current -= total
        return chosen

    async def close(self) -> None:
        for client in {id(lane.client): lane.client for lane in self.all_lanes}.values():
            await client.close()
