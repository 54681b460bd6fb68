"""Campaign storage: definitions, audience pages, parked messages and rate windows.

The run (storage.campaign_runs), the delivery ledger (storage.ledger) and subscribe credits
(storage.subscriptions) live in their own modules; every decision in them is one conditional write
or one TransactWriteItems, so a retried write refused by its condition changes nothing.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.domain import campaigns as rules
from chalicelib.storage.members import outbox_item
from chalicelib.storage.models import Brand, Campaign, ParkedMessage, RateWindow
from chalicelib.storage.tx import Tx, refused

RATE_RETENTION = timedelta(hours=1)
PARK_RETENTION = timedelta(days=30)

# The ledger, the runs and the subscribe credits live in their own modules (split from this one);
# their names stay importable from here for the callers that say `store.X`.
from chalicelib.storage.campaign_keys import *  # noqa: F401,F403,E402
from chalicelib.storage.campaign_keys import _kind, camp_pk, campaign_key  # noqa: E402
from chalicelib.storage.campaign_runs import *  # noqa: F401,F403,E402
from chalicelib.storage.ledger import *  # noqa: F401,F403,E402
from chalicelib.storage.ledger import TALLY_SHARDS  # noqa: F401,E402
from chalicelib.storage.subscriptions import *  # noqa: F401,F403,E402


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


# ---- parking while paused --------------------------------------------------------------------

def park(campaign: Campaign, run_id: str, queue: str, body: dict, now: datetime) -> bool:
    """Set a queued message aside, only while the campaign is paused (checked in the same
    transaction, so a resume that already collected the parked messages cannot miss this one).
    False if the campaign is no longer paused: process the message instead."""
    import hashlib
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    tx = Tx()
    tx.check("paused", Campaign, campaign.pk, campaign.sk, Campaign.state == "paused")
    tx.save("park", ParkedMessage(camp_pk(campaign.brand_id, campaign.campaign_id), f"PARK#{run_id}#{queue}#{digest}",
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
        if refused(err):
            return False
        raise
