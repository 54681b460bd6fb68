"""Campaign coupons through the delivery ledger on the local stack (services.campaign_coupons): a
template without a total stock gives each delivered member one coupon per run — in the wallet, at the
till by its code, on the bus once — with the template's issued count, its stats and the scoreboard's
coupons_issued exact whatever is fired twice; the member's limit holds across runs; a template with a
total stock keeps the transaction per coupon (issue keys, never oversold)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.integration.campaign_fixtures import add_members, create_campaign, grant_credits, wait_for
from tests.integration.test_coupons import make_template, redeem


def fire(stack, created: dict, times: int = 1) -> None:
    stack.scheduler.fire(created["schedule"]["name"], times=times)


def done(brand, created) -> dict:
    return wait_for(brand, created["campaign_id"], lambda c: c["state"] == "completed", timeout=90)


def days() -> tuple[str, str]:
    from zoneinfo import ZoneInfo
    today = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Shanghai")).date()
    return (today - timedelta(days=1)).isoformat(), today.isoformat()


def table_kinds(brand_id: str, prefix: str) -> int:
    from chalicelib import aws
    from chalicelib.resources import MAIN
    import os
    ddb = aws.client("dynamodb")
    n, start = 0, None
    while True:
        kwargs = {"TableName": os.environ[MAIN.env], "FilterExpression": "begins_with(pk, :p)",
                  "ExpressionAttributeValues": {":p": {"S": prefix}}}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = ddb.scan(**kwargs)
        n += len(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return n


def test_a_ledger_coupon_reaches_wallet_till_bus_and_counters_exactly_once(stack, brand, bus):
    openids = add_members(brand, 30)
    grant_credits(brand, openids[:20])
    template = make_template(brand, per_member_limit=1)["template_id"]
    created = create_campaign(brand, coupon_template_id=template)
    fire(stack, created, times=2)                     # a duplicate fire finds the run
    state = done(brand, created)
    assert state["stats"]["sent"] == 20
    wallets = {o: brand.member(openid=o)["coupons"] for o in openids}
    assert all(len(wallets[o]) == 1 and wallets[o][0]["template_id"] == template
               and wallets[o][0]["source"] == "campaign" for o in openids[:20])
    assert all(wallets[o] == [] for o in openids[20:])
    codes = {wallets[o][0]["code"] for o in openids[:20]}
    assert len(codes) == 20
    # no issue key, no per-coupon transaction: the coupons are derived, one conditional put each
    assert table_kinds(brand.brand_id, f"B#{brand.brand_id}#ISSUE#") == 0
    # the deliveries list each sent member's coupon
    listed = brand.admin("GET", f"/campaigns/{created['campaign_id']}/deliveries?state=sent&limit=500").json()
    assert {d["coupon"] for d in listed["deliveries"]} == codes
    # counted once: the template, its stats, the scoreboard; one coupon.issued event per coupon
    assert brand.admin("GET", f"/coupon-templates/{template}").json()["issued"] == 20
    yesterday, today = days()
    stats = brand.admin("GET", f"/coupon-templates/{template}/stats?by=day&from={yesterday}&to={today}").json()
    assert stats["totals"]["issued"] == 20
    for by in ("day", "store", "guide", "channel"):
        board = brand.admin("GET", f"/stats?from={yesterday}&to={today}&by={by}").json()
        assert board["totals"]["coupons_issued"] == 20, by
    store_rows = {r["key"]: r["coupons_issued"] for r in
                  brand.admin("GET", f"/stats?from={yesterday}&to={today}&by=store").json()["rows"]}
    assert store_rows.get("sz") == 20
    events = bus.events(brand.brand_id, "coupon.issued")
    assert sorted(e["detail"]["code"] for e in events) == sorted(codes)
    assert len({e["detail"]["event_id"] for e in events}) == 20
    assert all(e["detail"]["source"] == "campaign" and e["detail"]["template_id"] == template for e in events)
    # redeemable at the till by its code, once
    code = sorted(codes)[0]
    r = redeem(brand, "sz", code)
    assert r.status_code == 201, r.text
    assert redeem(brand, "sz", code).status_code == 409
    assert brand.admin("GET", f"/coupon-templates/{template}").json()["redeemed"] == 1


def test_the_members_limit_holds_across_campaigns_of_one_template(stack, brand):
    openids = add_members(brand, 6)
    grant_credits(brand, openids)
    grant_credits(brand, openids)                     # two credits each: two campaigns reach them
    template = make_template(brand, per_member_limit=1)["template_id"]
    first = create_campaign(brand, coupon_template_id=template)
    fire(stack, first)
    done(brand, first)
    second = create_campaign(brand, coupon_template_id=template)
    fire(stack, second)
    assert done(brand, second)["stats"]["sent"] == 6
    assert all(len(brand.member(openid=o)["coupons"]) == 1 for o in openids)
    listed = brand.admin("GET", f"/campaigns/{second['campaign_id']}/deliveries?state=sent&limit=50").json()
    assert {d["coupon"] for d in listed["deliveries"]} == {"none"}
    assert brand.admin("GET", f"/coupon-templates/{template}").json()["issued"] == 6


def test_a_template_with_a_total_stock_keeps_a_transaction_per_coupon_and_is_never_oversold(stack, brand):
    openids = add_members(brand, 12)
    grant_credits(brand, openids)
    template = make_template(brand, per_member_limit=1, total_stock=5)["template_id"]
    created = create_campaign(brand, coupon_template_id=template)
    fire(stack, created)
    assert done(brand, created)["stats"]["sent"] == 12
    holders = [o for o in openids if brand.member(openid=o)["coupons"]]
    view = brand.admin("GET", f"/coupon-templates/{template}").json()
    assert len(holders) == 5 and view["issued"] == 5 and view["remaining"] == 0
    assert table_kinds(brand.brand_id, f"B#{brand.brand_id}#ISSUE#campaign:") == 5


def test_a_retried_limit_count_and_a_retried_put_change_nothing(brand):
    from chalicelib.domain import coupons as rules
    from chalicelib.storage import campaign_coupons as campaign_coupon_store
    from chalicelib.storage import coupons as coupon_store
    from chalicelib.storage.models import MemberClaims
    b = brand.brand_id
    template = make_template(brand, per_member_limit=1)["template_id"]
    assert campaign_coupon_store.take_allowance(b, "m_1", template, 1, "cmp_a#once")
    assert campaign_coupon_store.take_allowance(b, "m_1", template, 1, "cmp_a#once")        # the same run's retry: counted once
    assert not campaign_coupon_store.take_allowance(b, "m_1", template, 1, "cmp_b#once")    # another run: at the limit
    assert MemberClaims.get(*campaign_coupon_store.claims_key(b, "m_1", template), consistent_read=True).claimed == 1
    t = coupon_store.get_template(b, template)
    now = datetime.now(timezone.utc)
    code = rules.derived_code(b"k", "cmp_a", "once", "m_1")
    made = lambda: coupon_store.new_coupon(b, t, member_id="m_1", code=code, now=now, source="campaign",
                                           retention_days=400, touch={"store_id": "sz"})
    assert campaign_coupon_store.put(made()).code == code
    r = redeem(brand, "sz", code)
    assert r.status_code == 201, r.text
    again = campaign_coupon_store.put(made())                                               # a late retry finds it, redeemed
    assert again.state == "redeemed" and coupon_store.get_coupon(b, code).state == "redeemed"
    other = coupon_store.new_coupon(b, t, member_id="m_2", code=code, now=now, source="campaign", retention_days=400)
    try:
        campaign_coupon_store.put(other)
        raise AssertionError("a code held by another member's coupon must not be taken over")
    except coupon_store.CodeTaken:
        pass


def test_closing_a_dead_claim_with_its_coupon_counts_it_in_the_close_transaction(brand, bus):
    """The close (storage.ledger.close) writes through the client: what the coupon adds (pynamodb
    items, Tx.raw_items) must commit with it, once, and its event reach the bus."""
    import time as clock
    from chalicelib.domain import scoreboard as score
    from chalicelib.storage import campaign_coupons as campaign_coupon_store
    from chalicelib.storage import coupons as coupon_store
    from chalicelib.storage import ledger as real
    b = brand.brand_id
    template = make_template(brand, per_member_limit=1)["template_id"]
    t = coupon_store.get_template(b, template)
    ledger = real.Ledger(b, "cmp_dead", "once")
    key = real.reach_key(b, "m_dead")
    mark = real.Mark("c", real.new_group(), clock.time() - 10, int(clock.time()))
    assert ledger.claim(real.Claim("m_dead", key, mark)) == "claimed"
    now = datetime.now(timezone.utc)
    from chalicelib.domain.coupons import derived_code
    final = real.Final("m_dead", "sent", coupon=derived_code(b"k", "cmp_dead", "once", "m_dead"))
    issued = [("m_dead", final.coupon, score.Keys("sz", None, "S1"), days()[1])]

    def extend(tx, outcome_key):
        campaign_coupon_store.add_issued(tx, b, t, issued, outcome_key, valid_until="2030-01-01T00:00:00Z", campaign_id="cmp_dead",
                         run_id="once", shard=0, now=now)
    assert ledger.close(key, mark.text(), final, now, extend=extend)
    assert not ledger.close(key, mark.text(), final, now, extend=extend)       # closed already: nothing again
    assert coupon_store.shard_issued(b, template, 1, consistent=True) == {0: 1}
    yesterday, today = days()
    board = brand.admin("GET", f"/stats?from={yesterday}&to={today}&by=store").json()
    assert board["totals"]["coupons_issued"] == 1
    events = [e for e in bus.events(b, "coupon.issued") if e["detail"]["member_id"] == "m_dead"]
    assert len(events) == 1 and events[0]["detail"]["code"] == final.coupon
