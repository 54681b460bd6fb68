"""Helpers for campaign tests on the local stack: members in bulk, credits, the simulator's log."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import requests

from chalicelib.domain.members import Shopper, Touch, plan_touch
from chalicelib.ids import new_id
from chalicelib.storage import members as member_store

TEMPLATE = "TPL_daily_special"


def add_members(brand, count: int, *, prefix: str = "o", tags=("vip",), store_id: str = "sz",
                oa: bool = False) -> list[str]:
    """`count` members written straight through the storage layer (one transaction each, as a touch
    commits); their domain events are left out so the bus is not flooded. Returns their openids."""
    now = datetime.now(timezone.utc)

    def one(i: int) -> str:
        openid = f"{prefix}_{brand.brand_id}_{i:04d}"
        shopper = Shopper(oa=openid) if oa else Shopper(mp=openid)
        at = (now - timedelta(days=1, seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        touch = Touch(store_id, None, "S1", "counter_poster", "oa" if oa else "mp", at)
        plan = plan_touch(brand_id=brand.brand_id, shopper=shopper, found={}, touch=touch, channel=None,
                          new_member_id=new_id("m"), subscribed=True if oa else None)
        plan.tags = tuple(tags)
        plan.events.clear()
        plan.tasks.clear()
        member_store.commit_touch(brand.brand_id, plan, inbound=None, event="test", now=now)
        return openid

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def grant_credits(brand, openids: list[str], template: str = TEMPLATE) -> None:
    from chalicelib.domain.campaigns import SubscriptionChanges
    from chalicelib.storage.campaigns import record_subscriptions
    now = datetime.now(timezone.utc)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda o: record_subscriptions(brand.brand_id, o, SubscriptionChanges(accepted=(template,)),
                                                     source="api", now=now), openids))


def create_campaign(brand, **fields) -> dict:
    body = {"name": "today's special", "message": {"medium": "mp_subscribe", "template_id": TEMPLATE,
                                                   "page": "pages/special/index", "data": {"thing1": "10 off"}},
            "schedule": {"at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}}
    body.update(fields)
    # these campaigns count exact sends: no control group unless a test asks for one (the default
    # 5 % holdout has tests of its own)
    body["audience"] = {"holdout_percent": 0, **(body.get("audience") or {})}
    r = brand.admin("POST", "/campaigns", body)
    assert r.status_code == 201, r.text
    return r.json()


def campaign(brand, campaign_id: str) -> dict:
    r = brand.admin("GET", f"/campaigns/{campaign_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(brand, campaign_id: str, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = campaign(brand, campaign_id)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign never got there: {current['state']} {current['stats']}")
        time.sleep(0.2)


def sim(stack, method: str, what: str, body=None):
    r = requests.request(method, f"{stack.wechat_url}/__sim/{what}", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def sent_to(stack, brand, kind: str = "mp") -> list[dict]:
    """What the simulator accepted for this brand's app (other test modules share the simulator)."""
    app_id = brand.app(kind)["app_id"]
    return [s for s in sim(stack, "GET", "sent") if s["app_id"] == app_id]


def fault(stack, api: str, *, errcode: int | None = None, rate: float = 0.0, latency_ms: int = 0) -> None:
    sim(stack, "POST", "faults", {"api": api, "errcode": errcode, "rate": rate, "latency_ms": latency_ms})


def clear_fault(stack, api: str) -> None:
    fault(stack, api, errcode=None, rate=0.0, latency_ms=0)
