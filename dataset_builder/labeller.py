"""The concurrent, crash-safe labeller of step 03.

Articles go to the configured providers with a bounded number of requests in flight, each
provider kept under its requests/min and tokens/min. Every answer is validated; an invalid
one is re-asked (bounded), then recorded as failed with the reason. Each article ends as one
JSONL record, appended and fsync'd: that file is the cache a rerun continues from. A provider
that keeps failing with outages (connection errors, timeouts, 5xx) is dropped; the run stops
when none is left.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from tqdm import tqdm

from dataset_builder.label_store import ResultStore, label_setup
from dataset_builder.news_articles import NewsArticle, article_messages
from dataset_builder.provider_calls import ProviderCalls, ProviderGone, stop_if_fatal
from dataset_builder.providers import Lane, ProviderPool, response_format
from dataset_builder.settings import LabellerConfig, ProviderConfig
from utils.llm_client import describe_error, is_transient, sdk_errors
from utils.schema import ResponseParseError, SentimentResponse, parse_sentiment_response

REASK = ("That answer is not valid ({reason}). Reply again with only the JSON object, with "
         "exactly the keys reasoning, sentiment and confidence.")


@dataclass(frozen=True)
class Task:
    """What the labeller asks about each item (a NewsArticle, or a labelled row to explain)
    and what it records of a valid answer."""

    messages: Callable[[Any], list[dict[str, str]]]
    answer: Callable[[Any, SentimentResponse], dict] = lambda item, response: response.model_dump()
    # the model's text → the validated answer, or ResponseParseError (the reason it is re-asked)
    parse: Callable[[str | None], SentimentResponse] = parse_sentiment_response
    response_format: Callable[[ProviderConfig], dict | None] = response_format  # what the request asks for


def news_task(config: LabellerConfig) -> Task:
    """Label a news article with the 5-shot prompt."""
    return Task(lambda article: article_messages(article, config.few_shot))


@dataclass
class Tally:
    """What labelling one article took."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch_requests: int = 0  # answered through the Batch API, priced at batch_discount
    batch_prompt_tokens: int = 0
    batch_completion_tokens: int = 0


@dataclass
class ProviderUsage(Tally):
    """What one provider's articles took in this run."""

    ok: int = 0
    failed: int = 0

    def cost(self, provider: ProviderConfig) -> float:
        prompt = self.prompt_tokens + provider.batch_discount * self.batch_prompt_tokens
        completion = self.completion_tokens + provider.batch_discount * self.batch_completion_tokens
        return (prompt * provider.price_input_per_million
                + completion * provider.price_output_per_million) / 1e6

    def add(self, tally: Tally) -> None:
        for name in Tally.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(tally, name))


@dataclass
class RunSummary:
    providers: dict[str, ProviderConfig]
    usage: dict[str, ProviderUsage] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(u.ok for u in self.usage.values())

    @property
    def failed(self) -> int:
        return sum(u.failed for u in self.usage.values())

    def lines(self) -> list[str]:
        rate = (self.ok + self.failed) / self.seconds if self.seconds else 0.0
        out = [f"labelled {self.ok} ok, {self.failed} failed in {self.seconds:.1f} s ({rate:.2f} articles/s)"]
        total = 0.0
        for name, usage in self.usage.items():
            provider = self.providers[name]
            cost = usage.cost(provider)
            total += cost
            batch = (f" + {usage.batch_requests} in batches ({usage.batch_prompt_tokens} prompt + "
                     f"{usage.batch_completion_tokens} completion tokens at "
                     f"{provider.batch_discount:g} × the price)") if usage.batch_requests else ""
            out.append(f"  {name}: {usage.requests} requests, {usage.ok} ok, {usage.failed} failed, "
                       f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
                       f"{batch}, estimated ${cost:.4f}")
        out.append(f"  estimated cost in all: ${total:.4f}")
        return out


class LabelSession:
    """What one run of step 03 asks with and records into, for the synchronous labeller and the
    batch labeller alike: the config, the task, the provider calls (the pool, retries, outages), the
    results store and the summary. `converse` asks one lane about one item until it answers validly;
    `save` records finished items."""

    def __init__(self, config: LabellerConfig, pool: ProviderPool, store: ResultStore, task: Task | None = None):
        self.config = config
        self.store = store
        self.task = task or news_task(config)
        self.calls = ProviderCalls(config, pool)
        self.summary = RunSummary({lane.provider.name: lane.provider for lane in pool.lanes})

    def save(self, records: list[dict[str, Any]]) -> None:
        """Append `records` to the store (one fsync) and count them in the summary."""
        self.store.append(records)
        for record in records:
            usage = self.summary.usage.setdefault(record["provider"], ProviderUsage())
            usage.ok += record["status"] == "ok"
            usage.failed += record["status"] == "failed"

    async def converse(self, article: NewsArticle, lane: Lane, tally: Tally, first_answer: str | None = None,
                       extra: dict | None = None, movable: bool = True) -> dict[str, Any]:
        """The article's record from `lane`. `first_answer`: an answer already given (by the
        Batch API) that counts as the first attempt, so an invalid one is re-asked here.
        `movable=False`: the article cannot go to another provider (a batch's re-ask), so its
        provider's outages stop the run instead of dropping the provider."""
        messages = self.task.messages(article)
        setup = label_setup(messages, self.config)
        started = time.monotonic()
        response, reason, attempts = None, None, 0
        while attempts <= self.config.max_reasks:
            attempts += 1
            if first_answer is not None:
                content, first_answer = first_answer, None
            else:
                try:
                    content = await self._ask(lane, messages, tally, movable)
                except sdk_errors() as exc:
                    reason = (f"gave up after {self.config.max_retries + 1} tries: {describe_error(exc)}"
                              if is_transient(exc) else f"request refused: {describe_error(exc)}")
                    break
            try:
                response = self.task.answer(article, self.task.parse(content))
                reason = None
                break
            except ResponseParseError as exc:
                reason = f"invalid answer: {exc}"
                messages = [*messages, {"role": "assistant", "content": content or ""},
                            {"role": "user", "content": REASK.format(reason=exc)}]
        self.summary.usage.setdefault(lane.provider.name, ProviderUsage()).add(tally)
        return article_record(article, lane, response, reason, attempts, tally, time.monotonic() - started, setup,
                              extra)

    async def _ask(self, lane: Lane, messages: list[dict[str, str]], tally: Tally, movable: bool = True) -> str | None:
        """One answer from `lane`, retrying transient failures; 401/403/404 stop the run."""
        provider = lane.provider
        estimate = sum(len(m["content"]) for m in messages) // 4 + self.config.max_tokens
        extra = {"response_format": fmt} if (fmt := self.task.response_format(provider)) else {}
        async for attempt in self.calls.retrying():
            with attempt:
                self.calls.raise_if_dropped(lane)
                await lane.limiter.acquire(estimate)
                tally.requests += 1
                try:
                    completion = await lane.client.chat.completions.create(
                        model=lane.model, messages=messages, temperature=self.config.temperature,
                        max_tokens=self.config.max_tokens, **extra)
                except sdk_errors() as exc:
                    lane.limiter.settle(estimate, 0)
                    stop_if_fatal(exc, lane)
                    self.calls.count_outage(lane, exc, movable)
                    raise
        self.calls.outages_in_a_row(lane, None)
        usage = completion.usage
        prompt, answer = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
        lane.limiter.settle(estimate, prompt + answer if usage else estimate)
        tally.prompt_tokens += prompt
        tally.completion_tokens += answer
        return completion.choices[0].message.content if completion.choices else None


class Labeller:
    """Labels items synchronously through a session: `max_in_flight` requests at once, each item
    sent to the pool's next model (another one if its provider is dropped meanwhile), the finished
    records written in group commits."""

    def __init__(self, session: LabelSession, show_progress: bool = True):
        self.session = session
        self.show_progress = show_progress

    async def run(self, articles: list[NewsArticle]) -> RunSummary:
        if not articles:
            return self.session.summary
        started = time.monotonic()
        queue: asyncio.Queue[NewsArticle] = asyncio.Queue()
        for article in articles:
            queue.put_nowait(article)
        finished: asyncio.Queue[dict | None] = asyncio.Queue()  # records waiting for the disk
        with tqdm(total=len(articles), unit="article", desc="labelling", smoothing=0.05,
                  disable=not self.show_progress) as bar:
            writer = asyncio.create_task(self._writer(finished, bar))
            workers = [asyncio.create_task(self._worker(queue, finished))
                       for _ in range(min(self.session.config.max_in_flight, len(articles)))]
            labelling = asyncio.gather(*workers)
            # Its exception is read below, unless a Ctrl-C cancels this task first: mark it read, or
            # asyncio logs "exception was never retrieved" for it at exit.
            labelling.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                await asyncio.wait([labelling, writer], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                finished.put_nowait(None)  # the writer saves what is queued, then stops
                await asyncio.wait([writer])
        self.session.summary.seconds = time.monotonic() - started
        for task in (writer, labelling):
            if not task.cancelled() and task.exception():
                raise task.exception()
        return self.session.summary

    async def _worker(self, queue: asyncio.Queue, finished: asyncio.Queue) -> None:
        while True:
            try:
                article = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            finished.put_nowait(await self.label(article))

    async def _writer(self, finished: asyncio.Queue, bar: tqdm) -> None:
        """Append finished records in batches, one fsync each (a group commit), in a thread so
        that the disk never stalls the requests in flight."""
        while True:
            batch = [await finished.get()]
            while not finished.empty():
                batch.append(finished.get_nowait())
            records = [record for record in batch if record is not None]
            if records:
                await asyncio.to_thread(self.session.save, records)
                bar.update(len(records))
                summary = self.session.summary
                bar.set_postfix(ok=summary.ok, failed=summary.failed, refresh=False)
            if None in batch:
                return

    async def label(self, article: NewsArticle) -> dict[str, Any]:
        """Ask one model until it gives a valid answer (re-asking at most `max_reasks` times)
        or a request fails for good; return the article's record. If the model's provider is
        dropped meanwhile, the article goes to another one."""
        pool = self.session.calls.pool
        while True:
            lane, tally = pool.next_lane(), Tally()
            try:
                return await self.session.converse(article, lane, tally)
            except ProviderGone:
                self.session.summary.usage.setdefault(lane.provider.name, ProviderUsage()).add(tally)
                if not pool.lanes:
                    raise


def article_record(article: NewsArticle, lane: Lane, response: dict | None, reason: str | None, attempts: int,
                   tally: Tally, latency_s: float, setup: dict[str, Any], extra: dict | None = None) -> dict[str, Any]:
    """An article's line in the results store: ok with the answer, or failed with the reason; and
    what made it (the lane's provider and model, `setup`: label_store.label_setup)."""
    return {
        "id": article.id, "status": "ok" if response else "failed", "reason": reason,
        "article": article.text, "published": article.published, "response": response,
        "provider": lane.provider.name, "model": lane.model, **setup, "attempts": attempts,
        "requests": tally.requests + tally.batch_requests, "latency_s": round(latency_s, 3),
        "prompt_tokens": tally.prompt_tokens + tally.batch_prompt_tokens,
        "completion_tokens": tally.completion_tokens + tally.batch_completion_tokens,
        **(extra or {}),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


async def _label(articles: list[NewsArticle], store: ResultStore, config: LabellerConfig,
                 show_progress: bool, task: Task | None) -> RunSummary:
    pool = ProviderPool(config)
    try:
        return await Labeller(LabelSession(config, pool, store, task), show_progress).run(articles)
    finally:
        await pool.close()


def label_articles(articles: list[NewsArticle], store: ResultStore, config: LabellerConfig,
                   show_progress: bool = True, task: Task | None = None) -> RunSummary:
    """Label `articles` (appending a record for each to `store`) and return the summary."""
    return asyncio.run(_label(articles, store, config, show_progress, task))
