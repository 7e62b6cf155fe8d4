"""Step 03 through the Batch API of OpenAI (Groq's has the same shape): half the price of
synchronous requests, answers within a 24-hour window, its own rate-limit pool.

The requests (the same prompt and response_format as the synchronous path, `custom_id` = the
article id) are written as the API's JSONL, split where a batch would pass
`batch_max_requests` or `batch_max_bytes`, uploaded (purpose `batch`) and submitted. Each
batch's input file id, then its batch id, is recorded in the results store before anything
waits on it, so a killed run resumes polling the same batch instead of paying for another.
When a batch ends (completed, expired, cancelled or failed) its output and error files are read:
every answer is validated with the synchronous path's parser, an invalid one is re-asked
through the synchronous path (at full price; these are few), as is a request the error file
says failed with a 429 or 5xx (with the synchronous retries); a request the batch never ran
(expired, cancelled) is recorded failed, for --retry-failed. Every article of the batch ends
as one record, ok or failed with the reason, exactly as the synchronous path leaves it.
`max_consecutive_failures` outages of a provider in a row (Batch API calls and re-asks counted
together) stop the run, the batch being collected keeping what it answered (see `call`).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from tqdm import tqdm

from dataset_builder.label_store import BATCH_KIND, ResultStore, label_setup
from dataset_builder.labeller import LabelSession, Labeller, RunSummary, Task, Tally, article_record, label_articles
from dataset_builder.provider_calls import EVERY_RECORD_KEPT, ProviderGone, stop_if_fatal
from dataset_builder.providers import Lane, ProviderPool
from dataset_builder.settings import LabellerConfig
from utils.errors import FinsentError
from utils.llm_client import describe_error, is_transient_status, sdk_errors

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
ENDED = {"completed", "expired", "cancelled", "failed"}  # a batch in these states changes no more


def request_line(item: Any, lane: Lane, task: Task, config: LabellerConfig) -> dict[str, Any]:
    """One line of a batch's input file: the synchronous path's request about `item`."""
    body: dict[str, Any] = {"model": lane.model, "messages": task.messages(item),
                            "temperature": config.temperature, "max_tokens": config.max_tokens}
    if fmt := task.response_format(lane.provider):
        body["response_format"] = fmt
    return {"custom_id": item.id, "method": "POST", "url": ENDPOINT, "body": body}


def split_requests(lines: list[dict[str, Any]], max_requests: int, max_bytes: int) -> list[list[bytes]]:
    """The encoded lines in chunks of at most `max_requests` lines and `max_bytes` bytes."""
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        if len(data) > max_bytes:
            raise FinsentError(f"article {line['custom_id']}: its batch request is {len(data)} bytes, "
                               f"over dataset.labeller.batch_max_bytes ({max_bytes})")
        if current and (len(current) >= max_requests or size + len(data) > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        chunks.append(current)
    return chunks


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class BatchLabeller:
    """Submits, polls and collects batches through the session's provider calls (utils.llm_client's
    retries; outages and drops: provider_calls.ProviderCalls), re-asks an invalid answer through the
    session's conversation and saves the records to the session's store and summary."""

    def __init__(self, session: LabelSession):
        self.session = session
        self.calls = session.calls
        self.config = session.config
        self.store: ResultStore = session.store

    # --- the API, with the synchronous path's retries and fatal errors -------------------------
    async def call(self, lane: Lane, request):
        """`await request()` retrying transient failures; 401/403/404 stop the run with one line,
        as do `max_consecutive_failures` outages of the provider in a row (its synchronous
        re-asks' included): a batch cannot move to another provider, so it stops the run."""
        try:
            async for attempt in self.calls.retrying():
                with attempt:
                    try:
                        answer = await request()
                    except sdk_errors() as exc:
                        if self.calls.outages_in_a_row(lane, exc) >= self.config.max_consecutive_failures:
                            raise ProviderGone(f"{self.calls.outages_message(lane, exc)}; stopping "
                                               f"({EVERY_RECORD_KEPT})") from None
                        raise
                    self.calls.outages_in_a_row(lane, None)
                    return answer
        except sdk_errors() as exc:
            stop_if_fatal(exc, lane)
            raise FinsentError(f"provider '{lane.provider.name}': the Batch API failed: "
                               f"{describe_error(exc)}") from None

    def lane_of(self, batch: dict[str, Any]) -> Lane:
        """The lane a recorded batch was sent to (its provider must still be configured)."""
        lanes = [lane for lane in self.calls.pool.all_lanes if lane.provider.name == batch["provider"]]
        if not lanes:
            raise FinsentError(f"{self.store.path}: batch {batch.get('batch_id') or batch['input_file_id']} "
                               f"was sent to provider '{batch['provider']}', which dataset.labeller.providers "
                               f"no longer has")
        same_model = [lane for lane in lanes if lane.model == batch["model"]]
        return same_model[0] if same_model else Lane(lanes[0].provider, batch["model"], 1.0,
                                                     lanes[0].client, lanes[0].limiter)

    # --- submit ---------------------------------------------------------------------------------
    async def submit(self, assigned: list[tuple[Any, Lane]]) -> None:
        """Upload and submit batches for these (item, lane) pairs, one lane per batch (a batch
        holds one model), recording each before the next step."""
        by_lane: dict[int, tuple[Lane, list[Any]]] = {}
        for item, lane in assigned:
            by_lane.setdefault(id(lane), (lane, []))[1].append(item)
        for lane, items in by_lane.values():
            lines = [request_line(item, lane, self.session.task, self.config) for item in items]
            for chunk in split_requests(lines, self.config.batch_max_requests, self.config.batch_max_bytes):
                ids = [json.loads(line)["custom_id"] for line in chunk]
                uploaded = await self.call(lane, lambda: lane.client.files.create(
                    file=("finsent-step03-batch.jsonl", b"".join(chunk)), purpose="batch"))
                record = {"kind": BATCH_KIND, "input_file_id": uploaded.id, "batch_id": None,
                          "state": "uploaded", "provider": lane.provider.name, "model": lane.model,
                          "ids": ids, "at": _now()}
                self.store.append([record])
                await self._create(lane, record)

    async def _create(self, lane: Lane, record: dict[str, Any]) -> None:
        """Create the batch of an uploaded file, unless a killed run already did (found by its
        input file id among the provider's batches), and record its id."""
        page = await self.call(lane, lambda: lane.client.batches.list())  # the newest first
        batch = next((b for b in page.data if b.input_file_id == record["input_file_id"]), None)
        if batch is None:
            batch = await self.call(lane, lambda: lane.client.batches.create(
                input_file_id=record["input_file_id"], endpoint=ENDPOINT,
                completion_window=COMPLETION_WINDOW, metadata={"created_by": "finsent step 03"}))
        self.store.append([{**record, "batch_id": batch.id, "state": "submitted", "at": _now()}])
        log.info("batch %s submitted to %s (%s): %d requests", batch.id, lane.provider.name,
                 lane.model, len(record["ids"]))

    # --- wait and collect -----------------------------------------------------------------------
    async def wait(self, items_by_id: dict[str, Any], show_progress: bool) -> None:
        """Poll every open batch (with a doubling wait) until it ends, collecting each as it does."""
        for record in [b for b in self.store.open_batches() if b["state"] == "uploaded"]:
            await self._create(self.lane_of(record), record)
        waiting = {b["batch_id"]: b for b in self.store.open_batches()}
        done_per_batch: dict[str, int] = defaultdict(int)
        delay = self.config.batch_poll_initial_s
        with tqdm(total=sum(len(b["ids"]) for b in waiting.values()), unit="request",
                  desc="batches", disable=not show_progress) as bar:
            while waiting:
                for batch_id, record in list(waiting.items()):
                    lane = self.lane_of(record)
                    batch = await self.call(lane, lambda: lane.client.batches.retrieve(batch_id))
                    counts = batch.request_counts
                    done_per_batch[batch_id] = (counts.completed + counts.failed) if counts else 0
                    if batch.status in ENDED:
                        await self._collect(lane, record, batch, items_by_id)
                        done_per_batch[batch_id] = len(record["ids"])
                        del waiting[batch_id]
                bar.n = sum(done_per_batch.values())
                bar.set_postfix(batches_open=len(waiting), refresh=False)
                bar.refresh()
                if waiting:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.config.batch_poll_max_s)

    async def _read_lines(self, lane: Lane, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        content = await self.call(lane, lambda: lane.client.files.content(file_id))
        data = content.read()  # openai: bytes; groq: a coroutine giving them
        if inspect.isawaitable(data):
            data = await data
        entries = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("batch file %s: line %d is not JSON; its article counts as not answered",
                            file_id, number)
                continue
            if isinstance(entry, dict) and isinstance(entry.get("custom_id"), str):
                entries.append(entry)
        return entries

    async def _collect(self, lane: Lane, record: dict[str, Any], batch, items_by_id: dict[str, Any]) -> None:
        """One record per article of an ended batch, then the batch recorded as collected."""
        answers: dict[str, dict] = {}
        reasons: dict[str, str] = {}
        ask_again: set[str] = set()  # a 429 or 5xx in the error file: asked synchronously
        for entry in [*await self._read_lines(lane, batch.output_file_id),
                      *await self._read_lines(lane, batch.error_file_id)]:
            custom_id, response, error = entry["custom_id"], entry.get("response") or {}, entry.get("error")
            if error:
                reasons[custom_id] = f"batch error: {error.get('code')}: {error.get('message')}"
            elif response.get("status_code") != 200:
                code = response.get("status_code")
                message = ((response.get("body") or {}).get("error") or {}).get("message", "")
                reasons[custom_id] = f"batch request failed: HTTP {code} {message}".rstrip()
                if isinstance(code, int) and is_transient_status(code):
                    ask_again.add(custom_id)
            else:
                answers[custom_id] = response.get("body") or {}
        not_run = _batch_failure(batch)
        semaphore = asyncio.Semaphore(self.config.max_in_flight)  # re-asks go out synchronously

        async def finish(custom_id: str) -> dict[str, Any] | None:
            item = items_by_id.get(custom_id)
            already = self.store.records.get(custom_id, {})
            if item is None or already.get("batch_id") == batch.id:  # not asked now, or collected
                return None
            tally = Tally()
            extra = {"batch_id": batch.id}
            if custom_id in ask_again:  # with the synchronous path's retries
                async with semaphore:
                    return await self.session.converse(item, lane, tally, extra=extra, movable=False)
            if custom_id not in answers:
                setup = label_setup(self.session.task.messages(item), self.config)
                return article_record(item, lane, None, reasons.get(custom_id) or not_run, 0, tally, 0.0, setup, extra)
            body = answers[custom_id]
            usage = body.get("usage") or {}
            tally.batch_requests = 1
            tally.batch_prompt_tokens = usage.get("prompt_tokens") or 0
            tally.batch_completion_tokens = usage.get("completion_tokens") or 0
            choices = body.get("choices") or [{}]
            content = (choices[0].get("message") or {}).get("content") or ""
            async with semaphore:
                return await self.session.converse(item, lane, tally, first_answer=content, extra=extra,
                                                   movable=False)

        stopped: list[FinsentError] = []  # in the order they came

        async def finish_unless_stopped(custom_id: str) -> dict[str, Any] | None:
            try:
                return await finish(custom_id)
            except FinsentError as exc:  # a re-ask found the provider gone (or the key refused)
                stopped.append(exc)
                return None

        results = await asyncio.gather(*(finish_unless_stopped(custom_id) for custom_id in record["ids"]))
        records = [result for result in results if result is not None]
        if records:
            await asyncio.to_thread(self.session.save, records)
        if stopped:  # what the batch answered is recorded; the batch stays open for the rest
            raise stopped[0]
        absent = [custom_id for custom_id in record["ids"] if custom_id not in items_by_id]
        if absent:  # their answers stay in the batch's files until a run has their texts
            log.warning("batch %s holds %d articles not in this run's input (--limit?): a run with "
                        "them records them", batch.id, len(absent))
            return
        counts = batch.request_counts
        self.store.append([{**record, "state": "collected", "status": batch.status, "at": _now(),
                            "completed": counts.completed if counts else None,
                            "failed": counts.failed if counts else None}])
        log.info("batch %s %s: %d articles recorded", batch.id, batch.status, len(records))


def _batch_failure(batch) -> str:
    """The reason of an article a batch ended without answering."""
    if batch.status == "failed" and batch.errors and batch.errors.data:
        first = batch.errors.data[0]
        return f"batch {batch.id} failed: {first.message}"
    return f"not answered: batch {batch.id} ended {batch.status}"


async def label_with_batches(articles: list[Any], todo: list[Any], store: ResultStore,
                             config: LabellerConfig, show_progress: bool, task: Task | None,
                             batch_everything: bool) -> RunSummary:
    """Submit the `todo` items that fall to batch providers (all with `batch_everything`),
    label the others synchronously, then wait for every open batch (this run's and any a
    killed run left) and record its articles. `articles`: every item the open batches may hold."""
    started = time.monotonic()
    pool = ProviderPool(config)
    try:
        session = LabelSession(config, pool, store, task)
        batcher = BatchLabeller(session)

        def batched(lane: Lane) -> bool:
            return batch_everything or lane.provider.batch
        assigned = [(item, pool.next_lane()) for item in todo]
        await batcher.submit([(item, lane) for item, lane in assigned if batched(lane)])
        pool.keep(lambda lane: not batched(lane))
        await Labeller(session, show_progress).run([item for item, lane in assigned if not batched(lane)])
        await batcher.wait({item.id: item for item in articles}, show_progress)
        session.summary.seconds = time.monotonic() - started
        return session.summary
    finally:
        await pool.close()


def label_in_batches(articles: list[Any], todo: list[Any], store: ResultStore, config: LabellerConfig,
                     show_progress: bool = True, task: Task | None = None,
                     batch_everything: bool = False) -> RunSummary:
    """label_with_batches, from synchronous code."""
    return asyncio.run(label_with_batches(articles, todo, store, config, show_progress, task,
                                          batch_everything))


def label_all(articles: list[Any], todo: list[Any], store: ResultStore, config: LabellerConfig,
              show_progress: bool = True, task: Task | None = None, batch_everything: bool = False) -> RunSummary:
    """Label `todo` (of `articles`): through the Batch API where asked (`batch_everything`, a
    provider's `batch: true`) or where a batch of an earlier run is still open, else synchronously."""
    if batch_everything or store.open_batches() or any(provider.batch for provider in config.providers):
        return label_in_batches(articles, todo, store, config, show_progress, task, batch_everything)
    return label_articles(todo, store, config, show_progress, task)


async def _each_batch(store: ResultStore, config: LabellerConfig, action) -> list[str]:
    if not store.batches:
        return [f"no batch recorded in {store.path}"]
    pool = ProviderPool(config)
    try:
        batcher = BatchLabeller(LabelSession(config, pool, store))
        return [await action(batcher, record) for record in store.batches.values()]
    finally:
        await pool.close()


async def _status_line(batcher: BatchLabeller, record: dict[str, Any]) -> str:
    where = f"{record['provider']} ({record['model']}), {len(record['ids'])} requests"
    if record["state"] == "collected":
        return (f"{record['batch_id']}: {record['status']}, collected ({record.get('completed')} completed, "
                f"{record.get('failed')} failed), {where}")
    if record["state"] == "uploaded":
        return f"file {record['input_file_id']}: uploaded, batch not created yet (a rerun creates it), {where}"
    lane = batcher.lane_of(record)
    batch = await batcher.call(lane, lambda: lane.client.batches.retrieve(record["batch_id"]))
    counts = batch.request_counts
    done = f"{counts.completed} completed, {counts.failed} failed of {counts.total}" if counts else "no counts yet"
    return f"{batch.id}: {batch.status} ({done}), {where}; a rerun collects it once it ends"


async def _cancel(batcher: BatchLabeller, record: dict[str, Any]) -> str:
    if record["state"] != "submitted":
        return await _status_line(batcher, record)
    lane = batcher.lane_of(record)
    batch = await batcher.call(lane, lambda: lane.client.batches.cancel(record["batch_id"]))
    return (f"{batch.id}: {batch.status}; a rerun records what it answered before the cancel "
            f"(the rest as failed)")


def batch_status(store: ResultStore, config: LabellerConfig) -> list[str]:
    """One line per batch recorded in `store`: where it stands (asked of the provider if open)."""
    return asyncio.run(_each_batch(store, config, _status_line))


def cancel_batches(store: ResultStore, config: LabellerConfig) -> list[str]:
    """Cancel every open batch recorded in `store`; one line per batch."""
    return asyncio.run(_each_batch(store, config, _cancel))
