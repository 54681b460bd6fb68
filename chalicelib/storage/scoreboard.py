"""Scoreboard counters: day-keyed items added to in the transaction of the event that moves them.

Keys (models.ScoreCounter): pk `B#<brand>#SCORE#<dimension>`, sk `<brand-local day>#<shard>#<key>`;
a coupon template's own rows are the dimensions `tpl-day:<template>` and `tpl-store:<template>`.
A stats read of any range and dimension is one Query on one partition key (sk between the first
day and the last), paged at 1 MB: 366 days x 20 stores x the shards written is a few pages, and the
cost grows with days x keys, never with members or orders.

Hot items: every order of a brand lands on the `day` dimension's item of its day, and a busy store,
guide or channel (or the keyless online orders) on one item too. DynamoDB takes about 1,000 writes/s
per item, so each event picks one of SHARDS items by a hash of its own id (order, refund, member,
coupon code): 4 x 1,000 = 4,000 orders/s per key and day, far above a brand's till traffic. A
flash-sale claim uses the claim's stock shard instead (the template's `shards`, sized for its
`expected_claims_per_second`), so the issued counter spreads exactly as wide as the stock does.
A read sums the shards.

Hot partitions: a flash sale issues up to tens of thousands of coupons in its first second, more than
one partition takes before DynamoDB splits it for heat (minutes). Its `day` counters therefore live
under FLASH_PARTITIONS partition keys of their own (`…#SCORE#day#<nn>`, by stock shard), as its stock
shards do, and a `by=day` read queries those too: 1 + FLASH_PARTITIONS Queries, whatever the size.
"""
from __future__ import annotations

import zlib

from chalicelib.domain.scoreboard import METRICS, Delta
from chalicelib.storage.models import ScoreCounter
from chalicelib.storage.tx import Tx

SHARDS = 4
FLASH_PARTITIONS = 32       # 10,000 coupons issued in one second -> ~310 writes/s per partition


def shard_of(value: str) -> int:
    return zlib.crc32(value.encode()) % SHARDS


def counter_key(brand_id: str, dimension: str, day: str, key: str | None, shard: int,
                flash: bool = False) -> tuple[str, str]:
    pk = f"B#{brand_id}#SCORE#{dimension}"
    if flash:
        pk += f"#{shard % FLASH_PARTITIONS:02d}"
    return pk, f"{day}#{shard:03d}#{key or ''}"


def add(tx: Tx, brand_id: str, deltas: list[Delta], shard: int, flash: bool = False) -> None:
    """ADD each delta to its counter item in `tx` (no condition: the event's own items carry them)."""
    for dimension, day, key, metrics in deltas:
        actions = [ScoreCounter.kind.set(ScoreCounter), ScoreCounter.day.set(day)]
        if key is not None:
            actions.append(ScoreCounter.score_key.set(key))
        actions += [getattr(ScoreCounter, name).add(value) for name, value in sorted(metrics.items())]
        tx.update("score", ScoreCounter(*counter_key(brand_id, dimension, day, key, shard, flash)), actions)


def extender(brand_id: str, deltas: list[Delta], shard: int, *, flash: bool = False):
    """The `extend` hook of storage.orders (and coupons): the counters join the event's transaction.
    `flash`: a flash-sale claim's counters, spread over partitions of their own (see above)."""
    def extend(tx: Tx) -> dict:
        add(tx, brand_id, deltas, shard, flash)
        return {}
    return extend


def read(brand_id: str, dimension: str, first_day: str, last_day: str) -> list[tuple[str, str | None, dict]]:
    """(day, key, metrics) of every counter item of `dimension` from `first_day` to `last_day`."""
    pk, _ = counter_key(brand_id, dimension, first_day, None, 0)
    partitions = [pk] + ([f"{pk}#{n:02d}" for n in range(FLASH_PARTITIONS)] if dimension == "day" else [])
    found = []
    for partition in partitions:
        for item in ScoreCounter.query(partition, ScoreCounter.sk.between(f"{first_day}#", f"{last_day}#~")):
            metrics = {name: int(getattr(item, name)) for name in METRICS + ("order_gmv_cents",)
                       if getattr(item, name) is not None}
            found.append((item.day, item.score_key, metrics))
    return found
