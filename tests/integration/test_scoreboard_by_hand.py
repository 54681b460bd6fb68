"""Issue 9's done-when test: every scoreboard metric, by=day|store|guide|channel, and a coupon
template's stats by=day|store, against numbers worked out by hand from the story below.

The brand: stores sz and sh; guides g1 (sz) and g2 (sh); channels S1 (sz, g1), S2 (sh, no guide),
S3 (sh, g2). T is today, Y yesterday (Asia/Shanghai). Every member joins on T.

Members (first touch = their acquisition cohort's keys):
    member  joins through        store  guide  channel  coupon T1 (10 yuan off)
    A       S1 (mini-program)    sz     g1     S1       claimed; redeemed at sz, carried by o2
    B       S2                   sh     -      S2       claimed; redeemed at sh and reversed (nets out)
    C       S3                   sh     g2     S3       claimed; redeemed at sh, carried by o4
    D       S1                   sz     g1     S1       -
    E       claims T1, no code   -      -      -        claimed, never redeemed

Orders and refunds. "credited" is where activity lands: store = the order's store; guide = the
order's guide_id, else the member's first-touch guide; channel = the member's first-touch channel.
    order  how                       day  member (#)  credited (store, guide, channel)  amount
    o1     POS sz                    T    walk-in     sz, -, -                           2,500
    o2     POS sz, sent twice        T    A (#1)      sz, g1, S1                        10,000   carries A's T1
    o3     POS sh, guide_id g2       T    A (#2)      sh, g2, S1                         4,000
    o4     POS sh                    T    C (#1)      sh, g2, S3                         3,000   carries C's T1
    o5     import online (openid),   Y    B (#1)      -, -, S2                           6,000
           imported twice
    o6     import online             Y    walk-in     -, -, -                            1,500
    o7     import at sz (member_id), T    C (#2)      sz, g1, S3                         2,000
           guide_id g1
    r2     POS refund of o2 at sz    T    A           sz, g1, S1 (o2's)                 -4,000   T1's order GMV too
    r5     import refund of o5       T    B           -, -, S2 (o5's)                   -1,000

Cohorts (on T, by first touch): A: 2 orders, 14,000 - 4,000 = 10,000; B: 1 order, 6,000 - 1,000 =
5,000; C: 2 orders, 5,000; D and E: none.

Hand working, activity (orders / gmv net / refunded / member orders / member gmv net / first / repeat)
and cohort (new / converted / repeat / cohort gmv) and coupons (issued / redeemed / discount):
    by=day     activity                                     cohort              coupons
    Y          o5 o6: 2 / 7,500 / 0 / 1 / 6,000 / 1 / 0      -                   -
    T          o1 o2 o3 o4 o7 r2 r5: 5 / 21,500-5,000=16,500  ABCDE: 5 / 3 / 2 /  ABCE issued 4;
               / 5,000 / 4 / 19,000-5,000=14,000 / 2 / 2     10+5+5=20,000       A, C redeemed: 2 / 2,000
    by=store
    sz         o1 o2 o7 r2: 3 / 14,500-4,000=10,500 / 4,000  A D: 2 / 1 / 1 /    issued A: 1; redeemed
               / 2 / 12,000-4,000=8,000 / 1 / 1              10,000              at sz A: 1 / 1,000
    sh         o3 o4: 2 / 7,000 / 0 / 2 / 7,000 / 1 / 1      B C: 2 / 2 / 1 /    issued B C: 2; at sh C
                                                             10,000              (B's reversed): 1 / 1,000
    -          o5 o6 r5: 2 / 7,500-1,000=6,500 / 1,000 / 1   E: 1 / 0 / 0 / 0    issued E: 1
               / 5,000 / 1 / 0
    by=guide
    g1         o2 o7 r2: 2 / 12,000-4,000=8,000 / 4,000 / 2  A D: 2 / 1 / 1 /    A: 1 / 1 / 1,000
               / 8,000 / 1 / 1                               10,000
    g2         o3 o4: 2 / 7,000 / 0 / 2 / 7,000 / 1 / 1      C: 1 / 1 / 1 /      C: 1 / 1 / 1,000
                                                             5,000
    -          o1 o5 o6 r5: 3 / 10,000-1,000=9,000 / 1,000   B E: 2 / 1 / 0 /    B E: 2 / 0 / 0
               / 1 / 5,000 / 1 / 0                           5,000
    by=channel
    S1         o2 o3 r2: 2 / 14,000-4,000=10,000 / 4,000     A D: 2 / 1 / 1 /    A: 1 / 1 / 1,000
               / 2 / 10,000 / 1 / 1                          10,000
    S2         o5 r5: 1 / 6,000-1,000=5,000 / 1,000 / 1      B: 1 / 1 / 0 /      B: 1 / 0 / 0
               / 5,000 / 1 / 0                               5,000
    S3         o4 o7: 2 / 5,000 / 0 / 2 / 5,000 / 1 / 1      C: 1 / 1 / 1 /      C: 1 / 1 / 1,000
                                                             5,000
    -          o1 o6: 2 / 4,000 / 0 / 0 / 0 / 0 / 0          E: 1 / 0 / 0 / 0    E: 1 / 0 / 0
    totals     7 / 24,000 / 5,000 / 5 / 20,000 / 3 / 2       5 / 3 / 2 / 20,000  4 / 2 / 2,000

Rates (4 places; None when the denominator is 0): conversion = converted/new, repeat = repeat/
converted, member_share = member gmv/gmv, redemption = redeemed/issued. E.g. totals: 3/5 = 0.6,
2/3 = 0.6667, 20,000/24,000 = 0.8333, 2/4 = 0.5; by=store sz: 1/2, 1/1, 8,000/10,500 = 0.7619, 1/1.

Template T1 (issued by the member's first-touch store, redeemed by the redeeming store, order GMV by
the order's store, net of the refunds of those orders):
    by=day   T: issued 4, redeemed 2, discount 2,000, order GMV o2 + o4 - r2 = 10,000 + 3,000 - 4,000
             = 9,000, rate 2/4
    by=store sz: issued 1 (A), redeemed 1, 1,000, GMV 10,000 - 4,000 = 6,000, rate 1/1
             sh: issued 2 (B, C), redeemed 1 (C; B's reversed), 1,000, GMV 3,000, rate 1/2
             - : issued 1 (E), nothing else, rate 0/1
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from chalicelib.domain.scoreboard import METRICS
from tests.integration.conftest import new_brand
from tests.integration.test_coupons import claim, make_template, redeem
from tests.integration.test_orders import member_code, order, refund

TZ = ZoneInfo("Asia/Shanghai")
RATES = ("conversion_rate", "repeat_rate", "member_share", "redemption_rate")


def ok(r, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def scan(brand, name: str, scene: str) -> str:
    session = brand.mp_session(f"o_{name}", f"u_{name}")
    assert ok(brand.api.call("POST", f"/mp/{brand.brand_id}/scan", session, {"scene": scene}), 200)["created"]
    return session


@pytest.fixture(scope="module")
def story(stack, api):
    brand = new_brand(stack, api, "hand")
    ok(brand.admin("POST", "/guides", {"guide_id": "g2", "store_id": "sh", "name": "Wang"}))
    ok(brand.admin("POST", "/channels", {"scene": "S3", "store_id": "sh", "guide_id": "g2", "source": "guide_card"}))
    a, b, c, _d = scan(brand, "a", "S1"), scan(brand, "b", "S2"), scan(brand, "c", "S3"), scan(brand, "d", "S1")
    e = brand.mp_session("o_e", "u_e")
    t1 = make_template(brand)["template_id"]
    codes = {name: ok(claim(brand, s, t1))["coupon"]["code"] for name, s in (("a", a), ("b", b), ("c", c), ("e", e))}
    c_id = brand.member(openid="o_c")["member_id"]
    now = datetime.now(timezone.utc)
    yesterday = (now - timedelta(days=1)).isoformat()

    rdm_a = ok(redeem(brand, "sz", codes["a"], amount=10_000, order="o2"))["redemption_id"]
    rdm_b = ok(redeem(brand, "sh", codes["b"], amount=3000, order="ob"))["redemption_id"]
    ok(api.call("POST", f"/pos/{brand.brand_id}/stores/sh/redemptions/{rdm_b}/reversal", brand.pos_keys["sh"]), 200)
    rdm_c = ok(redeem(brand, "sh", codes["c"], amount=3000, order="o4"))["redemption_id"]

    ok(order(brand, {"order_id": "o1", "amount_cents": 2500}, store="sz"))
    o2 = {"order_id": "o2", "amount_cents": 10_000, "member_code": member_code(brand, a), "redemption_ids": [rdm_a]}
    first = ok(order(brand, o2, store="sz", key="till-o2"))
    assert ok(order(brand, o2, store="sz", key="till-o2")) == first and first["member_order_number"] == 1
    assert ok(order(brand, {"order_id": "o3", "amount_cents": 4000, "guide_id": "g2",
                            "member_code": member_code(brand, a)}, store="sh"))["member_order_number"] == 2
    ok(order(brand, {"order_id": "o4", "amount_cents": 3000, "member_code": member_code(brand, c),
                     "redemption_ids": [rdm_c]}, store="sh"))
    imported = {"orders": [{"order_id": "o5", "amount_cents": 6000, "store_id": None, "openid": "o_b",
                            "occurred_at": yesterday},
                           {"order_id": "o6", "amount_cents": 1500, "store_id": None, "occurred_at": yesterday}]}
    assert ok(brand.admin("POST", "/order-imports", imported), 200)["accepted"] == 2
    assert ok(brand.admin("POST", "/order-imports", imported), 200)["duplicates"] == 2
    o7 = {"orders": [{"order_id": "o7", "amount_cents": 2000, "store_id": "sz", "member_id": c_id, "guide_id": "g1"}],
          "refunds": [{"order_id": "o5", "refund_id": "r5", "amount_cents": 1000}]}
    answer = ok(brand.admin("POST", "/order-imports", o7), 200)
    assert answer["accepted"] == 1 and answer["refunds"]["accepted"] == 1, answer
    ok(refund(brand, "o2", "r2", 4000, store="sz"))
    today = now.astimezone(TZ).date()
    return brand, t1, today.isoformat(), (today - timedelta(days=1)).isoformat()


def row(new=0, conv=0, rep=0, cohort=0, orders=0, gmv=0, refunded=0, m_orders=0, m_gmv=0, first=0, repeat=0,
        issued=0, redeemed=0, discount=0, rates=(None, None, None, None)) -> dict:
    """One row as worked out by hand, in the order of the table above."""
    return {"new_members": new, "converted_members": conv, "repeat_members": rep, "cohort_gmv_cents": cohort,
            "orders": orders, "gmv_cents": gmv, "refunded_cents": refunded, "member_orders": m_orders,
            "member_gmv_cents": m_gmv, "first_orders": first, "repeat_orders": repeat, "coupons_issued": issued,
            "coupons_redeemed": redeemed, "discount_cents": discount, **dict(zip(RATES, rates))}


TOTALS = row(5, 3, 2, 20_000, 7, 24_000, 5000, 5, 20_000, 3, 2, 4, 2, 2000, rates=(0.6, 0.6667, 0.8333, 0.5))

BY_HAND = {
    "day": {
        "Y": row(orders=2, gmv=7500, m_orders=1, m_gmv=6000, first=1, rates=(None, None, 0.8, None)),
        "T": row(5, 3, 2, 20_000, 5, 16_500, 5000, 4, 14_000, 2, 2, 4, 2, 2000, rates=(0.6, 0.6667, 0.8485, 0.5)),
    },
    "store": {
        "sz": row(2, 1, 1, 10_000, 3, 10_500, 4000, 2, 8000, 1, 1, 1, 1, 1000, rates=(0.5, 1.0, 0.7619, 1.0)),
        "sh": row(2, 2, 1, 10_000, 2, 7000, 0, 2, 7000, 1, 1, 2, 1, 1000, rates=(1.0, 0.5, 1.0, 0.5)),
        None: row(1, 0, 0, 0, 2, 6500, 1000, 1, 5000, 1, 0, 1, 0, 0, rates=(0.0, None, 0.7692, 0.0)),
    },
    "guide": {
        "g1": row(2, 1, 1, 10_000, 2, 8000, 4000, 2, 8000, 1, 1, 1, 1, 1000, rates=(0.5, 1.0, 1.0, 1.0)),
        "g2": row(1, 1, 1, 5000, 2, 7000, 0, 2, 7000, 1, 1, 1, 1, 1000, rates=(1.0, 1.0, 1.0, 1.0)),
        None: row(2, 1, 0, 5000, 3, 9000, 1000, 1, 5000, 1, 0, 2, 0, 0, rates=(0.5, 0.0, 0.5556, 0.0)),
    },
    "channel": {
        "S1": row(2, 1, 1, 10_000, 2, 10_000, 4000, 2, 10_000, 1, 1, 1, 1, 1000, rates=(0.5, 1.0, 1.0, 1.0)),
        "S2": row(1, 1, 0, 5000, 1, 5000, 1000, 1, 5000, 1, 0, 1, 0, 0, rates=(1.0, 0.0, 1.0, 0.0)),
        "S3": row(1, 1, 1, 5000, 2, 5000, 0, 2, 5000, 1, 1, 1, 1, 1000, rates=(1.0, 1.0, 1.0, 1.0)),
        None: row(1, 0, 0, 0, 2, 4000, 0, 0, 0, 0, 0, 1, 0, 0, rates=(0.0, None, 0.0, 0.0)),
    },
}


def test_the_hand_table_adds_up():
    """The hand working itself: each dimension's rows sum to the same totals (a typo in one row shows)."""
    for by, rows in BY_HAND.items():
        summed = {name: sum(r[name] for r in rows.values()) for name in METRICS}
        assert summed == {name: TOTALS[name] for name in METRICS}, by


@pytest.mark.parametrize("by", ["day", "store", "guide", "channel"])
def test_every_metric_by_hand(story, by):
    brand, _, today, yesterday = story
    answer = ok(brand.admin("GET", f"/stats?from={yesterday}&to={today}&by={by}"), 200)
    assert (answer["from"], answer["to"], answer["by"], answer["timezone"]) == (yesterday, today, by, "Asia/Shanghai")
    expected = BY_HAND[by]
    if by == "day":
        expected = {yesterday: expected["Y"], today: expected["T"]}
    got = {r["key"]: {k: v for k, v in r.items() if k != "key"} for r in answer["rows"]}
    assert got == expected
    assert answer["totals"] == TOTALS
    assert [r["key"] for r in answer["rows"]] == sorted(expected, key=lambda k: (k is None, k or ""))


def test_one_day_alone(story):
    """Y alone: its two online orders, no one joined then (no conversion to speak of)."""
    brand, _, _, yesterday = story
    answer = ok(brand.admin("GET", f"/stats?from={yesterday}&to={yesterday}&by=channel"), 200)
    assert answer["rows"] == [
        {"key": "S2", **row(orders=1, gmv=6000, m_orders=1, m_gmv=6000, first=1, rates=(None, None, 1.0, None))},
        {"key": None, **row(orders=1, gmv=1500, rates=(None, None, 0.0, None))}]


def test_the_templates_stats_by_hand(story):
    """T1's order GMV is net of r2, the refund of o2, which carried A's redemption."""
    brand, t1, today, yesterday = story
    path = f"/coupon-templates/{t1}/stats"
    by_day = ok(brand.admin("GET", f"{path}?by=day&from={yesterday}&to={today}"), 200)
    assert by_day["rows"] == [{"key": today, "issued": 4, "redeemed": 2, "discount_cents": 2000,
                               "order_gmv_cents": 9000, "redemption_rate": 0.5}]
    by_store = ok(brand.admin("GET", f"{path}?by=store&from={yesterday}&to={today}"), 200)
    assert by_store["rows"] == [
        {"key": "sh", "issued": 2, "redeemed": 1, "discount_cents": 1000, "order_gmv_cents": 3000,
         "redemption_rate": 0.5},
        {"key": "sz", "issued": 1, "redeemed": 1, "discount_cents": 1000, "order_gmv_cents": 6000,
         "redemption_rate": 1.0},
        {"key": None, "issued": 1, "redeemed": 0, "discount_cents": 0, "order_gmv_cents": 0,
         "redemption_rate": 0.0}]
    assert by_store["totals"] == by_day["totals"] == {"issued": 4, "redeemed": 2, "discount_cents": 2000,
                                                      "order_gmv_cents": 9000, "redemption_rate": 0.5}


def test_the_order_keeps_its_templates_for_its_refunds(story):
    """What makes the refund's netting possible without a read: the order remembers T1."""
    from chalicelib.storage.models import Order
    from chalicelib.storage.orders import order_key
    brand, t1 = story[0], story[1]
    assert Order.get(*order_key(brand.brand_id, "o2")).template_ids == [t1]
    assert Order.get(*order_key(brand.brand_id, "o1")).template_ids is None


def test_a_refund_dated_before_its_order_is_refused_and_counts_nothing(make_brand):
    """An imported refund's day is where the scoreboard takes the sales off: never before the sale."""
    brand = make_brand("refund-day")
    now = datetime.now(timezone.utc)
    ok(brand.admin("POST", "/order-imports", {"orders": [
        {"order_id": "late", "amount_cents": 5000, "store_id": "sz", "occurred_at": now.isoformat()}]}), 200)
    before = (now - timedelta(days=2)).isoformat()
    answer = ok(brand.admin("POST", "/order-imports", {"orders": [{"order_id": "late", "amount_cents": 5000,
                                                                   "store_id": "sz", "occurred_at": now.isoformat()}],
                                                       "refunds": [{"order_id": "late", "refund_id": "early",
                                                                    "amount_cents": 100, "occurred_at": before}]}),
                200)
    assert [r["code"] for r in answer["refunds"]["rejected"]] == ["invalid_occurred_at"], answer
    first, last = (now - timedelta(days=3)).astimezone(TZ).date(), now.astimezone(TZ).date()
    totals = ok(brand.admin("GET", f"/stats?from={first}&to={last}&by=day"), 200)["totals"]
    assert (totals["orders"], totals["gmv_cents"], totals["refunded_cents"]) == (1, 5000, 0)
    later = {"order_id": "late", "refund_id": "ontime", "amount_cents": 100, "occurred_at": now.isoformat()}
    assert ok(brand.admin("POST", "/order-imports", {"refunds": [later]}), 200)["refunds"]["accepted"] == 1


def test_an_import_of_refunds_alone_and_an_empty_import(make_brand):
    """An ERP sends a day's refunds on their own, after the orders; an import of nothing is a 400."""
    brand = make_brand("refunds-only")
    ok(brand.admin("POST", "/order-imports", {"orders": [{"order_id": "x", "amount_cents": 900, "store_id": "sh"}]}),
       200)
    answer = ok(brand.admin("POST", "/order-imports",
                            {"refunds": [{"order_id": "x", "refund_id": "rx", "amount_cents": 300}]}), 200)
    assert (answer["accepted"], answer["refunds"]["accepted"]) == (0, 1), answer
    today = datetime.now(TZ).date().isoformat()
    rows = ok(brand.admin("GET", f"/stats?from={today}&to={today}&by=store"), 200)["rows"]
    assert [(r["key"], r["gmv_cents"], r["refunded_cents"]) for r in rows] == [("sh", 600, 300)]
    for empty in ({}, {"orders": [], "refunds": []}):
        r = brand.admin("POST", "/order-imports", empty)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_orders", r.text
