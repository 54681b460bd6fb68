"""Campaign conversion storage: reading which runs touched a member, and the items an order (refund)
adds to its own transaction.

Items, in the campaign's partition (`B#<brand>#CAMP#<campaign>`):
- `CONV#M#<run>#<member>`: the member's attributed orders of the run (ConversionMarker). Every write
  is conditional on the count the order read, so a concurrent order of the member (or a retry that
  already committed) makes the transaction fail and read again: the member is counted converted once.
- `CONV#C#<run>#<group>#<shard>`: the group's counters (orders, gmv_cents, members), CONV_SHARDS
  shards chosen by order (refund) id so concurrent orders rarely hold the same counter item.

Cost of a member order (walk-ins pay nothing more): the member's reach item rides in the order's
existing consistent BatchGetItem (+1 RRU); a member with a mini-program openid adds one Query of their
subscribe-credit items (eventually consistent, 0.5 RRU per 4 KB: a few templates); a member touched by
a campaign in the last 30 days adds one consistent BatchGetItem of those campaigns' definitions and
markers (1 RRU each, at most MAX_CANDIDATES campaigns); each attributed run adds 2 items (4 WCU) to
the order's transaction. A refund of an attributed order adds the counter items (2 WCU each) and,
when it completes the order's refund, one BatchGetItem of the markers and their updates.
"""
from __future__ import annotations

import time
import zlib
from datetime import datetime

from chalicelib.domain import campaigns as campaign_rules
from chalicelib.domain import conversion as rules
from chalicelib.storage.campaign_keys import camp_pk, campaign_key
from chalicelib.storage.ledger import reach_key
from chalicelib.storage.models import Campaign, ConversionCounter, ConversionMarker, Item
from chalicelib.storage.tx import Tx

CONV_SHARDS = 8


def marker_key(brand_id: str, campaign_id: str, run: str, member_id: str) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"CONV#M#{run}#{member_id}"


def counter_key(brand_id: str, campaign_id: str, run: str, group: str, shard: int) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"CONV#C#{run}#{group}#{shard:02d}"


def shard_of(event_id: str) -> int:
    return zlib.crc32(event_id.encode()) % CONV_SHARDS


def _client():
    return Item._get_connection().connection.client


def _table() -> str:
    return Item.Meta.table_name


def _k(key: tuple[str, str]) -> dict:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def read_with_reach(keys: list[tuple[str, str]], brand_id: str, member_id: str) -> tuple[dict, dict[str, str]]:
    """The order's own consistent BatchGetItem (storage.orders.read) with the member's reach item in it:
    (models by key, the reach item's marks {name: text}). Read raw: a mark is a dynamic attribute."""
    reach = reach_key(brand_id, member_id)
    wanted = list(dict.fromkeys(keys + [reach]))
    found: dict = {}
    marks: dict[str, str] = {}
    request = {_table(): {"Keys": [_k(k) for k in wanted], "ConsistentRead": True}}
    for attempt in range(10):
        if attempt:
            time.sleep(0.02 * 2 ** attempt)         # keys DynamoDB left unprocessed (throttled)
        answer = _client().batch_get_item(RequestItems=request)
        for raw in answer.get("Responses", {}).get(_table(), []):
            key = (raw["pk"]["S"], raw["sk"]["S"])
            if key == reach:
                marks.update(_marks(raw))
            else:
                found[key] = Item.from_raw_data(raw)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return found, marks
    raise RuntimeError("DynamoDB kept leaving the order's keys unprocessed")


def _marks(raw: dict) -> dict[str, str]:
    return {name: value["S"] for name, value in raw.items() if name.startswith("R#") and "S" in value}


def credit_marks(brand_id: str, openid: str | None) -> dict[str, str]:
    """Marks on the member's subscribe-credit items (one per template): one eventually consistent Query."""
    if not openid:
        return {}
    marks: dict[str, str] = {}
    kwargs = {"TableName": _table(), "KeyConditionExpression": "pk = :pk",
              "ExpressionAttributeValues": {":pk": {"S": f"B#{brand_id}#CREDIT#{openid}"}}}
    while True:
        answer = _client().query(**kwargs)
        for raw in answer.get("Items", []):
            marks.update(_marks(raw))        # a run marks one item per member: names never clash
        if "LastEvaluatedKey" not in answer:
            return marks
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def attribute(brand_id: str, member_id: str, marks: dict[str, str], occurred_at: datetime,
              amount_cents: int) -> list[rules.Change]:
    """The runs an order of `member_id` at `occurred_at` counts for, with what it adds to each: one
    consistent BatchGetItem of the candidate campaigns' definitions and the member's markers."""
    candidates = rules.candidates(rules.touches(marks), occurred_at)
    if not candidates:
        return []
    keys = [campaign_key(brand_id, t.campaign_id) for t in candidates]
    keys += [marker_key(brand_id, t.campaign_id, t.run, member_id) for t in candidates]
    found = {(i.pk, i.sk): i for i in Item.batch_get(keys, consistent_read=True)}
    windows = {}
    for t in candidates:
        item = found.get(campaign_key(brand_id, t.campaign_id))
        if isinstance(item, Campaign):
            windows[t.campaign_id] = campaign_rules.Spec.from_json(item.spec).attribution_days
    changes = []
    for t in rules.attributed(candidates, windows, occurred_at):
        marker = found.get(marker_key(brand_id, t.campaign_id, t.run, member_id))
        changes.append(rules.on_order(t, amount_cents, int(marker.orders or 0) if marker is not None else 0))
    return changes


def roll_back(brand_id: str, member_id: str | None, conversions: list[str] | None, amount_cents: int,
              full: bool) -> list[rules.Change]:
    """What a refund of an attributed order takes back; a refund completing the order's reads the
    member's markers (one consistent BatchGetItem) to know whether it was their last order."""
    runs = rules.decode(conversions)
    if not runs or not member_id:
        return []
    markers: dict = {}
    if full:
        keys = [marker_key(brand_id, c, run, member_id) for c, run, _ in runs]
        markers = {(i.pk, i.sk): i for i in Item.batch_get(keys, consistent_read=True)}
    out = []
    for campaign_id, run, group in runs:
        marker = markers.get(marker_key(brand_id, campaign_id, run, member_id))
        out.append(rules.on_refund(campaign_id, run, group, amount_cents, full,
                                   int(marker.orders or 0) if marker is not None else 0))
    return out


class Refused(Exception):
    """A marker's count changed since it was read (a concurrent order or refund of the member): read again."""


def extender(brand_id: str, member_id: str | None, changes: list[rules.Change], event_id: str):
    """The `extend` hook of storage.orders for the conversion items; its refusals map to `Refused`."""
    def extend(tx: Tx) -> dict:
        refusals = {}
        shard = shard_of(event_id)
        for c in changes:
            if c.orders and member_id and c.marker_orders + c.orders >= 0:
                pk, sk = marker_key(brand_id, c.campaign_id, c.run, member_id)
                read = (ConversionMarker.pk.does_not_exist() | (ConversionMarker.orders == 0)
                        if c.marker_orders == 0 else ConversionMarker.orders == c.marker_orders)
                label = f"conversion:{c.campaign_id}:{c.run}"
                tx.update(label, ConversionMarker(pk, sk),
                          [ConversionMarker.kind.set(ConversionMarker), ConversionMarker.group.set(c.group),
                           ConversionMarker.orders.set(c.marker_orders + c.orders)], condition=read)
                refusals[label] = Refused()
            pk, sk = counter_key(brand_id, c.campaign_id, c.run, c.group, shard)
            actions = [ConversionCounter.kind.set(ConversionCounter), ConversionCounter.gmv_cents.add(c.gmv_cents)]
            if c.orders:
                actions.append(ConversionCounter.orders.add(c.orders))
            if c.members:
                actions.append(ConversionCounter.members.add(c.members))
            tx.update(f"conversion-count:{c.campaign_id}:{c.run}", ConversionCounter(pk, sk), actions)
        return refusals
    return extend


def chain(*extends):
    """Several `extend` hooks as one (the order's transaction takes one)."""
    def extend(tx: Tx) -> dict:
        refusals: dict = {}
        for e in extends:
            if e is not None:
                refusals.update(e(tx) or {})
        return refusals
    return extend


def totals(brand_id: str, campaign_id: str, run: str) -> dict[str, dict[str, int]]:
    """The run's conversion counters per group, summed over shards: one Query."""
    out = rules.no_totals()
    prefix = f"CONV#C#{run}#"
    for item in ConversionCounter.query(camp_pk(brand_id, campaign_id), ConversionCounter.sk.startswith(prefix),
                                        consistent_read=True):
        group = item.sk[len(prefix):].rsplit("#", 1)[0]
        if group in out:
            out[group]["members"] += int(item.members or 0)
            out[group]["orders"] += int(item.orders or 0)
            out[group]["gmv_cents"] += int(item.gmv_cents or 0)
    return out
