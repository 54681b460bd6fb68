"""The console's routes without a browser: the pages as served (types, caching, ETag, nothing outside
chalicelib/console/), the till's day of redemptions and the brand's coupon-template list."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.conftest import table_items

ROOT = Path(__file__).resolve().parents[2]


# ---- the pages -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, content_type, cache", [
    ("/console", "text/html; charset=utf-8", "no-cache"),
    ("/console/till", "text/html; charset=utf-8", "no-cache"),
    ("/console/dashboard", "text/html; charset=utf-8", "no-cache"),
    ("/console/guide", "text/html; charset=utf-8", "no-cache"),
    ("/console/till.js", "text/javascript; charset=utf-8", "no-cache"),
    ("/console/console.css", "text/css; charset=utf-8", "no-cache"),
    ("/console/uPlot.iife.min.js", "text/javascript; charset=utf-8", "public, max-age=86400"),
    ("/console/uPlot.min.css", "text/css; charset=utf-8", "public, max-age=86400"),
    ("/console/jsQR.js", "text/javascript; charset=utf-8", "public, max-age=86400"),
])
def test_pages_are_served_with_their_type_and_caching(api, path, content_type, cache):
    r = api.call("GET", path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == content_type
    assert r.headers["Cache-Control"] == cache
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    name = {"/console": "index.html", "/console/till": "till.html", "/console/dashboard": "dashboard.html",
            "/console/guide": "guide.html"}.get(
        path, path.rsplit("/", 1)[-1])
    assert r.text == (ROOT / "chalicelib" / "console" / name).read_text(encoding="utf-8")
    again = api.call("GET", path, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_pages_use_no_cdn_and_no_inline_script():
    """Brands deploy in China and tests run offline: every script and style is the package's own."""
    for page in (ROOT / "chalicelib" / "console").glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, page.name
        assert "<script>" not in text, page.name     # the CSP allows no inline script


@pytest.mark.parametrize("name", ["nothing-here.js", "..", "..%2Fapp.py", "%2e%2e%2fapp.py", "VENDORED.md",
                                  "console_pages.py", ".hidden.js", "a" * 70 + ".js"])
def test_nothing_outside_the_folder_or_of_another_type_is_served(api, name):
    r = api.call("GET", "/console/" + name)
    assert r.status_code == 404, (name, r.status_code, r.text[:200])
    assert r.json()["error"]["code"] in ("unknown_page", "not_found")


def test_importing_the_api_reads_no_page():
    """The console must not touch the API's cold start: nothing of it is loaded at import."""
    probe = ("import sys, app; print('chalicelib.console_pages' in sys.modules, "
             "'chalicelib.services.console_api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


# ---- the till's day ------------------------------------------------------------------------------

def _redeem(brand, code: str, key: str, store_id: str = "sz"):
    return brand.api.call("POST", f"/pos/{brand.brand_id}/stores/{store_id}/redemptions", brand.pos_keys[store_id],
                          {"code": code, "order_id": key, "order_amount_cents": 5000, "till_id": "t1"},
                          headers={"Idempotency-Key": key})


def _coupons(brand, count: int) -> list[str]:
    r = brand.admin("POST", "/coupon-templates", {"name": "10 off", "kind": "cash_off", "value": 1000,
                                                  "min_spend_cents": 0, "valid_days_after_claim": 30,
                                                  "total_stock": 100, "per_member_limit": count})
    assert r.status_code == 201, r.text
    session = brand.mp_session("o_console_day")
    codes = []
    for _ in range(count):
        c = brand.api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{r.json()['template_id']}/claim",
                           headers={"Authorization": f"Bearer {session}"})
        assert c.status_code == 201, c.text
        codes.append(c.json()["coupon"]["code"])
    return codes


def _day(brand, query: str = "", store_id: str = "sz", key: str | None = None):
    return brand.api.call("GET", f"/pos/{brand.brand_id}/stores/{store_id}/redemptions{query}",
                          key or brand.pos_keys[store_id])


def test_a_stores_day_lists_its_redemptions_newest_first_in_pages(brand):
    codes = _coupons(brand, 3)
    ids = []
    for i, code in enumerate(codes):
        r = _redeem(brand, code, f"order-{i}")
        assert r.status_code == 201, r.text
        ids.append(r.json()["redemption_id"])
    assert _redeem(brand, codes[0], "order-0").status_code == 201          # a replay adds no row
    r = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/redemptions/{ids[1]}/reversal", brand.pos_keys["sz"])
    assert r.status_code == 200, r.text

    day = _day(brand).json()
    assert day["timezone"] == "Asia/Shanghai" and day["store_id"] == "sz" and day["next_cursor"] is None
    rows = day["redemptions"]
    assert sorted(r["redemption_id"] for r in rows) == sorted(ids)
    assert [r["redeemed_at"] for r in rows] == sorted((r["redeemed_at"] for r in rows), reverse=True)
    by_id = {r["redemption_id"]: r for r in rows}
    assert by_id[ids[1]]["reversed_at"] is not None and by_id[ids[0]]["reversed_at"] is None
    assert {(r["code"], r["discount_cents"], r["order_amount_cents"], r["till_id"]) for r in rows} == \
        {(c, 1000, 5000, "t1") for c in codes}

    seen, cursor = [], None
    for _ in range(4):
        page = _day(brand, "?limit=1" + (f"&cursor={quote(cursor)}" if cursor else "")).json()
        seen += [r["redemption_id"] for r in page["redemptions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["redemption_id"] for r in rows]

    assert _day(brand, store_id="sh").json()["redemptions"] == []          # another store's day is its own
    assert _day(brand, "?day=2020-01-01").json()["redemptions"] == []


@pytest.mark.parametrize("query, code", [
    ("?day=2026-13-01", "invalid_day"), ("?day=yesterday", "invalid_day"), ("?day=２０２６-01-01", "invalid_day"),
    ("?limit=0", "invalid_limit"), ("?limit=201", "invalid_limit"), ("?limit=١", "invalid_limit"),
    ("?cursor=x", "invalid_cursor"), ("?cursor=2026-01-01T00:00:00Z%23B%23other", "invalid_cursor"),
    ("?store=sh", "unknown_parameter"),
])
def test_bad_day_queries_are_refused(shared_brand, query, code):
    before = table_items()
    r = _day(shared_brand, query)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert table_items() == before


def test_only_the_stores_own_key_reads_its_day(shared_brand, make_brand):
    other = make_brand("console")
    assert _day(shared_brand, key=shared_brand.pos_keys["sh"]).status_code == 403
    assert _day(shared_brand, key=shared_brand.admin_key).status_code == 403
    assert _day(shared_brand, key=other.pos_keys["sz"]).status_code == 403
    assert _day(shared_brand, key="sk_forged").status_code == 401


# ---- the templates list --------------------------------------------------------------------------

def test_the_brands_templates_list_newest_first_in_pages(brand, make_brand):
    made = []
    for i in range(3):
        r = brand.admin("POST", "/coupon-templates", {"name": f"t{i}", "kind": "percent_off", "value": 10 + i,
                                                      "min_spend_cents": 100 * i, "valid_days_after_claim": 7,
                                                      "total_stock": 50, "per_member_limit": 1})
        assert r.status_code == 201, r.text
        made.append(r.json()["template_id"])
    listed = brand.admin("GET", "/coupon-templates").json()
    assert {t["template_id"] for t in listed["templates"]} == set(made) and listed["next_cursor"] is None
    assert [t["created_at"] for t in listed["templates"]] == sorted((t["created_at"] for t in listed["templates"]),
                                                                    reverse=True)
    one = next(t for t in listed["templates"] if t["template_id"] == made[2])
    assert (one["name"], one["kind"], one["value"], one["min_spend_cents"], one["total_stock"]) == \
        ("t2", "percent_off", 12, 200, 50)
    seen, cursor = [], None
    for _ in range(5):
        page = brand.admin("GET", "/coupon-templates?limit=2" + (f"&cursor={quote(cursor)}" if cursor else "")).json()
        seen += [t["template_id"] for t in page["templates"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [t["template_id"] for t in listed["templates"]]
    other = make_brand("console")
    assert other.admin("GET", "/coupon-templates").json()["templates"] == []
    r = brand.api.call("GET", f"/admin/{brand.brand_id}/coupon-templates", other.admin_key)
    assert r.status_code == 403
    assert brand.admin("GET", "/coupon-templates?limit=500").json()["error"]["code"] == "invalid_limit"
    assert brand.admin("GET", "/coupon-templates?cursor=nope").json()["error"]["code"] == "invalid_cursor"


def test_every_till_refusal_has_its_chinese_words():
    """Each refusal the redemption route can give (chalicelib.domain.coupons) is shown in plain Chinese."""
    import re
    from chalicelib.domain.coupons import REFUSAL_STATUS
    text = (ROOT / "chalicelib" / "console" / "common.js").read_text(encoding="utf-8")
    words = dict(re.findall(r'"err\.([a-z_]+)": \["([^"]+)"', text))
    expected = {"already_redeemed": "已核销", "expired": "已过期", "not_yet_valid": "未到使用时间",
                "wrong_store": "不适用于本店", "min_spend_not_met": "未满最低消费", "unknown_code": "券码不存在"}
    assert set(REFUSAL_STATUS) <= set(words)
    assert {code: words[code] for code in expected} == expected
    for code in ("invalid_member_code", "too_many_unknown_codes", "idempotency_key_reused", "unknown_redemption",
                 "reversal_window_closed", "invalid_key", "missing_key", "forbidden"):
        assert re.search(r"[\u4e00-\u9fff]", words[code]), code
