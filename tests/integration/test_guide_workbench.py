"""The guide's workbench (issue 11 §3): WeCom login, the guide's own numbers and members, tags mirrored
to WeCom, and the leaderboard. Two guides of two stores; neither ever sees or changes the other's."""
from __future__ import annotations

import time
import uuid

import requests

from siyu_dev import phone
from tests.integration.conftest import table_items


def wecom_code(brand, **who) -> str:
    r = requests.post(f"{brand.stack.wechat_url}/__sim/wecom/codes",
                      json={"corp_id": brand.app("wecom")["corp_id"], **who}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["code"]


def guide_login(brand, userid: str, via: str = "oauth"):
    return brand.api.call("POST", f"/guide/{brand.brand_id}/login",
                          json_body={"code": wecom_code(brand, userid=userid), "via": via})


def guide_session(brand, userid: str) -> str:
    r = guide_login(brand, userid)
    assert r.status_code == 200, r.text
    return r.json()["session"]


def as_guide(brand, session: str, method: str, path: str, body=None, **kw):
    return brand.api.call(method, f"/guide/{brand.brand_id}{path}", session, body, **kw)


_clock = iter(range(10**9))


def wecom_event(brand, change: str, userid: str, external_userid: str, *, state: str | None = None,
                create_time: int | None = None):
    cfg = brand.app("wecom")
    at = create_time or int(time.time()) + next(_clock)
    if change == "add":
        msg = phone.wecom_add_external_contact(corp_id=cfg["corp_id"], user_id=userid,
                                               external_userid=external_userid, create_time=at, state=state)
    else:
        msg = phone.wecom_del_external_contact(corp_id=cfg["corp_id"], user_id=userid,
                                               external_userid=external_userid, create_time=at)
    r = brand.post_callback("wecom", msg)
    assert r.status_code == 200, r.text
    return msg


def second_guide(brand) -> None:
    r = brand.admin("POST", "/guides", {"guide_id": "g2", "store_id": "sh", "name": "Wang", "wecom_user_id": "wang"})
    assert r.status_code == 201, r.text
    r = brand.admin("POST", "/channels", {"scene": "S3", "store_id": "sh", "guide_id": "g2", "source": "counter"})
    assert r.status_code == 201, r.text


def seed(brand):
    """li (g1, sz): wm_a, wm_b by WeCom and o_x by the OA poster; wang (g2, sh): wm_c."""
    second_guide(brand)
    add_a = wecom_event(brand, "add", "li", "wm_a", state="S1")
    brand.post_callback("wecom", add_a)                              # WeChat's retry
    wecom_event(brand, "add", "li", "wm_b", state="S1")
    wecom_event(brand, "add", "wang", "wm_c", state="S3")
    wecom_event(brand, "add", "li", "wm_a")                          # a repeated add (no State): no new contact
    removal = wecom_event(brand, "del", "li", "wm_b")
    brand.post_callback("wecom", removal)                            # the removal's retry
    assert brand.subscribe("o_x", "S1").status_code == 200
    a = brand.member(external_userid="wm_a")["member_id"]
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/orders", brand.pos_keys["sz"],
                       {"order_id": "ga-1", "amount_cents": 12_300, "member_id": a},
                       headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return {name: brand.member(**q)["member_id"] for name, q in
            (("a", {"external_userid": "wm_a"}), ("b", {"external_userid": "wm_b"}),
             ("c", {"external_userid": "wm_c"}), ("x", {"openid": "o_x"}))}


def test_a_guide_sees_exactly_their_numbers_and_members(brand):
    ids = seed(brand)
    li, wang = guide_session(brand, "li"), guide_session(brand, "wang")

    me = as_guide(brand, li, "GET", "/me").json()
    assert me["guide"] == {"guide_id": "g1", "name": "Li", "wecom_user_id": "li"}
    assert me["store"] == {"store_id": "sz", "name": "Shenzhen 1", "city": "Shenzhen"}
    assert {k: me["figures"][k] for k in ("contacts", "contacts_added", "new_members", "lost_contacts",
                                          "converted_members", "orders", "gmv_cents", "coupons_redeemed")} == {
        "contacts": 1, "contacts_added": 2, "new_members": 3, "lost_contacts": 1, "converted_members": 1,
        "orders": 1, "gmv_cents": 12_300, "coupons_redeemed": 0}
    theirs = as_guide(brand, wang, "GET", "/me").json()["figures"]
    assert (theirs["contacts"], theirs["new_members"], theirs["lost_contacts"], theirs["orders"]) == (1, 1, 0, 0)
    # a range before anything happened: the period's figures are 0, current contacts stay
    old = as_guide(brand, li, "GET", "/me", params={"from": "2024-01-01", "to": "2024-01-31"}).json()["figures"]
    assert (old["contacts"], old["new_members"], old["orders"]) == (1, 0, 0)

    page = as_guide(brand, li, "GET", "/me/members").json()
    # newest first: joined_at has second precision, so members of one second follow their ids
    assert {m["member_id"] for m in page["members"]} == {ids["x"], ids["b"], ids["a"]}
    keys = [(m["joined_at"], m["member_id"]) for m in page["members"]]
    assert keys == sorted(keys, reverse=True)
    assert page["cursor"] is None
    card = next(m for m in page["members"] if m["member_id"] == ids["a"])
    assert (card["orders"], card["gmv_cents"], card["coupons"]) == (1, 12_300, [])
    assert card["last_touch"]["guide_id"] == "g1" and "poster" in card["tags"]
    assert [m["member_id"] for m in as_guide(brand, wang, "GET", "/me/members").json()["members"]] == [ids["c"]]
    # pages with a cursor cover the same members once each
    seen, cursor = [], None
    while True:
        r = as_guide(brand, li, "GET", "/me/members", params={"limit": "1", **({"cursor": cursor} if cursor else {})})
        seen += [m["member_id"] for m in r.json()["members"]]
        cursor = r.json()["cursor"]
        if cursor is None:
            break
    assert seen == [m["member_id"] for m in page["members"]]      # the one-page order (second ties by id)
    # a guide cannot widen the listing to another guide's members
    r = as_guide(brand, li, "GET", "/me/members", params={"guide_id": "g2"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_parameter"


def test_tags_are_the_guides_own_members_only_and_mirror_to_wecom(brand, stack):
    ids = seed(brand)
    li, wang = guide_session(brand, "li"), guide_session(brand, "wang")
    r = as_guide(brand, li, "POST", f"/me/members/{ids['a']}/tags", {"add": ["vip", "likes-tea"]})
    assert r.status_code == 200, r.text
    assert r.json()["wecom_mirrored"] is True and {"vip", "likes-tea"} <= set(r.json()["tags"])
    marks = requests.get(f"{stack.wechat_url}/__sim/wecom/tags", timeout=10).json()
    assert marks["li|wm_a"] == ["likes-tea", "vip"]
    r = as_guide(brand, li, "POST", f"/me/members/{ids['a']}/tags", {"remove": ["likes-tea"]})
    assert "likes-tea" not in r.json()["tags"]
    assert requests.get(f"{stack.wechat_url}/__sim/wecom/tags", timeout=10).json()["li|wm_a"] == ["vip"]
    # o_x joined by the OA: tagged in siyu, nothing to mirror
    r = as_guide(brand, li, "POST", f"/me/members/{ids['x']}/tags", {"add": ["vip"]})
    assert r.status_code == 200 and r.json()["wecom_mirrored"] is None
    tagged = as_guide(brand, li, "GET", "/me/members", params={"tag": "vip"}).json()["members"]
    assert {m["member_id"] for m in tagged} == {ids["x"], ids["a"]}
    keys = [(m["joined_at"], m["member_id"]) for m in tagged]
    assert keys == sorted(keys, reverse=True)       # newest first; members of one second by id

    before = brand.member(external_userid="wm_a")["tags"]
    for who, member in ((wang, ids["a"]), (li, ids["c"]), (li, "m_nosuchmember00000")):
        r = as_guide(brand, who, "POST", f"/me/members/{member}/tags", {"add": ["stolen"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_member", r.text
    assert brand.member(external_userid="wm_a")["tags"] == before
    assert "stolen" not in brand.member(external_userid="wm_c")["tags"]
    # the planner's tag index (storage.audience) moved with every change a guide made, and only then
    assert indexed(brand, "vip") >= {ids["a"], ids["x"]}
    assert ids["a"] not in indexed(brand, "likes-tea") and indexed(brand, "stolen") == set()


def indexed(brand, tag: str) -> set[str]:
    from chalicelib.domain.members import AUDIENCE_SHARDS
    from chalicelib.storage.audience import tag_partition
    from chalicelib.storage.models import TagEntry
    return {e.member_id for shard in range(AUDIENCE_SHARDS)
            for e in TagEntry.query(tag_partition(brand.brand_id, tag, shard), consistent_read=True)}


def test_login_refusals(brand):
    second_guide(brand)
    r = guide_login(brand, "li", via="miniprogram")
    assert r.status_code == 200 and r.json()["guide_id"] == "g1" and r.json()["store_id"] == "sz"
    items = table_items()
    r = guide_login(brand, "stranger")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_guide"
    code = wecom_code(brand, external_userid="wm_customer")          # a customer, not staff
    r = brand.api.call("POST", f"/guide/{brand.brand_id}/login", json_body={"code": code})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_guide"
    code = wecom_code(brand, userid="li")
    assert brand.api.call("POST", f"/guide/{brand.brand_id}/login", json_body={"code": code}).status_code == 200
    r = brand.api.call("POST", f"/guide/{brand.brand_id}/login", json_body={"code": code})
    assert r.status_code == 401 and r.json()["error"]["code"] == "code_used"
    r = brand.api.call("POST", f"/guide/{brand.brand_id}/login", json_body={"code": "nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_code"
    for bad in ({}, {"code": ""}, {"code": 5}, {"code": "x", "via": "sms"}):
        r = brand.api.call("POST", f"/guide/{brand.brand_id}/login", json_body=bad)
        assert r.status_code == 400, r.text
    assert table_items() == items
    # a shopper's session is no guide session, and a guide's is no shopper's
    shopper = brand.mp_session("o_shopper")
    r = as_guide(brand, shopper, "GET", "/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_session"
    li = guide_session(brand, "li")
    assert brand.api.call("GET", f"/mp/{brand.brand_id}/me/coupons", li).status_code == 401
    assert as_guide(brand, None, "GET", "/me").status_code == 401
    r = as_guide(brand, li, "GET", "/me", params={"from": "2025-13-01", "to": "2025-01-02"})
    assert r.status_code == 400


def test_the_leaderboard_ranks_guides_by_metric_and_store(brand):
    seed(brand)
    board = brand.admin("GET", "/guides/leaderboard", params={"metric": "new_members"}).json()
    assert [(r["rank"], r["guide_id"], r["value"]) for r in board["rows"]] == [(1, "g1", 3), (2, "g2", 1)]
    board = brand.admin("GET", "/guides/leaderboard", params={"metric": "gmv_cents", "store_id": "sh"}).json()
    assert [(r["guide_id"], r["value"]) for r in board["rows"]] == [("g2", 0)]
    board = brand.admin("GET", "/guides/leaderboard", params={"metric": "execution_rate"}).json()
    assert [r["value"] for r in board["rows"]] == [None, None]
    r = brand.admin("GET", "/guides/leaderboard", params={"metric": "charm"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_metric"
    li = guide_session(brand, "li")
    assert brand.api.call("GET", f"/admin/{brand.brand_id}/guides/leaderboard", li).status_code == 401
