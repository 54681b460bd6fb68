"""Campaign conversion on the local stack: orders of members a run sent to or held out, inside and
outside the campaign's attribution window, counted once however retried or raced, rolled back by
refunds, and the lift in the campaign view, all against figures worked out by hand."""
from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from chalicelib.domain import campaigns as rules
from tests.integration.campaign_fixtures import TEMPLATE, add_members, create_campaign, grant_credits, wait_for
from tests.integration.test_orders import order, refund

RUN = "once"


def _age_mark(brand_id: str, campaign_id: str, openid: str, days: float) -> None:
    """Move the run's mark on the member's credit item `days` back in time (as if sent then)."""
    from chalicelib.storage.campaign_keys import credit_key
    from chalicelib.storage.models import Item
    client, table = Item._get_connection().connection.client, Item.Meta.table_name
    pk, sk = credit_key(brand_id, openid, TEMPLATE)
    name = f"R#{campaign_id}#{RUN}"
    raw = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)["Item"]
    parts = raw[name]["S"].split("|")
    parts[3] = str(int(parts[3]) - int(days * 86400))
    client.update_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, UpdateExpression="SET #m = :m",
                       ExpressionAttributeNames={"#m": name}, ExpressionAttributeValues={":m": {"S": "|".join(parts)}})


def _at(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ok(r, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def _conversion(brand, cid: str) -> tuple[dict, dict, dict]:
    stats = _ok(brand.admin("GET", f"/campaigns/{cid}"), 200)["stats"]
    return stats["converted"], stats["held_out_converted"], stats


def test_conversion_by_group_inside_the_window_once_and_rolled_back_by_refunds(stack, brand, inproc):
    openids = add_members(brand, 40)
    grant_credits(brand, openids)
    created = create_campaign(brand, audience={"holdout_percent": 30}, attribution_days=3)
    cid = created["campaign_id"]
    stack.scheduler.fire(created["schedule"]["name"])
    done = wait_for(brand, cid, lambda c: c["state"] == "completed", timeout=120)
    member_of = {o: brand.member(openid=o)["member_id"] for o in openids}
    held = sorted(o for o in openids if rules.held_out(cid, member_of[o], 30))
    sent = sorted(set(openids) - set(held))
    assert len(held) >= 4 and len(sent) >= 7
    assert (done["stats"]["sent"], done["stats"]["held_out"]) == (len(sent), len(held))
    assert done["stats"]["converted"] == {"members": 0, "orders": 0, "gmv_cents": 0}

    m = lambda o: member_of[o]          # noqa: E731
    _age_mark(brand.brand_id, cid, sent[3], 4)            # sent 4 days ago: outside its 3-day window
    _age_mark(brand.brand_id, cid, held[1], 4)
    # sent group: s0 twice (one retried with its key, once raced), s1 once, s2 before the message,
    # s3 after the window, s4 by an import; held out: h0 once, h1 after the window, h2 twice at once
    key = uuid.uuid4().hex
    s0_first = {"order_id": "s0-a", "amount_cents": 1000, "member_id": m(sent[0])}
    _ok(order(brand, s0_first, key=key))
    assert order(brand, s0_first, key=key).status_code == 201            # a retry replays: counted once
    raced_key = uuid.uuid4().hex
    raced = {"order_id": "s0-b", "amount_cents": 500, "member_id": m(sent[0])}
    with ThreadPoolExecutor(4) as pool:                                 # a duplicate raced: one order
        answers = list(pool.map(lambda _: order(brand, raced, key=raced_key), range(4)))
    assert {a.status_code for a in answers} == {201} and len({a.json()["member_order_number"] for a in answers}) == 1
    _ok(order(brand, {"order_id": "s1-a", "amount_cents": 2000, "member_id": m(sent[1])}))
    _ok(order(brand, {"order_id": "s2-a", "amount_cents": 9000, "member_id": m(sent[2]),
                      "occurred_at": _at(-timedelta(hours=2))}))      # before the run marked them
    _ok(order(brand, {"order_id": "s3-a", "amount_cents": 9100, "member_id": m(sent[3])}))
    r = brand.via(inproc).admin("POST", "/order-imports", {"orders": [
        {"order_id": "s4-a", "amount_cents": 400, "store_id": "sz", "member_id": m(sent[4]),
         "occurred_at": _at(timedelta(minutes=1))}]})
    assert _ok(r, 200)["accepted"] == 1
    _ok(order(brand, {"order_id": "h0-a", "amount_cents": 700, "member_id": m(held[0])}))
    _ok(order(brand, {"order_id": "h1-a", "amount_cents": 9200, "member_id": m(held[1])}))
    with ThreadPoolExecutor(2) as pool:                                 # two first orders at once: one member
        both = list(pool.map(lambda i: order(brand, {"order_id": f"h2-{i}", "amount_cents": 300,
                                                     "member_id": m(held[2])}), range(2)))
    assert [b.status_code for b in both] == [201, 201]
    walk_in = _ok(order(brand, {"order_id": "w-1", "amount_cents": 5000}))
    assert walk_in["member_id"] is None

    converted, control, stats = _conversion(brand, cid)
    assert converted == {"members": 3, "orders": 4, "gmv_cents": 1000 + 500 + 2000 + 400}
    assert control == {"members": 2, "orders": 3, "gmv_cents": 700 + 300 + 300}
    assert stats["members"] == {"sent": len(sent), "held_out": len(held)}

    # lift by hand: p1 = 3/len(sent), p0 = 2/len(held); Katz interval on ln(p1/p0)
    p1, p0 = 3 / len(sent), 2 / len(held)
    se = math.sqrt((1 - p1) / 3 + (1 - p0) / 2)
    lift = stats["lift"]
    assert math.isclose(lift["lift"], p1 / p0 - 1)
    z = 1.959963984540054
    low, high = math.exp(math.log(p1 / p0) - z * se) - 1, math.exp(math.log(p1 / p0) + z * se) - 1
    assert math.isclose(lift["lift_ci95"][0], low) and math.isclose(lift["lift_ci95"][1], high)
    assert lift["sent"]["converted_members"] == 3 and lift["held_out"]["members"] == len(held)
    assert lift["conclusive"] is False and "too small" in lift["note"]

    # refunds: s1's order in full (the member's only one: off), s0's first in two parts (s0 keeps one)
    refund_key = uuid.uuid4().hex
    _ok(refund(brand, "s1-a", "rf-1", 2000, key=refund_key))
    assert refund(brand, "s1-a", "rf-1", 2000, key=refund_key).status_code == 201       # replayed
    _ok(refund(brand, "s0-a", "rf-2", 300))
    assert _conversion(brand, cid)[0] == {"members": 2, "orders": 3, "gmv_cents": 1000 + 500 + 400 - 300}
    _ok(refund(brand, "s0-a", "rf-3", 700))
    _ok(refund(brand, "h0-a", "rf-4", 700))
    converted, control, _ = _conversion(brand, cid)
    assert converted == {"members": 2, "orders": 2, "gmv_cents": 500 + 400}
    assert control == {"members": 1, "orders": 2, "gmv_cents": 600}
    # the member whose only order was refunded converts again with a new one
    _ok(order(brand, {"order_id": "s1-b", "amount_cents": 100, "member_id": m(sent[1])}))
    assert _conversion(brand, cid)[0] == {"members": 3, "orders": 3, "gmv_cents": 1000}


def test_an_order_counts_for_at_most_five_campaigns_the_most_recent(stack, brand):
    from chalicelib.domain import conversion
    openids = add_members(brand, 1)
    grant_credits(brand, openids * 7)
    cids = []
    for _ in range(7):
        created = create_campaign(brand, audience={"holdout_percent": 0})
        stack.scheduler.fire(created["schedule"]["name"])
        wait_for(brand, created["campaign_id"], lambda c: c["state"] == "completed", timeout=60)
        cids.append(created["campaign_id"])
    for age, cid in enumerate(reversed(cids)):       # sent an hour apart, the first campaign earliest
        _age_mark(brand.brand_id, cid, openids[0], (age + 1) / 24)
    member_id = brand.member(openid=openids[0])["member_id"]
    _ok(order(brand, {"order_id": "many", "amount_cents": 100, "member_id": member_id}))
    counted = [cid for cid in cids if _conversion(brand, cid)[0]["orders"] == 1]
    assert conversion.MAX_CAMPAIGNS == 5 and counted == cids[2:]


def test_a_paused_and_resumed_run_holds_out_the_same_members_and_their_orders_count_there(stack, brand):
    from collections import Counter

    from tests.integration.campaign_fixtures import clear_fault, fault, sent_to
    openids = add_members(brand, 40)
    grant_credits(brand, openids)
    fault(stack, "cgi-bin/message/subscribe/send", latency_ms=150)     # slow enough to pause mid-run
    try:
        created = create_campaign(brand, audience={"holdout_percent": 30}, limits={"per_second": 8})
        cid = created["campaign_id"]
        stack.scheduler.fire(created["schedule"]["name"])
        wait_for(brand, cid, lambda c: c["stats"]["sent"] >= 5, timeout=60)
        assert _ok(brand.admin("POST", f"/campaigns/{cid}/pause"), 200)["state"] == "paused"
        stack.pump.idle()
        assert _ok(brand.admin("POST", f"/campaigns/{cid}/resume"), 200)["state"] == "running"
        done = wait_for(brand, cid, lambda c: c["state"] == "completed", timeout=120)
    finally:
        clear_fault(stack, "cgi-bin/message/subscribe/send")
    member_of = {o: brand.member(openid=o)["member_id"] for o in openids}
    held = {o for o in openids if rules.held_out(cid, member_of[o], 30)}
    per_member = Counter(s["touser"] for s in sent_to(stack, brand))
    assert set(per_member) == set(openids) - held and max(per_member.values()) == 1
    listed = brand.admin("GET", f"/campaigns/{cid}/deliveries?state=held_out&limit=500").json()["deliveries"]
    assert {d["member_id"] for d in listed} == {member_of[o] for o in held} and done["stats"]["held_out"] == len(held)
    one = sorted(held)[0]
    _ok(order(brand, {"order_id": "after-resume", "amount_cents": 250, "member_id": member_of[one]}))
    converted, control, _ = _conversion(brand, cid)
    assert converted["orders"] == 0 and control == {"members": 1, "orders": 1, "gmv_cents": 250}
