"""Campaign storage: definitions, runs and planner checkpoints, the delivery ledger, subscribe
credits, frequency counters, stats tallies, parked messages and rate windows.

Every decision is one conditional write or one TransactWriteItems: claiming a recipient (ledger
entry + credit + frequency count), finalizing a group of recipients (ledger entries + the stats
tallies they add to), finishing a planner shard (its checkpoint + the run's totals), completing a
run (run + campaign state + the `campaign.completed` outbox event). A retried write refused by its
condition changes nothing, so no count is ever added twice.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import ids
from chalicelib.domain import campaigns as rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.storage.members import outbox_item
from chalicelib.storage.models import (Brand, Campaign, CampaignRun, Delivery, FrequencyCount, Item, Member,
                                       ParkedMessage, PlanShard, RateWindow, SubscribeCredit, Tally)
from chalicelib.storage.tx import Tx, retrying

TALLY_SHARDS = 8            # finalizing groups write one tally item per outcome; spread over this many
FREQUENCY_RETENTION = timedelta(days=3)
RATE_RETENTION = timedelta(hours=1)
PARK_RETENTION = timedelta(days=30)


# ---- keys ------------------------------------------------------------------------------------

def campaign_key(brand_id: str, campaign_id: str) -> tuple[str, str]:
    return f"B#{brand_id}", f"CAMPAIGN#{campaign_id}"


def camp_pk(brand_id: str, campaign_id: str) -> str:
    return f"B#{brand_id}#CAMP#{campaign_id}"


def member_shard(member_id: str) -> int:
    """The member's audience shard (domain.members.audience_key): ledger entries are spread the same way."""
    return sum(member_id.encode()) % AUDIENCE_SHARDS


def ledger_key(brand_id: str, campaign_id: str, fire: str, member_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#DLV#{campaign_id}#{fire}#{member_shard(member_id):02d}", member_id


def credit_key(brand_id: str, openid: str, template_id: str) -> tuple[str, str]:
    return f"B#{brand_id}#CREDIT#{openid}", template_id


def frequency_key(brand_id: str, member_id: str, day: str) -> tuple[str, str]:
    return f"B#{brand_id}#FREQ#{member_id}", day


def _kind(model_cls):
    """Items first created by an UpdateItem get their `kind` like any put."""
    return model_cls.kind.set(model_cls)


def _refused(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == "ConditionalCheckFailedException"


# ---- campaigns -------------------------------------------------------------------------------

def create(brand_id: str, campaign_id: str, spec: rules.Spec, schedule_name: str, now: datetime,
           extra_checks=None) -> Campaign:
    """Store a new campaign (state scheduled). Refusals: unknown brand; whatever `extra_checks(tx)`
    adds (e.g. the coupon template must exist), as a {label: exception} map."""
    from chalicelib.errors import NotFound
    pk, sk = campaign_key(brand_id, campaign_id)
    item = Campaign(pk, sk, brand_id=brand_id, campaign_id=campaign_id, name=spec.name, state="scheduled",
                    spec=spec.to_json(), schedule_name=schedule_name, runs=0, created_at=now.isoformat(),
                    updated_at=now.isoformat())
    tx = Tx()
    tx.check("brand", Brand, f"B#{brand_id}", "BRAND", Brand.pk.exists())
    refusals = {"brand": NotFound(f"no brand {brand_id}", code="unknown_brand")}
    if extra_checks is not None:
        refusals.update(extra_checks(tx))
    tx.save("campaign", item, Campaign.pk.does_not_exist())
    tx.commit(refusals)
    return item


def delete(brand_id: str, campaign_id: str) -> None:
    Campaign(*campaign_key(brand_id, campaign_id)).delete()


def get(brand_id: str, campaign_id: str, *, consistent: bool = False) -> Campaign | None:
    try:
        return Campaign.get(*campaign_key(brand_id, campaign_id), consistent_read=consistent)
    except DoesNotExist:
        return None


def list_for_brand(brand_id: str) -> list[Campaign]:
    return [c for c in Campaign.query(f"B#{brand_id}", Campaign.sk.startswith("CAMPAIGN#"))
            if isinstance(c, Campaign)]


def set_state(item: Campaign, new_state: str, now: datetime, *, event: tuple[str, dict] | None = None) -> bool:
    """Move the campaign from the state it was read in to `new_state`; False if it changed meanwhile."""
    tx = Tx()
    tx.update("campaign", Campaign(item.pk, item.sk),
                 [Campaign.state.set(new_state), Campaign.updated_at.set(now.isoformat())],
                 Campaign.state == item.state)
    if event:
        tx.save("outbox", outbox_item("event", event[0], item.brand_id, event[1], now))
    return not tx.attempt()


# ---- runs and the planner's checkpoints ------------------------------------------------------

def run_key(brand_id: str, campaign_id: str, fire: str) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"RUN#{fire}"


def get_run(brand_id: str, campaign_id: str, fire: str) -> CampaignRun | None:
    try:
        return CampaignRun.get(*run_key(brand_id, campaign_id, fire), consistent_read=True)
    except DoesNotExist:
        return None


def start_run(campaign: Campaign, fire: str, now: datetime) -> bool:
    """Create the run and mark the campaign running, atomically; False if the campaign left
    `scheduled` meanwhile or the run exists (another fire started it)."""
    tx = Tx()
    tx.save("run", CampaignRun(*run_key(campaign.brand_id, campaign.campaign_id, fire), fire=fire, state="planning",
                                 targeted=0, shards_done=0, fanned_out=False, started_at=now.isoformat()),
              CampaignRun.pk.does_not_exist())
    tx.update("campaign", Campaign(campaign.pk, campaign.sk),
                 [Campaign.state.set("running"), Campaign.current_run.set(fire), Campaign.runs.add(1),
                  Campaign.updated_at.set(now.isoformat())],
                 Campaign.state == "scheduled")
    return not tx.attempt()


def mark_fanned_out(brand_id: str, campaign_id: str, fire: str) -> None:
    CampaignRun(*run_key(brand_id, campaign_id, fire)).update(actions=[CampaignRun.fanned_out.set(True)])


def shard_key(brand_id: str, campaign_id: str, fire: str, shard: int) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"RUN#{fire}#SHARD#{shard:02d}"


def lease_shard(brand_id: str, campaign_id: str, fire: str, shard: int, owner: str, now: float,
                lease: float) -> PlanShard | None:
    """Take (or renew) the planner lease on one shard; None while another planner holds it or the
    shard is done. Returns the checkpoint to resume from."""
    item = PlanShard(*shard_key(brand_id, campaign_id, fire, shard))
    try:
        item.update(actions=[_kind(PlanShard), PlanShard.state.set(PlanShard.state | "planning"),
                             PlanShard.lease_owner.set(owner), PlanShard.lease_until.set(now + lease)],
                    condition=PlanShard.pk.does_not_exist() | (
                        (PlanShard.state == "planning")
                        & (PlanShard.lease_until.does_not_exist() | (PlanShard.lease_until < now)
                           | (PlanShard.lease_owner == owner))))
    except UpdateError as err:
        if _refused(err):
            return None
        raise
    return item


def get_shard(brand_id: str, campaign_id: str, fire: str, shard: int) -> PlanShard | None:
    try:
        return PlanShard.get(*shard_key(brand_id, campaign_id, fire, shard), consistent_read=True)
    except DoesNotExist:
        return None


def checkpoint_shard(item: PlanShard, owner: str, cursor: dict | None, added: int, now: float, lease: float) -> bool:
    """Record progress after a page's chunks are queued; False if the lease was lost (stop planning)."""
    try:
        item.update(actions=[PlanShard.cursor.set(json.dumps(cursor)) if cursor else PlanShard.cursor.remove(),
                             PlanShard.targeted.add(added), PlanShard.pages.add(1),
                             PlanShard.lease_until.set(now + lease)],
                    condition=PlanShard.lease_owner == owner)
        return True
    except UpdateError as err:
        if _refused(err):
            return False
        raise


def finish_shard(brand_id: str, campaign_id: str, fire: str, item: PlanShard, owner: str, added: int) -> bool:
    """The shard's last page is queued: mark it done and add its total to the run, once."""
    total = int(item.targeted or 0) + added
    tx = Tx()
    tx.update("shard", PlanShard(item.pk, item.sk),
                 [PlanShard.state.set("done"), PlanShard.targeted.set(total), PlanShard.cursor.remove(),
                  PlanShard.lease_until.set(0)],
                 (PlanShard.lease_owner == owner) & (PlanShard.state == "planning"))
    tx.update("run", CampaignRun(*run_key(brand_id, campaign_id, fire)),
                 [CampaignRun.targeted.add(total), CampaignRun.shards_done.add(1)])
    return not tx.attempt()


def release_shard(item: PlanShard, owner: str) -> None:
    try:
        item.update(actions=[PlanShard.lease_until.set(0)], condition=PlanShard.lease_owner == owner)
    except UpdateError as err:
        if not _refused(err):
            raise


def run_items(brand_id: str, campaign_id: str, fire: str) -> tuple[CampaignRun | None, list[PlanShard]]:
    run, shards = None, []
    for item in Item.query(camp_pk(brand_id, campaign_id), Item.sk.startswith(f"RUN#{fire}"), consistent_read=True):
        if isinstance(item, CampaignRun):
            run = item
        elif isinstance(item, PlanShard):
            shards.append(item)
    return run, shards


def tallies(brand_id: str, campaign_id: str, fire: str) -> dict[str, int]:
    out: dict[str, int] = {}
    prefix = f"STATS#{fire}#"
    for item in Tally.query(camp_pk(brand_id, campaign_id), Tally.sk.startswith(prefix), consistent_read=True):
        outcome = item.sk[len(prefix):].rsplit("#", 1)[0]
        out[outcome] = out.get(outcome, 0) + int(item.n or 0)
    return out


def complete_run(campaign: Campaign, fire: str, stats: dict, now: datetime) -> bool:
    """Mark the run completed, move the campaign on (domain.after_run) and emit `campaign.completed`
    in one transaction; False if the run was completed already or the campaign changed meanwhile."""
    spec = rules.Spec.from_json(campaign.spec)
    new_state = rules.after_run(campaign.state, spec.schedule.recurring)
    tx = Tx()
    tx.update("run", CampaignRun(*run_key(campaign.brand_id, campaign.campaign_id, fire)),
                 [CampaignRun.state.set("completed"), CampaignRun.completed_at.set(now.isoformat())],
                 CampaignRun.state != "completed")
    tx.update("campaign", Campaign(campaign.pk, campaign.sk),
                 [Campaign.state.set(new_state), Campaign.updated_at.set(now.isoformat())],
                 Campaign.state == campaign.state)
    tx.save("outbox", outbox_item("event", "campaign.completed", campaign.brand_id, {
        "brand_id": campaign.brand_id, "campaign_id": campaign.campaign_id, "name": campaign.name, "fire": fire,
        "state": new_state, "stats": stats}, now))
    return not tx.attempt()


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


# ---- parking while paused --------------------------------------------------------------------

def park(campaign: Campaign, fire: str, queue: str, body: dict, now: datetime) -> bool:
    """Set a queued message aside, only while the campaign is paused (checked in the same
    transaction, so a resume that already collected the parked messages cannot miss this one).
    False if the campaign is no longer paused: process the message instead."""
    import hashlib
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    tx = Tx()
    tx.check("paused", Campaign, campaign.pk, campaign.sk, Campaign.state == "paused")
    tx.save("park", ParkedMessage(camp_pk(campaign.brand_id, campaign.campaign_id), f"PARK#{fire}#{queue}#{digest}",
                                    queue=queue, body=text, expires_at=now + PARK_RETENTION))
    return not tx.attempt()


def parked(brand_id: str, campaign_id: str) -> list[ParkedMessage]:
    return list(ParkedMessage.query(camp_pk(brand_id, campaign_id), ParkedMessage.sk.startswith("PARK#"),
                                    consistent_read=True))


def unpark(items: list[ParkedMessage]) -> None:
    with ParkedMessage.batch_write() as batch:
        for item in items:
            batch.delete(item)


# ---- throttle --------------------------------------------------------------------------------

def reserve_rate(brand_id: str, campaign_id: str, second: int, want: int, limit: int, now: datetime) -> bool:
    """Take `want` sends from the campaign's budget for one wall-clock second, across containers."""
    item = RateWindow(camp_pk(brand_id, campaign_id), f"RATE#{second}")
    try:
        item.update(actions=[_kind(RateWindow), RateWindow.n.add(want), RateWindow.expires_at.set(now + RATE_RETENTION)],
                    condition=RateWindow.n.does_not_exist() | (RateWindow.n <= limit - want))
        return True
    except UpdateError as err:
        if _refused(err):
            return False
        raise


# ---- subscribe credits -----------------------------------------------------------------------

def _echo_condition(source: str, now: float):
    """The credit item's last grant came from the other source moments ago and is not yet echoed."""
    return ((SubscribeCredit.echo_open == True) & (SubscribeCredit.last_source != source)  # noqa: E712
            & (SubscribeCredit.last_granted_at >= now - rules.ECHO_WINDOW_SECONDS))


def record_subscriptions(brand_id: str, openid: str, changes: rules.SubscriptionChanges, *, source: str,
                         now: datetime, inbound: str | None = None) -> bool:
    """Apply what a popup or settings change said, in one transaction with the callback's inbound
    marker (so WeChat's retries count nothing twice). An acceptance adds one credit unless it is the
    other source's report of an acceptance already counted (domain.ECHO_WINDOW_SECONDS).
    Returns False when the inbound marker shows the callback was handled before."""
    from chalicelib.storage.models import Inbound
    from chalicelib.storage.members import INBOUND_RETENTION, inbound_key
    epoch = now.timestamp()
    echoes: set[str] = set()
    for _attempt in range(4):
        tx = Tx()
        if inbound:
            tx.save("inbound", Inbound(inbound_key(brand_id, inbound), "IN", event="subscriptions",
                                         expires_at=now + INBOUND_RETENTION), Inbound.pk.does_not_exist())
        for template in changes.accepted:
            item = SubscribeCredit(*credit_key(brand_id, openid, template))
            base = [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id), SubscribeCredit.openid.set(openid),
                    SubscribeCredit.template_id.set(template)]
            if template in echoes:
                tx.update(f"echo:{template}", item, base + [SubscribeCredit.echo_open.set(False)],
                             _echo_condition(source, epoch))
            else:
                tx.update(f"grant:{template}", item,
                             base + [SubscribeCredit.credits.add(1), SubscribeCredit.granted.add(1),
                                     SubscribeCredit.last_source.set(source),
                                     SubscribeCredit.last_granted_at.set(epoch), SubscribeCredit.echo_open.set(True)],
                             ~_echo_condition(source, epoch))
        for template in changes.rejected:
            tx.update(f"reject:{template}", SubscribeCredit(*credit_key(brand_id, openid, template)),
                         [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id),
                          SubscribeCredit.openid.set(openid), SubscribeCredit.template_id.set(template),
                          SubscribeCredit.rejected_at.set(now.isoformat())])
        for template in changes.revoked:
            tx.update(f"revoke:{template}", SubscribeCredit(*credit_key(brand_id, openid, template)),
                         [_kind(SubscribeCredit), SubscribeCredit.brand_id.set(brand_id),
                          SubscribeCredit.openid.set(openid), SubscribeCredit.template_id.set(template),
                          SubscribeCredit.credits.set(0), SubscribeCredit.echo_open.set(False),
                          SubscribeCredit.revoked_at.set(now.isoformat())])
        failed = tx.attempt()
        if not failed:
            return True
        if "inbound" in failed:
            return False
        # grants that met an unechoed grant from the other source become echoes, and vice versa
        for label in failed:
            kind, template = label.split(":", 1)
            if kind == "grant":
                echoes.add(template)
            elif kind == "echo":
                echoes.discard(template)
    raise RuntimeError("subscription credits kept changing under us")


def credits_of(brand_id: str, openid: str) -> dict[str, int]:
    return {c.template_id: int(c.credits or 0)
            for c in SubscribeCredit.query(f"B#{brand_id}#CREDIT#{openid}", consistent_read=True)}


__all__ = ["Claim", "Final", "Ledger", "create", "get", "list_for_brand", "set_state", "start_run",
           "lease_shard", "checkpoint_shard", "finish_shard", "run_items", "tallies", "complete_run", "park",
           "parked", "unpark", "reserve_rate", "record_subscriptions", "credits_of"]
