"""The delivery ledger: whether one member is still owed one run's message, at about 1 WRU each.

Design (issue 10, "B"): a recipient is decided by ONE conditional UpdateItem on one item per member,
and outcomes are written per group, never per recipient.

- The *claim item* of a recipient is the member's subscribe-credit item (openid, template) when
  the medium consumes a credit, else the member's reach item (models.Reach). A run's decision on
  the member is the attribute `R#<campaign>#<run>` of that item (a "mark"). Claiming sets it with
  `attribute_not_exists` and, in the same UpdateItem, takes the credit (`credits >= 1`) and, when
  the claim item is the reach item, counts the day against the frequency cap (`F#<day> < cap`):
  one write of a small item, 1 WRU, atomic. A credit medium with a frequency cap needs the reach
  item too (the cap is per member, the credit per template): that claim is a two-item transaction.
- A mark names the *group* whose outcome item will hold the recipient's outcome. The claimant
  writes each group's outcomes as one DeliveryGroup item in one transaction with the run's stats
  tallies (so stats never count twice), and does not touch the marks again.
- A later attempt that finds a mark whose lease (the claimant's deadline) is over reads the
  group's outcome items; if the recipient is not there the claimant died: it closes the mark
  (`f`, conditional on the exact mark it read) in one transaction with that recipient's outcome
  and tally (a claim: failed `outcome_unknown`, never resent; a skip: its reason).
- Releasing a claim for a later attempt (transient WeChat failures) rewrites the mark to `r`
  (credit kept); claiming again replaces that exact `r` mark.

Mark values are `<state>|<group>|<lease>|<at>|<reason>`: state c (claimed), k (skip decided),
r (released), f (closed by a later attempt; its outcome is in <group>), h (held out: marked
with the same credit and cap conditions as a claim, nothing taken; recorded `held_out`).
Marks older than MARK_RETENTION are pruned by the next claim on the item, so it stays small.
"""
from __future__ import annotations

import json
import random
import secrets
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from chalicelib.domain import campaigns as rules
from chalicelib.storage.campaign_keys import camp_pk, credit_key
from chalicelib.storage.models import DeliveryGroup, Item, Tally
from chalicelib.storage.tx import Tx, refused, retrying

LEDGER_SHARDS = 64          # partitions of a run's delivery groups (spread by group id)
TALLY_SHARDS = 64           # each group's transaction adds to one random shard of each outcome's tally
MARK_RETENTION = timedelta(days=31)     # longer than any attribution window (30 days)
DAY_RETENTION = timedelta(days=3)       # frequency-cap day counters
FINAL_MARKS = ("f",)        # c, k and h wait for their group's outcome item (or a close after the lease)


def reach_key(brand_id: str, member_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#REACH#{member_id}", "REACH"


def mark_name(campaign_id: str, run: str) -> str:
    return f"R#{campaign_id}#{run}"


def day_name(day: str) -> str:
    return f"F#{day}"


def new_group() -> str:
    return secrets.token_hex(8)


def group_shard(group: str) -> int:
    return zlib.crc32(group.encode()) % LEDGER_SHARDS


@dataclass(frozen=True)
class Mark:
    state: str
    group: str
    lease: float = 0.0
    at: int = 0
    reason: str | None = None

    def text(self) -> str:
        return f"{self.state}|{self.group}|{int(self.lease)}|{self.at}|{self.reason or ''}"

    @classmethod
    def parse(cls, text: str) -> "Mark":
        state, group, lease, at, reason = (text.split("|") + ["", "", "", ""])[:5]
        return cls(state, group, float(lease or 0), int(at or 0), reason or None)


@dataclass
class Seen:
    """What a read of a recipient's claim item (and reach item, for the cap) said."""
    mark: str | None = None        # the raw mark of this run
    credits: int = 0
    day_count: int = 0
    stale: tuple[str, ...] = ()    # attribute names old enough to prune


@dataclass(frozen=True)
class Claim:
    member_id: str
    item: tuple[str, str]                       # the claim item's key
    mark: Mark                                  # c|group|lease
    credit: bool = False                        # take one credit on the claim item
    frequency: tuple[str, int] | None = None    # (day, cap) to count against
    credit_item: tuple[str, str] | None = None  # the credit item, when the cap put the mark on the reach item
    replaces: str | None = None                 # the released mark this claim replaces (credit kept)
    prune: tuple[str, ...] = ()
    item_attrs: dict = field(default_factory=dict, compare=False)   # attributes set if absent
    hold: bool = False                          # held out: the same checks (credit, cap), nothing taken


@dataclass(frozen=True)
class Final:
    member_id: str
    state: str                     # sent | skipped | failed | held_out | retry (released for a later attempt)
    reason: str | None = None
    group: str | None = None       # the group whose outcome item holds it
    errcode: int | None = None
    coupon: str | None = None


def _s(text: str) -> dict:
    return {"S": text}


def _n(value: float | int) -> dict:
    return {"N": str(int(value))}


def _key(key: tuple[str, str]) -> dict:
    return {"pk": _s(key[0]), "sk": _s(key[1])}


def _client():
    return Item._get_connection().connection.client


def _table() -> str:
    return Item.Meta.table_name


class Ledger:
    """One run's delivery ledger."""

    def __init__(self, brand_id: str, campaign_id: str, run_id: str):
        self.brand_id, self.campaign_id, self.run_id = brand_id, campaign_id, run_id
        self.mark_attr = mark_name(campaign_id, run_id)

    # -- where a recipient's decision lives --------------------------------------------------------
    def claim_item(self, member_id: str, openid: str | None, template: str | None,
                   capped: bool = False) -> tuple[str, str]:
        """The credit item for a credit-consuming medium, else (and whenever a frequency cap is set:
        the cap is per member, a credit per template) the member's reach item."""
        if template and openid and not capped:
            return credit_key(self.brand_id, openid, template)
        return reach_key(self.brand_id, member_id)

    def item_attrs(self, key: tuple[str, str], openid: str | None, template: str | None) -> dict:
        """Attributes an item first created by a mark gets (its kind, like any put)."""
        if key[0].startswith(f"B#{self.brand_id}#CREDIT#"):
            return {"kind": "subscribe_credit", "brand_id": self.brand_id, "openid": openid, "template_id": template}
        return {"kind": "reach"}

    # -- reads ------------------------------------------------------------------------------------
    def prefetch(self, keys: dict[str, tuple[str, str]], credit_keys: dict[str, tuple[str, str]], day: str | None,
                 now: float) -> dict[str, Seen]:
        """Claim items (and credit items, when a cap puts the mark on the reach item) of a block, in
        BatchGetItems of 100 keys. Eventually consistent: a guide for batching, never a decision
        (the conditional writes decide)."""
        wanted = {k for k in keys.values()} | {k for k in credit_keys.values()}
        items = self._batch_get(sorted(wanted))
        out: dict[str, Seen] = {}
        horizon = now - MARK_RETENTION.total_seconds()
        for member_id, key in keys.items():
            item = items.get(key, {})
            seen = Seen()
            if self.mark_attr in item:
                seen.mark = item[self.mark_attr]["S"]
            credit_item = items.get(credit_keys[member_id], {}) if member_id in credit_keys else item
            seen.credits = int(credit_item.get("credits", {}).get("N", "0"))
            seen.stale = tuple(name for name, value in item.items() if _stale(name, value, horizon, day))
            if day is not None:
                seen.day_count = int(item.get(day_name(day), {}).get("N", "0"))
            out[member_id] = seen
        return out

    def _batch_get(self, keys: list[tuple[str, str]], consistent: bool = False) -> dict[tuple[str, str], dict]:
        out: dict[tuple[str, str], dict] = {}
        for i in range(0, len(keys), 100):
            request = {_table(): {"Keys": [_key(k) for k in keys[i:i + 100]], "ConsistentRead": consistent}}
            for _attempt in range(8):
                answer = _client().batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(_table(), []):
                    out[(raw["pk"]["S"], raw["sk"]["S"])] = raw
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2 ** _attempt)
        return out

    def read_mark(self, key: tuple[str, str]) -> tuple[str | None, dict]:
        raw = _client().get_item(TableName=_table(), Key=_key(key), ConsistentRead=True).get("Item") or {}
        return (raw[self.mark_attr]["S"] if self.mark_attr in raw else None), raw

    def group_outcomes(self, group: str) -> dict[str, list]:
        """Every outcome recorded in a group's items (consistent)."""
        out: dict[str, list] = {}
        for item in DeliveryGroup.query(self._shard_pk(group_shard(group)), DeliveryGroup.sk.startswith(f"G#{group}#"),
                                        consistent_read=True):
            out.update(json.loads(item.entries))
        return out

    # -- the per-recipient write ------------------------------------------------------------------
    def claim(self, c: Claim) -> str:
        """One recipient: claimed | marked (this run decided on it already) | no_credit | frequency_capped
        | skip:no_credit (marked, but the credit on the separate credit item was gone: now a skip)."""
        names = {"#m": self.mark_attr}
        values = {":m": _s(c.mark.text())}
        sets = ["#m = :m"]
        conds = ["#m = :old" if c.replaces else "attribute_not_exists(#m)"]
        if c.replaces:
            values[":old"] = _s(c.replaces)
        # An item the condition needs to exist (it holds the credit taken, or the mark replaced) was
        # made by a write that set these attributes (a grant, an earlier mark): `if_not_exists` on it
        # changes nothing, so they go only with a claim that may create its item. (They were most of
        # a credit claim's update expression: 4 of 6 actions, parsed and applied on every send.)
        may_create = not c.replaces and not (c.credit and c.credit_item is None)
        for i, (attr, value) in enumerate(sorted((c.item_attrs or {}).items()) if may_create else ()):
            if value is None:
                continue
            names[f"#a{i}"] = attr
            values[f":a{i}"] = _s(value)
            sets.append(f"#a{i} = if_not_exists(#a{i}, :a{i})")
        adds = []
        take = not c.hold
        if c.credit and not c.replaces and c.credit_item is None:
            names["#c"] = "credits"
            values[":one"] = _n(1)
            conds.append("#c >= :one")
            if take:
                adds.append("#c :minus")
                values[":minus"] = _n(-1)
        cap_here = c.frequency is not None and not c.replaces
        if cap_here:
            day, cap = c.frequency
            names["#f"] = day_name(day)
            values[":cap"] = _n(cap)
            conds.append("(attribute_not_exists(#f) OR #f < :cap)")
            if take:
                values[":inc"] = _n(1)
                adds.append("#f :inc")
        prune = [name for name in c.prune if name != self.mark_attr and (not cap_here or name != names.get("#f"))]
        for i, name in enumerate(prune):
            names[f"#p{i}"] = name
        expression = "SET " + ", ".join(sets)
        if adds:
            expression += " ADD " + ", ".join(adds)
        if prune:
            expression += " REMOVE " + ", ".join(f"#p{i}" for i in range(len(prune)))
        update = {"TableName": _table(), "Key": _key(c.item), "UpdateExpression": expression,
                  "ConditionExpression": " AND ".join(conds), "ExpressionAttributeNames": names,
                  "ExpressionAttributeValues": values}
        try:
            _client().update_item(**update)
        except ClientError as err:
            if not refused(err):
                raise
            return self._why_refused(c)
        if c.credit and c.credit_item is not None and not c.replaces and not c.hold:
            return self._take_credit(c)
        return "claimed"

    def _take_credit(self, c: Claim) -> str:
        """The mark (and cap count) are on the reach item; the credit is taken from the credit item
        right after: two 1-WRU writes instead of a 4-WRU transaction. A container dying between
        them leaves a claim nobody sent with its credit kept: the next attempt closes it as
        `outcome_unknown` (never sent, never counted twice). No credit left: the mark becomes a
        skip and the cap count is given back, only while it is still our claim."""
        try:
            _client().update_item(TableName=_table(), Key=_key(c.credit_item), UpdateExpression="ADD #c :minus",
                                  ConditionExpression="#c >= :one", ExpressionAttributeNames={"#c": "credits"},
                                  ExpressionAttributeValues={":minus": _n(-1), ":one": _n(1)})
            return "claimed"
        except ClientError as err:
            if not refused(err):
                raise
        skip = Mark("k", c.mark.group, c.mark.lease, c.mark.at, "no_credit")
        names, values = {"#m": self.mark_attr}, {":k": _s(skip.text()), ":c": _s(c.mark.text())}
        expression = "SET #m = :k"
        if c.frequency is not None:
            names["#f"] = day_name(c.frequency[0])
            values[":minus"] = _n(-1)
            expression += " ADD #f :minus"
        try:
            _client().update_item(TableName=_table(), Key=_key(c.item), UpdateExpression=expression,
                                  ConditionExpression="#m = :c", ExpressionAttributeNames=names,
                                  ExpressionAttributeValues=values)
        except ClientError as err:
            if not refused(err):
                raise
            return "marked"
        return "skip:no_credit"

    def _why_refused(self, c: Claim) -> str:
        mark, raw = self.read_mark(c.item)
        if c.replaces:
            return "marked"                       # the released mark changed: read it again
        if mark is not None:
            return "marked"
        if c.credit and c.credit_item is None and int(raw.get("credits", {}).get("N", "0")) < 1:
            return "no_credit"
        return "frequency_capped"

    def release(self, key: tuple[str, str], claimed: str, released: Mark) -> bool:
        """Give a claim back for a later attempt (credit kept): only the exact claim we hold."""
        try:
            _client().update_item(TableName=_table(), Key=_key(key), UpdateExpression="SET #m = :r",
                                  ConditionExpression="#m = :c", ExpressionAttributeNames={"#m": self.mark_attr},
                                  ExpressionAttributeValues={":r": _s(released.text()), ":c": _s(claimed)})
            return True
        except ClientError as err:
            if refused(err):
                return False
            raise

    # -- outcomes ---------------------------------------------------------------------------------
    def record(self, group: str, part: int, finals: list[Final], now: datetime, extend=None) -> bool:
        """One group's outcomes (one item) and the tallies they add to, in one transaction. False if
        that part was written already (nothing written again). `extend(tx, key)` adds what else the
        outcomes move (a campaign coupon's counters and event: services.campaign_coupons), `key`
        being the outcome item's."""
        counts = _counts(finals)
        entries = json.dumps({f.member_id: [f.state, f.reason, f.errcode, f.coupon] for f in finals},
                             separators=(",", ":"))

        def build():
            tx = Tx()
            key = (self._shard_pk(group_shard(group)), f"G#{group}#{part}")
            tx.save("group", DeliveryGroup(*key, entries=entries, at=now.isoformat()),
                    DeliveryGroup.pk.does_not_exist())
            self._add_tallies(tx, counts)
            if extend is not None:
                extend(tx, key)
            return tx
        return not retrying(build)

    def close(self, key: tuple[str, str], seen: str, final: Final, now: datetime, extend=None) -> bool:
        """A claimant died before recording `final.member_id`: close its mark (only the exact mark
        read) with that outcome, in one transaction with the outcome item and its tally (and what
        `extend(tx, key)` adds, as in record)."""
        group = new_group()
        closed = Mark("f", group, 0, int(now.timestamp()), final.reason)
        entries = json.dumps({final.member_id: [final.state, final.reason, final.errcode, final.coupon]})
        for attempt in range(6):
            items = [{"Update": {"TableName": _table(), "Key": _key(key), "UpdateExpression": "SET #m = :f",
                                 "ConditionExpression": "#m = :seen", "ExpressionAttributeNames": {"#m": self.mark_attr},
                                 "ExpressionAttributeValues": {":f": _s(closed.text()), ":seen": _s(seen)}}},
                     {"Put": {"TableName": _table(), "ConditionExpression": "attribute_not_exists(pk)",
                              "Item": {**_key((self._shard_pk(group_shard(group)), f"G#{group}#0")),
                                       "kind": _s("delivery_group"), "entries": _s(entries), "at": _s(now.isoformat())}}}]
            shard = random.randrange(TALLY_SHARDS)
            for outcome, n in _counts([final]).items():
                items.append({"Update": {"TableName": _table(),
                                         "Key": _key((camp_pk(self.brand_id, self.campaign_id),
                                                      f"STATS#{self.run_id}#{outcome}#{shard:02d}")),
                                         "UpdateExpression": "SET #k = :k ADD #n :n",
                                         "ExpressionAttributeNames": {"#k": "kind", "#n": "n"},
                                         "ExpressionAttributeValues": {":k": _s("tally"), ":n": _n(n)}}})
            if extend is not None:
                more = Tx()
                extend(more, (self._shard_pk(group_shard(group)), f"G#{group}#0"))
                items += more.raw_items()
            try:
                _client().transact_write_items(TransactItems=items)
                return True
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                codes = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in codes:
                    return False              # another attempt closed it first
                time.sleep(random.uniform(0.01, 0.05) * 2 ** attempt)
        raise RuntimeError("closing a claim kept conflicting")

    def _add_tallies(self, tx: Tx, counts: dict[str, int]) -> None:
        shard = random.randrange(TALLY_SHARDS)
        for outcome, n in counts.items():
            tx.update(f"tally:{outcome}",
                      Tally(camp_pk(self.brand_id, self.campaign_id), f"STATS#{self.run_id}#{outcome}#{shard:02d}"),
                      [Tally.kind.set(Tally), Tally.n.add(n)])

    # -- the deliveries API -----------------------------------------------------------------------
    def _shard_pk(self, shard: int) -> str:
        return f"B#{self.brand_id}#DLV#{self.campaign_id}#{self.run_id}#{shard:02d}"

    def valid_cursor(self, cursor: object) -> bool:
        """Whether `cursor` is one `entries` handed out for this ledger (a caller's text, so checked)."""
        if not isinstance(cursor, dict) or set(cursor) != {"shard", "key", "skip"}:
            return False
        shard, key, skip = cursor["shard"], cursor["key"], cursor["skip"]
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < LEDGER_SHARDS:
            return False
        if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= 10_000:
            return False
        return key is None or (isinstance(key, dict) and set(key) == {"pk", "sk"}
                               and key["pk"] == {"S": self._shard_pk(shard)}
                               and isinstance(key["sk"], dict) and set(key["sk"]) == {"S"}
                               and isinstance(key["sk"]["S"], str) and _group_sk(key["sk"]["S"]))

    def entries(self, *, state: str | None, cursor: dict | None, limit: int) -> tuple[list[dict], dict | None]:
        """A page of the run's outcomes (group by group, shard by shard), optionally only in `state`.
        The cursor names the last group item read before the page's first, and how many of its
        successor's entries were already handed out."""
        shard = int((cursor or {}).get("shard", 0))
        last_key = (cursor or {}).get("key")
        skip = int((cursor or {}).get("skip", 0))
        out: list[dict] = []
        while shard < LEDGER_SHARDS:
            results = DeliveryGroup.query(self._shard_pk(shard), DeliveryGroup.sk.startswith("G#"),
                                          last_evaluated_key=last_key, page_size=25)
            for item in results:
                rows = [{"member_id": m, "state": e[0], "reason": e[1], "errcode": e[2], "at": item.at, "coupon": e[3]}
                        for m, e in sorted(json.loads(item.entries).items()) if state is None or e[0] == state]
                take = rows[skip:skip + limit - len(out)]
                out.extend(take)
                if skip + len(take) < len(rows):             # the page is full inside this item
                    return out, {"shard": shard, "key": last_key, "skip": skip + len(take)}
                skip = 0
                last_key = {"pk": {"S": item.pk}, "sk": {"S": item.sk}}
                if len(out) >= limit:
                    return out, {"shard": shard, "key": last_key, "skip": 0}
            shard, last_key = shard + 1, None
        return out, None


def _group_sk(sk: str) -> bool:
    parts = sk.split("#")
    return (len(parts) == 3 and parts[0] == "G" and len(parts[1]) == 16
            and all(ch in "0123456789abcdef" for ch in parts[1]) and parts[2].isascii() and parts[2].isdigit()
            and len(parts[2]) <= 6)


def _stale(name: str, value: dict, horizon: float, today: str | None) -> bool:
    """A mark older than MARK_RETENTION, or a frequency day other than today's (days are kept
    DAY_RETENTION by the clock of whoever claims next)."""
    if name.startswith("R#") and "S" in value:
        mark = Mark.parse(value["S"])
        return 0 < mark.at < horizon
    if name.startswith("F#") and today is not None:
        return name[2:] < (datetime.fromisoformat(today) - DAY_RETENTION).strftime("%Y-%m-%d")
    return False


def _counts(finals: list[Final]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in finals:
        if f.state == "retry":
            continue
        key = "held_out" if f.state == "held_out" else rules.outcome_key(
            f.state, f.reason)
        counts[key] = counts.get(key, 0) + 1
    return counts
