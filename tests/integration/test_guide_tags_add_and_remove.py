"""Regression (found by tests/integration/test_contract_fuzz.py with the documented example): a guide's
tag change that both adds and removes was a 500, DynamoDB refusing ADD and DELETE of `tags` in one
update expression. It now changes both, the planner's tag index with them, and a refusal still
changes nothing."""
from __future__ import annotations

from tests.integration.conftest import table_items
from tests.integration.test_guide_workbench import as_guide, guide_session, indexed, second_guide


def test_one_change_adds_and_removes_tags_and_their_index_entries(brand):
    assert brand.subscribe("o_tagged", "S1").status_code == 200       # S1 is li's (g1) channel
    member = brand.member(openid="o_tagged")["member_id"]
    li = guide_session(brand, "li")
    r = as_guide(brand, li, "POST", f"/me/members/{member}/tags", {"add": ["new", "tea"]})
    assert r.status_code == 200, r.text
    r = as_guide(brand, li, "POST", f"/me/members/{member}/tags", {"add": ["vip"], "remove": ["new"]})
    assert r.status_code == 200, r.text
    assert {"vip", "tea"} <= set(r.json()["tags"]) and "new" not in r.json()["tags"]
    stored = set(brand.member(openid="o_tagged")["tags"])
    assert {"vip", "tea"} <= stored and "new" not in stored
    assert member in indexed(brand, "vip") and member in indexed(brand, "tea")
    assert member not in indexed(brand, "new")
    # the same change again (a retry) changes nothing more
    r = as_guide(brand, li, "POST", f"/me/members/{member}/tags", {"add": ["vip"], "remove": ["new"]})
    assert r.status_code == 200 and set(brand.member(openid="o_tagged")["tags"]) == stored

    # another guide's add-and-remove on this member: 404, and nothing changed (not even the removal)
    second_guide(brand)
    wang = guide_session(brand, "wang")
    items = table_items()
    r = as_guide(brand, wang, "POST", f"/me/members/{member}/tags", {"add": ["x"], "remove": ["tea"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_member"
    assert set(brand.member(openid="o_tagged")["tags"]) == stored and member in indexed(brand, "tea")
    assert table_items() == items
