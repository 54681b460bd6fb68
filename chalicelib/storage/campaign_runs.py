"""A campaign run's items: the run, the planner's shard checkpoints, the stats tallies, completion.

A planner shard is finished (its checkpoint + the run's totals) and a run completed (run + campaign
state + the `campaign.completed` outbox event) in one transaction each, so nothing counts twice.
"""
from __future__ import annotations

import json
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.domain import campaigns as rules
from chalicelib.storage.members import outbox_item
from chalicelib.storage.models import Campaign, CampaignRun, Item, PlanShard, Tally
from chalicelib.storage.tx import Tx, refused
from chalicelib.storage.campaign_keys import _kind, camp_pk

# ---- runs and the planner's checkpoints ------------------------------------------------------

def run_key(brand_id: str, campaign_id: str, run_id: str) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"RUN#{run_id}"


def get_run(brand_id: str, campaign_id: str, run_id: str) -> CampaignRun | None:
    try:
        return CampaignRun.get(*run_key(brand_id, campaign_id, run_id), consistent_read=True)
    except DoesNotExist:
        return None


def start_run(campaign: Campaign, run_id: str, now: datetime) -> bool:
    """Create the run and mark the campaign running, atomically; False if the campaign left
    `scheduled` meanwhile or the run exists (another fire started it)."""
    tx = Tx()
    tx.save("run", CampaignRun(*run_key(campaign.brand_id, campaign.campaign_id, run_id), run_id=run_id, state="planning",
                                 targeted=0, shards_done=0, fanned_out=False, started_at=now.isoformat()),
              CampaignRun.pk.does_not_exist())
    tx.update("campaign", Campaign(campaign.pk, campaign.sk),
                 [Campaign.state.set("running"), Campaign.current_run.set(run_id), Campaign.runs.add(1),
                  Campaign.updated_at.set(now.isoformat())],
                 Campaign.state == "scheduled")
    return not tx.attempt()


def mark_fanned_out(brand_id: str, campaign_id: str, run_id: str) -> None:
    CampaignRun(*run_key(brand_id, campaign_id, run_id)).update(actions=[CampaignRun.fanned_out.set(True)])


def shard_key(brand_id: str, campaign_id: str, run_id: str, shard: int) -> tuple[str, str]:
    return camp_pk(brand_id, campaign_id), f"RUN#{run_id}#SHARD#{shard:02d}"


def lease_shard(brand_id: str, campaign_id: str, run_id: str, shard: int, owner: str, now: float,
                lease: float) -> PlanShard | None:
    """Take (or renew) the planner lease on one shard; None while another planner holds it or the
    shard is done. Returns the checkpoint to resume from."""
    item = PlanShard(*shard_key(brand_id, campaign_id, run_id, shard))
    try:
        item.update(actions=[_kind(PlanShard), PlanShard.state.set(PlanShard.state | "planning"),
                             PlanShard.lease_owner.set(owner), PlanShard.lease_until.set(now + lease)],
                    condition=PlanShard.pk.does_not_exist() | (
                        (PlanShard.state == "planning")
                        & (PlanShard.lease_until.does_not_exist() | (PlanShard.lease_until < now)
                           | (PlanShard.lease_owner == owner))))
    except UpdateError as err:
        if refused(err):
            return None
        raise
    return item


def get_shard(brand_id: str, campaign_id: str, run_id: str, shard: int) -> PlanShard | None:
    try:
        return PlanShard.get(*shard_key(brand_id, campaign_id, run_id, shard), consistent_read=True)
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
        if refused(err):
            return False
        raise


def finish_shard(brand_id: str, campaign_id: str, run_id: str, item: PlanShard, owner: str, added: int) -> bool:
    """The shard's last page is queued: mark it done and add its total to the run, once."""
    total = int(item.targeted or 0) + added
    tx = Tx()
    tx.update("shard", PlanShard(item.pk, item.sk),
                 [PlanShard.state.set("done"), PlanShard.targeted.set(total), PlanShard.cursor.remove(),
                  PlanShard.lease_until.set(0)],
                 (PlanShard.lease_owner == owner) & (PlanShard.state == "planning"))
    tx.update("run", CampaignRun(*run_key(brand_id, campaign_id, run_id)),
                 [CampaignRun.targeted.add(total), CampaignRun.shards_done.add(1)])
    return not tx.attempt()


def release_shard(item: PlanShard, owner: str) -> None:
    try:
        item.update(actions=[PlanShard.lease_until.set(0)], condition=PlanShard.lease_owner == owner)
    except UpdateError as err:
        if not refused(err):
            raise


def run_items(brand_id: str, campaign_id: str, run_id: str) -> tuple[CampaignRun | None, list[PlanShard]]:
    run, shards = None, []
    for item in Item.query(camp_pk(brand_id, campaign_id), Item.sk.startswith(f"RUN#{run_id}"), consistent_read=True):
        if isinstance(item, CampaignRun):
            run = item
        elif isinstance(item, PlanShard):
            shards.append(item)
    return run, shards


def tallies(brand_id: str, campaign_id: str, run_id: str) -> dict[str, int]:
    out: dict[str, int] = {}
    prefix = f"STATS#{run_id}#"
    for item in Tally.query(camp_pk(brand_id, campaign_id), Tally.sk.startswith(prefix), consistent_read=True):
        outcome = item.sk[len(prefix):].rsplit("#", 1)[0]
        out[outcome] = out.get(outcome, 0) + int(item.n or 0)
    return out


def complete_run(campaign: Campaign, run_id: str, stats: dict, now: datetime) -> bool:
    """Mark the run completed, move the campaign on (domain.after_run) and emit `campaign.completed`
    in one transaction; False if the run was completed already or the campaign changed meanwhile."""
    spec = rules.Spec.from_json(campaign.spec)
    new_state = rules.after_run(campaign.state, spec.schedule.recurring)
    tx = Tx()
    tx.update("run", CampaignRun(*run_key(campaign.brand_id, campaign.campaign_id, run_id)),
                 [CampaignRun.state.set("completed"), CampaignRun.completed_at.set(now.isoformat())],
                 CampaignRun.state != "completed")
    tx.update("campaign", Campaign(campaign.pk, campaign.sk),
                 [Campaign.state.set(new_state), Campaign.updated_at.set(now.isoformat())],
                 Campaign.state == campaign.state)
    tx.save("outbox", outbox_item("event", "campaign.completed", campaign.brand_id, {
        "brand_id": campaign.brand_id, "campaign_id": campaign.campaign_id, "name": campaign.name, "run_id": run_id,
        "state": new_state, "stats": stats}, now))
    return not tx.attempt()
