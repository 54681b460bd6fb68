"""`make run`'s month of history (siyu_dev.history.seed) written into a brand set up as the demo brand
is, and `python -m siyu_dev order` against it: the scoreboard shows what the story holds, and the
command prints the figures its order moved."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from siyu_dev import history
from siyu_dev.__main__ import DEMO_CHANNELS, DEMO_GUIDES, DEMO_STORES
from tests.integration.conftest import brand_body

ROOT = Path(__file__).resolve().parents[2]
DAYS = 6


def ok(r, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(scope="module")
def seeded(stack, api):
    """A brand with the demo brand's stores, guide and codes, and DAYS days of its history."""
    brand_id = f"hist-{datetime.now().microsecond}"
    body = brand_body(brand_id)
    admin_key = ok(api.call("POST", "/admin/brands", stack.platform_key, body))["admin_key"]
    pos_keys = {s["store_id"]: ok(api.call("POST", f"/admin/{brand_id}/stores", admin_key, s))["pos_key"]
                for s in DEMO_STORES}
    for path, rows in (("guides", DEMO_GUIDES), ("channels", DEMO_CHANNELS)):
        for row in rows:
            ok(api.call("POST", f"/admin/{brand_id}/{path}", admin_key, row))
    today = datetime.now(history.TZ).date()
    summary = history.seed(brand_id, today=today, days=DAYS)
    state = {"api_url": stack.api_url, "aws_url": stack.aws_url, "wechat_url": stack.wechat_url,
             "platform_key": stack.platform_key, "brand": body, "admin_key": admin_key, "pos_keys": pos_keys,
             "history": summary}
    return api, state, today


def stats(api, state, first: date, last: date, by: str) -> dict:
    return ok(api.call("GET", f"/admin/{state['brand']['brand_id']}/stats?from={first}&to={last}&by={by}",
                       state["admin_key"]), 200)


def test_the_scoreboard_shows_the_story(seeded):
    api, state, today = seeded
    days = history.plan(today, DAYS)
    summary = state["history"]
    orders = [o for d in days for o in d.orders]
    refunds = [r for d in days for r in d.refunds]
    assert (summary["from"], summary["to"]) == (days[0].day.isoformat(), (today - timedelta(days=1)).isoformat())
    assert (summary["members"], summary["orders"], summary["refunds"], summary["coupons"], summary["redeemed"]) == (
        sum(len(d.joins) for d in days), len(orders), len(refunds), sum(len(d.coupons) for d in days),
        sum(len(d.redeem) for d in days))
    answer = stats(api, state, days[0].day, today, "channel")
    totals = answer["totals"]
    assert (totals["new_members"], totals["orders"], totals["member_orders"], totals["coupons_issued"],
            totals["coupons_redeemed"]) == (summary["members"], len(orders), sum("openid" in o for o in orders),
                                            summary["coupons"], summary["redeemed"])
    assert totals["refunded_cents"] == sum(r["amount_cents"] for r in refunds)
    assert totals["gmv_cents"] == sum(o["amount_cents"] for o in orders) - totals["refunded_cents"]
    scenes = {m.scene for d in days for m in d.joins}
    assert {r["key"] for r in answer["rows"]} >= scenes
    per_day = {r["key"]: r for r in stats(api, state, days[0].day, today, "day")["rows"]}
    for d in days:
        assert per_day[d.day.isoformat()]["orders"] == len(d.orders)
        assert per_day[d.day.isoformat()]["new_members"] == len(d.joins)


def test_order_prints_the_figures_its_order_moved(seeded, tmp_path):
    api, state, today = seeded
    state_file = tmp_path / "demo.json"
    state_file.write_text(json.dumps(state))
    first = today - timedelta(days=30)
    before = stats(api, state, first, today, "store")["rows"]
    done = subprocess.run([sys.executable, "-m", "siyu_dev", "order", "--amount", "4200"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "SIYU_LOCAL_STATE": str(state_file)})
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"member_order_number": 2' in done.stdout          # the history's once-buyer buys again
    after = stats(api, state, first, today, "store")["rows"]
    sz_before = next(r for r in before if r["key"] == "sz-futian")
    sz_after = next(r for r in after if r["key"] == "sz-futian")
    assert (sz_after["orders"], sz_after["gmv_cents"]) == (sz_before["orders"] + 1, sz_before["gmv_cents"] + 4200)
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("by=store sz-futian"))
    assert f"orders {sz_before['orders']:,} → {sz_after['orders']:,}" in line
    assert f"gmv_cents {sz_before['gmv_cents']:,} → {sz_after['gmv_cents']:,}" in line
    assert "repeat_orders" in line and any(line.strip().startswith("totals") for line in done.stdout.splitlines())


def test_order_waits_for_the_history_then_says_why_it_gave_up(seeded, tmp_path):
    _, state, _ = seeded
    state_file = tmp_path / "demo.json"
    state_file.write_text(json.dumps({k: v for k, v in state.items() if k != "history"}))
    done = subprocess.run([sys.executable, "-m", "siyu_dev", "order", "--wait", "1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "SIYU_LOCAL_STATE": str(state_file)})
    assert done.returncode == 1 and "the demo history is not written after 1 s" in done.stderr
    assert "Traceback" not in done.stderr
