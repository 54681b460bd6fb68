"""The AWS resources siyu runs on, described once.

`infra/` deploys exactly these and the local stack (`siyu_dev.stack`) creates exactly these on the
emulator, so a table, queue or wiring cannot exist in one place and be missing in the other.
Runtime code finds each resource through the environment variable named here; nothing else in
the code names a table, a queue or an ARN.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Index:
    name: str
    pk: str
    sk: str


@dataclass(frozen=True)
class Table:
    key: str            # short name, also the local physical name suffix
    env: str            # environment variable carrying the physical table name
    pk: str = "pk"
    sk: str = "sk"
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    stream: str | None = None  # StreamViewType, or None for no stream


@dataclass(frozen=True)
class Queue:
    key: str
    env: str                     # environment variable carrying the queue URL
    handler: str                 # "module.function" consuming it
    visibility_timeout: int      # seconds; >= 6x the consumer's timeout, as AWS advises
    max_receive_count: int       # then the message goes to the queue's DLQ
    batch_size: int = 10
    max_batching_window: int = 0
    consumer_timeout: int = 10   # Lambda timeout of the consumer, seconds
    consumer_memory: int = 256


@dataclass(frozen=True)
class Stream:
    """A DynamoDB stream consumer, with the Lambda event filter that selects its records."""
    key: str
    table: str
    handler: str
    # Lambda event filters: a record is delivered when it matches any of them (at most 5 per mapping)
    filter_patterns: tuple[dict, ...] = ()
    batch_size: int = 100
    max_retry_attempts: int = 10
    consumer_timeout: int = 30
    consumer_memory: int = 256


@dataclass(frozen=True)
class Bus:
    env: str = "SIYU_EVENT_BUS"
    source: str = "siyu"


@dataclass(frozen=True)
class ScheduleGroup:
    env: str = "SIYU_SCHEDULE_GROUP"
    role_env: str = "SIYU_SCHEDULER_ROLE_ARN"
    target_queue: str = "plan"   # schedules deliver to this queue


MAIN = Table(
    key="main",
    env="SIYU_TABLE",
    indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),),
    ttl_attribute="expires_at",
    stream="NEW_IMAGE",
)

TABLES: tuple[Table, ...] = (MAIN,)

QUEUES: tuple[Queue, ...] = (
    # Slow follow-ups of a callback: welcome messages, unionid lookups, welcome coupons.
    Queue(key="followups", env="SIYU_FOLLOWUPS_QUEUE_URL", handler="handlers.followups.handler",
          visibility_timeout=60, max_receive_count=5, consumer_timeout=10),
    # Campaign fires (EventBridge Scheduler's target) and planner shards: one message pages one
    # audience shard, checkpointing as it goes, and re-queues itself before its timeout.
    # 1,769 MB is one full vCPU: a planner is CPU-bound (bench.planner measured ~210 µs of CPU a member
    # read on a loaded 2-core machine), so at 256 MB (0.14 vCPU) 16 shard planners read ~10k members/s:
    # 10M recipients at 10% eligibility took ~2.6 h; at one vCPU ~76k members/s, ~22 min, still under
    # DynamoDB's read ceiling of an audience shard's partition (~55k members/s each).
    Queue(key="plan", env="SIYU_PLAN_QUEUE_URL", handler="handlers.plan.handler",
          visibility_timeout=720, max_receive_count=5, batch_size=1, consumer_timeout=120, consumer_memory=1769),
    # Campaign chunks (hundreds of recipients each) for the sender; the chunks of a batch run side
    # by side over one bounded pool of WeChat calls. A chunk that keeps failing lands in the DLQ as
    # it was queued (brand, campaign, run, recipients): redriving it resumes it, the ledger skips
    # whoever was already served.
    Queue(key="send", env="SIYU_SEND_QUEUE_URL", handler="handlers.send.handler",
          visibility_timeout=720, max_receive_count=5, batch_size=4, consumer_timeout=120, consumer_memory=512),
    # Head-office tasks to guides (services.guide_tasks): their schedules' fires, one message per guide
    # creating its WeCom group messages through the chunk ledger, and the delayed polls until due.
    Queue(key="guidetasks", env="SIYU_GUIDETASKS_QUEUE_URL", handler="handlers.guide_tasks.handler",
          visibility_timeout=720, max_receive_count=5, batch_size=1, consumer_timeout=120),
    # Package-code batches (issue 11 §2): one message mints a batch from its checkpoint, page by page,
    # and re-queues itself before its timeout; a redelivery resumes at the checkpoint.
    Queue(key="mint", env="SIYU_MINT_QUEUE_URL", handler="handlers.package_codes.handler",
          visibility_timeout=720, max_receive_count=5, batch_size=1, consumer_timeout=120),
)

STREAMS: tuple[Stream, ...] = (
    # Transactional outbox: items written with kind=outbox in the same transaction as the change
    # they announce are published to the bus (domain events) or the follow-up queue (tasks). A coupon
    # issued one at a time announces itself: its own INSERT, carrying an event id, is its
    # `coupon.issued` (storage.coupons.issue), so its transaction writes no outbox item.
    Stream(key="outbox", table="main", handler="handlers.outbox.handler",
           filter_patterns=({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["outbox"]}}}},
                            {"eventName": ["INSERT"], "dynamodb": {"NewImage": {
                                "kind": {"S": ["coupon"]}, "event_id": {"S": [{"prefix": "ev_"}]}}}})),
)

BUS = Bus()
SCHEDULES = ScheduleGroup()
# Queues other than SCHEDULES.target_queue that schedules of the group deliver to (the Scheduler role
# may send to them): head-office guide tasks fire into their own queue.
SCHEDULE_TARGETS = ("guidetasks",)

# The plan queue's DLQ ARN, for the schedules' DeadLetterConfig (the Scheduler role must be allowed to
# send to it). Unset, schedules still retry per their RetryPolicy but drop what exhausts it.
PLAN_DLQ_ARN_ENV = "SIYU_PLAN_DLQ_ARN"

# Per-brand WeChat secrets live in SSM SecureString parameters below this prefix
# (`{prefix}/{brand_id}`); the stage is part of the prefix so stages never share secrets.
SECRETS_PREFIX_ENV = "SIYU_SECRETS_PREFIX"
# WeChat API base URLs (Official Account / mini-program, and WeCom); the local stack points both at
# the simulator. Defaults are the public endpoints.
WECHAT_BASE_URL_ENV = "SIYU_WECHAT_BASE_URL"
WECOM_BASE_URL_ENV = "SIYU_WECOM_BASE_URL"
# WeChat calls a sender container keeps in flight (its thread pool, and the HTTP pool sized to match).
SEND_CONCURRENCY_ENV = "SIYU_SEND_CONCURRENCY"
SEND_CONCURRENCY_DEFAULT = 32
WECHAT_BASE_URL_DEFAULT = "https://api.weixin.qq.com"
# Printable codes (issue 11): the bucket their PNGs are kept in (created once, served from there), and
# where an OA ticket's image is fetched (showqrcode lives on mp.weixin.qq.com, not the API host).
CODES_BUCKET_ENV = "SIYU_CODES_BUCKET"
SHOWQRCODE_BASE_URL_ENV = "SIYU_SHOWQRCODE_BASE_URL"
SHOWQRCODE_BASE_URL_DEFAULT = "https://mp.weixin.qq.com"
WECOM_BASE_URL_DEFAULT = "https://qyapi.weixin.qq.com"


def send_concurrency() -> int:
    return int(os.environ.get(SEND_CONCURRENCY_ENV) or SEND_CONCURRENCY_DEFAULT)


def queue(key: str) -> Queue:
    return next(q for q in QUEUES if q.key == key)


def table(key: str) -> Table:
    return next(t for t in TABLES if t.key == key)
