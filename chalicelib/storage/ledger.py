"""The delivery ledger: whether one member is still owed one run's message.

Claiming a recipient (ledger entry + credit + frequency count) and finalizing a group of recipients
(ledger entries + the stats tallies they add to) are one TransactWriteItems each; a retried write
refused by its condition changes nothing, so no count is ever added twice.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib import ids
from chalicelib.domain import campaigns as rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.storage.models import Delivery, FrequencyCount, Item, SubscribeCredit, Tally
from chalicelib.storage.tx import Tx, retrying
from chalicelib.storage.campaign_keys import (FREQUENCY_RETENTION, _kind, camp_pk, credit_key, frequency_key,
                                             ledger_key)

TALLY_SHARDS = 8            # finalizing groups write one tally item per outcome; spread over this many


# ---- the delivery ledger ---------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    member_id: str
    token: str                     # this attempt
    lease_until: float
    reclaim: bool                  # the entry exists in state `retry` (credit and cap already taken)
    credit: tuple[str, str] | None = None     # (openid, template) to consume a credit from
    frequency: tuple[str, int] | None = None  # (day, cap) to count against


@dataclass(frozen=True)
class Final:
    member_id: str
    state: str                     # sent | skipped | failed | retry (released for a later attempt)
    reason: str | None = None
    token: str | None = None       # the claim it closes; None: an entry written final without a claim
    errcode: int | None = None
    coupon: str | None = None


class Ledger:
    """One run's delivery ledger."""

    def __init__(self, brand_id: str, campaign_id: str, fire: str):
        self.brand_id, self.campaign_id, self.fire = brand_id, campaign_id, fire

    def key(self, member_id: str) -> tuple[str, str]:
        return ledger_key(self.brand_id, self.campaign_id, self.fire, member_id)

    def prefetch(self, member_ids: list[str], credits: list[tuple[str, str]], frequency: list[tuple[str, str]]):
        """Ledger entries, credit and frequency counters for a chunk, in BatchGetItems of 100 keys.
        Eventually consistent: a guide for batching, never a decision (the conditional writes decide)."""
        keys = [self.key(m) for m in member_ids]
        keys += [credit_key(self.brand_id, openid, t) for openid, t in credits]
        keys += [frequency_key(self.brand_id, m, day) for m, day in frequency]
        ledger: dict[str, Delivery] = {}
        credit: dict[str, int] = {}
        counts: dict[str, int] = {}
        for item in Item.batch_get(keys):
            if isinstance(item, Delivery):
                ledger[item.sk] = item
            elif isinstance(item, SubscribeCredit):
                credit[item.openid] = int(item.credits or 0)
            elif isinstance(item, FrequencyCount):
                counts[item.pk.rsplit("#", 1)[-1]] = int(item.n or 0)
        return ledger, credit, counts

    def entry(self, member_id: str) -> Delivery | None:
        try:
            return Delivery.get(*self.key(member_id), consistent_read=True)
        except DoesNotExist:
            return None

    def _add_claim(self, tx: Tx, c: Claim, now: datetime) -> None:
        pk, sk = self.key(c.member_id)
        if c.reclaim:
            tx.update(f"ledger:{c.member_id}", Delivery(pk, sk),
                         [Delivery.state.set("sending"), Delivery.claim.set(c.token),
                          Delivery.lease_until.set(c.lease_until), Delivery.attempts.add(1),
                          Delivery.at.set(now.isoformat())],
                         Delivery.state == "retry")
            return
        tx.save(f"ledger:{c.member_id}",
                  Delivery(pk, sk, state="sending", claim=c.token, lease_until=c.lease_until,
                           credit_used=c.credit is not None, counted=c.frequency is not None, attempts=1,
                           at=now.isoformat()),
                  Delivery.pk.does_not_exist())
        if c.credit is not None:
            tx.update(f"credit:{c.member_id}", SubscribeCredit(*credit_key(self.brand_id, *c.credit)),
                         [SubscribeCredit.credits.add(-1)], SubscribeCredit.credits >= 1)
        if c.frequency is not None:
            day, cap = c.frequency
            tx.update(f"frequency:{c.member_id}", FrequencyCount(*frequency_key(self.brand_id, c.member_id, day)),
                         [_kind(FrequencyCount), FrequencyCount.n.add(1),
                          FrequencyCount.expires_at.set(now + FREQUENCY_RETENTION)],
                         FrequencyCount.n.does_not_exist() | (FrequencyCount.n < cap))

    def claim_many(self, claims: list[Claim], now: datetime) -> set[str] | None:
        """Claim a group in one transaction. Returns the labels refused (the group then claimed
        nothing: claim those one by one), or an empty set when every recipient is now claimed."""
        def build():
            tx = Tx()
            for c in claims:
                self._add_claim(tx, c, now)
            return tx
        return retrying(build)

    def claim_one(self, claim: Claim, now: datetime) -> str:
        """claimed | ledger (the entry exists: read it) | no_credit | frequency_capped."""
        def build():
            tx = Tx()
            self._add_claim(tx, claim, now)
            return tx
        failed = retrying(build)
        if not failed:
            return "claimed"
        if f"ledger:{claim.member_id}" in failed:
            return "ledger"
        if f"credit:{claim.member_id}" in failed:
            return "no_credit"
        return "frequency_capped"

    def finalize(self, finals: list[Final], now: datetime) -> set[str]:
        """Close many entries and add their outcomes to the run's tallies in one transaction.
        Returns the member ids whose entry was not in the expected state (nothing was written then;
        call again without them)."""
        counts: dict[str, int] = {}
        for f in finals:
            if f.state != "retry":
                key = rules.outcome_key({"sent": "sent", "skipped": "skip", "failed": "fail"}[f.state], f.reason)
                counts[key] = counts.get(key, 0) + 1

        def build():
            tx = Tx()
            for f in finals:
                self._add_final(tx, f, now)
            shard = random.randrange(TALLY_SHARDS)
            for outcome, n in counts.items():
                tx.update(f"tally:{outcome}",
                             Tally(camp_pk(self.brand_id, self.campaign_id), f"STATS#{self.fire}#{outcome}#{shard:02d}"),
                             [_kind(Tally), Tally.n.add(n)])
            return tx
        failed = retrying(build)
        return {label.split(":", 1)[1] for label in failed if label.startswith("ledger:")}

    def _add_final(self, tx: Tx, f: Final, now: datetime) -> None:
        pk, sk = self.key(f.member_id)
        label = f"ledger:{f.member_id}"
        if f.token is None:
            tx.save(label, Delivery(pk, sk, state=f.state, reason=f.reason, at=now.isoformat(),
                                      errcode=f.errcode), Delivery.pk.does_not_exist())
            return
        actions = [Delivery.state.set(f.state), Delivery.at.set(now.isoformat()), Delivery.claim.remove(),
                   Delivery.lease_until.remove()]
        actions.append(Delivery.reason.set(f.reason) if f.reason else Delivery.reason.remove())
        if f.errcode is not None:
            actions.append(Delivery.errcode.set(f.errcode))
        if f.coupon:
            actions.append(Delivery.coupon.set(f.coupon))
        tx.update(label, Delivery(pk, sk), actions, (Delivery.state == "sending") & (Delivery.claim == f.token))

    def _shard_pk(self, shard: int) -> str:
        return f"B#{self.brand_id}#DLV#{self.campaign_id}#{self.fire}#{shard:02d}"

    def valid_cursor(self, cursor: object) -> bool:
        """Whether `cursor` is one `entries` handed out for this ledger (a caller's text, so checked)."""
        if not isinstance(cursor, dict) or set(cursor) != {"shard", "key"}:
            return False
        shard, key = cursor["shard"], cursor["key"]
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < AUDIENCE_SHARDS:
            return False
        return key is None or (isinstance(key, dict) and set(key) == {"pk", "sk"}
                               and key["pk"] == {"S": self._shard_pk(shard)}
                               and isinstance(key["sk"], dict) and set(key["sk"]) == {"S"}
                               and ids.minted(key["sk"]["S"]))      # a member id: never an oversized key

    def entries(self, *, state: str | None, cursor: dict | None, limit: int) -> tuple[list[Delivery], dict | None]:
        """A page of the ledger (shard by shard), optionally only entries in `state`."""
        shard = int((cursor or {}).get("shard", 0))
        last_key = (cursor or {}).get("key")
        out: list[Delivery] = []
        while shard < AUDIENCE_SHARDS and len(out) < limit:
            pk = self._shard_pk(shard)
            results = Delivery.query(pk, filter_condition=(Delivery.state == state) if state else None,
                                     limit=limit - len(out), last_evaluated_key=last_key, page_size=limit)
            out.extend(results)
            last_key = results.last_evaluated_key
            if last_key is None:
                shard += 1
        if shard >= AUDIENCE_SHARDS:
            return out, None
        return out, {"shard": shard, "key": last_key}
