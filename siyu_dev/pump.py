"""The local event pump: does on the emulator what Lambda's event source mappings do on AWS.

- each queue in chalicelib.resources.QUEUES is long-polled and its handler called with a
  Lambda-shaped SQS event; only the messages the handler did not report as failed are deleted, so
  failures come back after a short delay and end in the DLQ after maxReceiveCount, as on AWS;
- each stream in resources.STREAMS is read from the emulator's DynamoDB stream, filtered with the
  same pattern the event source mapping uses, and handed to its handler in batches, retrying the
  records it reports as failed;
- hooks (e.g. firing due EventBridge Scheduler schedules, which moto stores but never fires) run
  every `tick` seconds.
"""
from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Callable

from chalicelib import aws, resources

log = logging.getLogger("siyu.pump")


def lambda_context(function_name: str, timeout_s: int = 30, memory: int = 256) -> SimpleNamespace:
    deadline = time.monotonic() + timeout_s
    return SimpleNamespace(
        function_name=function_name, function_version="$LATEST", memory_limit_in_mb=memory,
        invoked_function_arn=f"arn:{aws.partition()}:lambda:{aws.region()}:000000000000:function:{function_name}",
        aws_request_id=str(uuid.uuid4()), log_group_name=f"/aws/lambda/{function_name}",
        get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)))


def resolve(handler: str) -> Callable:
    module, _, func = handler.rpartition(".")
    return getattr(importlib.import_module(module), func)


def matches(pattern, value) -> bool:
    """EventBridge-style pattern match, the subset Lambda event filters use here (nested keys, value
    lists, `{"prefix": ...}` among a list's values)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(_matches_value(p, value) for p in pattern)
    return pattern == value


def _matches_value(allowed, value) -> bool:
    if isinstance(allowed, dict):
        if set(allowed) != {"prefix"}:
            raise ValueError(f"unsupported filter rule {allowed!r}")
        return isinstance(value, str) and value.startswith(allowed["prefix"])
    return value == allowed


def delivered(spec, record: dict) -> bool:
    """Whether the stream's event source mapping would deliver `record` (its filters: any matches)."""
    return any(matches(pattern, record) for pattern in spec.filter_patterns)


class Pump:
    def __init__(self, *, poll_wait: int = 1, redelivery_delay: int = 1, tick: float = 0.2,
                 queues=resources.QUEUES, streams=resources.STREAMS):
        self.poll_wait = poll_wait
        self.redelivery_delay = redelivery_delay
        self.tick = tick
        self.queues = queues
        self.streams = streams
        self.hooks: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.invocations: dict[str, int] = {}
        self._busy = 0
        self._lock = threading.Lock()
        # For idle(): when each loop last started a poll that came back empty, and when the last
        # handler finished. Quiet means every loop has looked again since the last handler ran.
        self._empty_since: dict[str, float] = {}
        self._last_activity = 0.0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        import os
        for spec in self.queues:
            self._spawn(f"sqs:{spec.key}", self._queue_loop, spec, os.environ[spec.env])
        for spec in self.streams:
            table_spec = resources.table(spec.table)
            self._spawn(f"stream:{spec.key}", self._stream_loop, spec, os.environ[table_spec.env])
        if self.hooks:
            self._spawn("hooks", self._hook_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.poll_wait + 5)

    def _spawn(self, label: str, target, *args) -> None:
        thread = threading.Thread(target=self._guard, args=(label, target, *args), name=f"pump-{label}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, label, target, *args) -> None:
        while not self._stop.is_set():
            try:
                target(*args)
            except Exception:  # noqa: BLE001 - keep pumping; a crash here is what Lambda would retry
                log.exception("pump %s failed; continuing", label)
                self._stop.wait(1)

    def _invoke(self, name: str, handler: str, event: dict, timeout: int, memory: int) -> dict | None:
        with self._lock:
            self._busy += 1
            self.invocations[name] = self.invocations.get(name, 0) + 1
        try:
            return resolve(handler)(event, lambda_context(f"siyu-local-{name}", timeout, memory))
        finally:
            with self._lock:
                self._busy -= 1
                self._last_activity = time.monotonic()

    def _polled(self, label: str, started: float, found: bool) -> None:
        if found:
            self._empty_since.pop(label, None)
        else:
            self._empty_since[label] = started

    @property
    def busy(self) -> bool:
        return self._busy > 0

    # -- SQS ------------------------------------------------------------------------------------
    def _queue_loop(self, spec: resources.Queue, url: str) -> None:
        sqs = aws.client("sqs")
        while not self._stop.is_set():
            started = time.monotonic()
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(spec.batch_size, 10),
                                      WaitTimeSeconds=self.poll_wait, AttributeNames=["All"],
                                      MessageAttributeNames=["All"]).get("Messages", [])
            if got:
                # an empty poll from before no longer speaks for this queue (idle() reads it)
                self._polled(f"sqs:{spec.key}", started, True)
                self.deliver(spec, url, got)
            self._polled(f"sqs:{spec.key}", started, bool(got))

    def deliver(self, spec: resources.Queue, url: str, messages: list[dict]) -> None:
        sqs = aws.client("sqs")
        arn = f"arn:{aws.partition()}:sqs:{aws.region()}:000000000000:{url.rsplit('/', 1)[-1]}"
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": arn,
            "awsRegion": aws.region()} for m in messages]}
        try:
            result = self._invoke(spec.key, spec.handler, event, spec.consumer_timeout, spec.consumer_memory) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001 - as on Lambda: the whole batch becomes visible again
            log.exception("handler %s raised; the batch will be redelivered", spec.handler)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        for m in messages:
            if m["MessageId"] in failed:
                # Lambda waits out the visibility timeout; locally a short delay keeps demos and tests brisk.
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=self.redelivery_delay)

    # -- DynamoDB streams -----------------------------------------------------------------------
    def _stream_loop(self, spec: resources.Stream, table_name: str) -> None:
        ddb, streams = aws.client("dynamodb"), aws.client("dynamodbstreams")
        stream_arn = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        last_seen: dict[str, str] = {}      # shard -> sequence number of the last record handled
        while not self._stop.is_set():
            started, found, behind = time.monotonic(), False, False
            for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
                shard_id = shard["ShardId"]
                # A fresh iterator each poll, positioned after the last record handled: moto swaps its
                # table object when it rolls back a cancelled transaction, stranding older iterators.
                position = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last_seen[shard_id]}
                            if shard_id in last_seen else {"ShardIteratorType": "TRIM_HORIZON"})
                iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id,
                                                      **position)["ShardIterator"]
                page = streams.get_records(ShardIterator=iterator, Limit=spec.batch_size)
                got = page.get("Records", [])
                if got:
                    last_seen[shard_id] = got[-1]["dynamodb"]["SequenceNumber"]
                # a full page may have more behind it: the stream is not polled empty until a page
                # comes back short, however few of its records the filters let through (with many
                # writes of other kinds, a page of them hid the records behind it from idle())
                behind = behind or len(got) >= spec.batch_size
                records = [dict(r, eventSourceARN=stream_arn) for r in got
                           if delivered(spec, _jsonable(r))]
                if records:
                    found = True
                    self._deliver_stream(spec, records)
            self._polled(f"stream:{spec.key}", started, found or behind)
            if not behind:
                self._stop.wait(self.tick)

    def _deliver_stream(self, spec: resources.Stream, records: list[dict]) -> None:
        pending = [_jsonable(r) for r in records]
        for attempt in range(spec.max_retry_attempts + 1):
            try:
                result = self._invoke(spec.key, spec.handler, {"Records": pending}, spec.consumer_timeout,
                                      spec.consumer_memory) or {}
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except Exception:  # noqa: BLE001
                log.exception("stream handler %s raised", spec.handler)
                failed = {r["dynamodb"]["SequenceNumber"] for r in pending}
            if not failed:
                return
            # Lambda retries from the first failed record (bisecting); the same ordering is kept here.
            first = min(i for i, r in enumerate(pending) if r["dynamodb"]["SequenceNumber"] in failed)
            pending = pending[first:]
            self._stop.wait(min(2 ** attempt * 0.1, 2))
        log.error("stream records dropped after %d attempts (an on-failure destination would get them): %s",
                  spec.max_retry_attempts, [r["dynamodb"]["SequenceNumber"] for r in pending])

    # -- hooks ----------------------------------------------------------------------------------
    def _hook_loop(self) -> None:
        while not self._stop.is_set():
            for hook in self.hooks:
                hook()
            self._stop.wait(self.tick)

    def idle(self, timeout: float = 15.0) -> bool:
        """Wait until no handler runs and every queue and stream has been polled empty since the
        last handler finished (tests call this before reading what the workers did).

        A queue also counts as quiet when, looked at after that moment with no handler running or
        finishing meanwhile, it holds no message, visible or in flight (a message a poller has received
        and not yet deleted is in flight): an empty long poll takes a whole `poll_wait`, and waiting
        for one per call cost every test that reads the workers' results a second or two."""
        since = time.monotonic()
        queues = {f"sqs:{q.key}": q for q in self.queues}
        streams = [f"stream:{s.key}" for s in self.streams]
        deadline = since + timeout
        while time.monotonic() < deadline:
            with self._lock:
                mark = max(since, self._last_activity)
                activity = self._last_activity
                quiet = not self._busy and all(self._empty_since.get(label, 0) > mark for label in streams)
                unpolled = [label for label in queues if self._empty_since.get(label, 0) <= mark]
            if quiet and (not unpolled or self._hold_nothing([queues[label] for label in unpolled], activity)):
                return True
            time.sleep(0.05)
        return False

    def _hold_nothing(self, specs: list, activity: float) -> bool:
        """Each queue empty (nothing visible, nothing in flight), with no handler run in between."""
        import os
        sqs = aws.client("sqs")
        for spec in specs:
            counts = sqs.get_queue_attributes(QueueUrl=os.environ[spec.env], AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if any(int(n) for n in counts.values()):
                return False
        with self._lock:
            return not self._busy and self._last_activity == activity


def _jsonable(record: dict) -> dict:
    """Stream records as Lambda delivers them: JSON types (botocore gives datetimes)."""
    return json.loads(json.dumps(record, default=lambda v: v.timestamp() if hasattr(v, "timestamp") else str(v)))


class SchedulerFirer:
    """Fires due EventBridge Scheduler schedules on the emulator, which stores them but never fires them.

    Every `every` seconds it lists the schedule group; a one-time `at(...)` schedule is due once its
    wall time (in ScheduleExpressionTimezone) has passed, a `cron(...)` one when it matches the
    current minute there. A due schedule's target input (with Scheduler's context attributes filled
    in) is sent to its target queue once per due time; one-time schedules with
    ActionAfterCompletion=DELETE are then deleted, as Scheduler does.
    `fire(name, times=2)` forces a fire now (tests: a fire before the time, a duplicate fire).
    """

    def __init__(self, *, every: float = 1.0, clock: Callable[[], "datetime"] | None = None):
        from datetime import datetime, timezone
        self.every = every
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.fired: list[tuple[str, str]] = []         # (schedule, scheduled time) in firing order
        self._done: set[tuple[str, str]] = set()
        self._known: dict[str, dict] = {}              # last definition seen, so a deleted one can be forced again
        self._next = 0.0
        self._lock = threading.Lock()

    def tick(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        try:
            self.fire_due()
        except Exception:  # noqa: BLE001 - keep pumping
            log.exception("firing due schedules failed")

    def _group(self) -> str:
        import os
        return os.environ[resources.SCHEDULES.env]

    def _get(self, name: str) -> dict | None:
        scheduler = aws.client("scheduler")
        try:
            detail = scheduler.get_schedule(Name=name, GroupName=self._group())
        except scheduler.exceptions.ResourceNotFoundException:
            return self._known.get(name)
        self._known[name] = detail
        return detail

    def fire_due(self) -> list[str]:
        scheduler = aws.client("scheduler")
        now = self.clock()
        fired = []
        token = None
        while True:
            page = scheduler.list_schedules(GroupName=self._group(), **({"NextToken": token} if token else {}))
            for summary in page.get("Schedules", []):
                if summary.get("State") == "DISABLED":
                    continue
                detail = self._get(summary["Name"])
                due = self.due_time(detail, now) if detail else None
                if due is not None and self._fire_once(detail, due):
                    fired.append(summary["Name"])
            token = page.get("NextToken")
            if not token:
                return fired

    @staticmethod
    def due_time(detail: dict, now):
        """The scheduled time this schedule is due for at `now` (UTC), or None."""
        from datetime import datetime, timezone
        from zoneinfo import ZoneInfo
        from chalicelib.domain.campaigns import cron_matches, parse_cron
        expression = detail["ScheduleExpression"]
        zone = ZoneInfo(detail.get("ScheduleExpressionTimezone") or "UTC")
        if expression.startswith("at("):
            wall = datetime.strptime(expression[3:-1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=zone)
            return wall.astimezone(timezone.utc) if wall <= now else None
        if expression.startswith("cron("):
            local = now.astimezone(zone).replace(second=0, microsecond=0)
            if cron_matches(parse_cron(expression), local):
                return local.astimezone(timezone.utc)
        return None                                     # rate(...) is not used by siyu

    def _fire_once(self, detail: dict, due) -> bool:
        key = (detail["Name"], due.isoformat())
        with self._lock:
            if key in self._done:
                return False
            self._done.add(key)
        self._send(detail, due)
        if detail.get("ActionAfterCompletion") == "DELETE" and detail["ScheduleExpression"].startswith("at("):
            self._delete(detail["Name"])
        return True

    def fire(self, name: str, *, times: int = 1) -> int:
        """Force `times` fires of the schedule now, as Scheduler would deliver them (duplicates
        included: Scheduler is at-least-once); the due time is the schedule's own for `at(...)`,
        the current minute for cron. Returns the fires sent."""
        from datetime import datetime, timezone
        detail = self._get(name)
        if detail is None:
            raise KeyError(f"no schedule {name}")
        if detail["ScheduleExpression"].startswith("at("):
            due = self.due_time(detail, datetime(9999, 12, 31, tzinfo=timezone.utc))
        else:
            due = self.clock().astimezone(timezone.utc).replace(second=0, microsecond=0)
        with self._lock:
            self._done.add((name, due.isoformat()))
        for _ in range(times):
            self._send(detail, due)
        if detail.get("ActionAfterCompletion") == "DELETE" and detail["ScheduleExpression"].startswith("at("):
            self._delete(name)
        return times

    def _delete(self, name: str) -> None:
        scheduler = aws.client("scheduler")
        try:
            scheduler.delete_schedule(Name=name, GroupName=self._group())
        except scheduler.exceptions.ResourceNotFoundException:
            pass

    def _send(self, detail: dict, due) -> None:
        target = detail["Target"]
        body = (target.get("Input") or "{}")
        for placeholder, value in (("<aws.scheduler.scheduled-time>", due.strftime("%Y-%m-%dT%H:%M:%SZ")),
                                   ("<aws.scheduler.execution-id>", str(uuid.uuid4())),
                                   ("<aws.scheduler.attempt-number>", "1"),
                                   ("<aws.scheduler.schedule-arn>", detail.get("Arn", ""))):
            body = body.replace(placeholder, value)
        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=target["Arn"].rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body)
        with self._lock:
            self.fired.append((detail["Name"], due.isoformat()))
        log.info("fired schedule %s for %s", detail["Name"], due.isoformat())
