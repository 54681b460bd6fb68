"""Printable codes as deployed: the layer built from requirements.txt makes the PDF sheet (reportlab,
Pillow and the built-in Chinese CID font) and the API function serves it as binary; the mint worker
mints a package-code batch the API queued."""
from __future__ import annotations

import base64
import uuid

import pytest

from tests.lambda_smoke.test_deployed_functions import AES, _run_queue, assert_clean, call, json_of

BRAND = f"sheets-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sheets_api(start_function, stack):
    # a function of its own: showqrcode's host (mp.weixin.qq.com) is the simulator here too
    return start_function("siyu-api-sheets", "app.app", memory=512, timeout=10,
                          SIYU_SHOWQRCODE_BASE_URL=stack.wechat_url)


@pytest.fixture(scope="module")
def admin_key(sheets_api, stack) -> str:
    body = {"brand_id": BRAND, "name": "Sheets", "timezone": "Asia/Shanghai",
            "wechat": {"oa": {"app_id": f"wxoa{BRAND.replace('-', '')}", "app_secret": "oa-secret",
                              "token": "oaToken123", "encoding_aes_key": AES}}}
    r = call(sheets_api, "POST", "/admin/brands", "/admin/brands", key=stack.platform_key, json_body=body)
    assert r["statusCode"] == 201, r
    key = json_of(r)["admin_key"]
    for resource, what, fields in (
            ("/admin/{brand_id}/stores", "stores", {"store_id": "sz", "name": "深圳一店"}),
            ("/admin/{brand_id}/guides", "guides", {"guide_id": "g1", "store_id": "sz", "name": "李娜"}),
            ("/admin/{brand_id}/channels", "channels", {"scene": "S1", "store_id": "sz", "guide_id": "g1"})):
        r = call(sheets_api, "POST", resource, f"/admin/{BRAND}/{what}", key=key, json_body=fields,
                 path_params={"brand_id": BRAND})
        assert r["statusCode"] == 201, r
    return key


def test_a_stores_code_sheet_is_a_pdf_with_chinese_text_served_as_binary(sheets_api, admin_key):
    key = admin_key
    r = call(sheets_api, "GET", "/admin/{brand_id}/stores/{store_id}/codes.pdf", f"/admin/{BRAND}/stores/sz/codes.pdf",
             key=key, path_params={"brand_id": BRAND, "store_id": "sz"}, query={"app": "oa"},
             headers={"Accept": "application/pdf"})
    assert r["statusCode"] == 200, r
    assert r["headers"]["Content-Type"] == "application/pdf" and r["isBase64Encoded"]
    pdf = base64.b64decode(r["body"])
    assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    assert_clean(sheets_api)


def test_the_mint_worker_mints_the_batch_the_api_queued(sheets_api, admin_key, start_function, stack):
    r = call(sheets_api, "POST", "/admin/{brand_id}/coupon-templates", f"/admin/{BRAND}/coupon-templates",
             key=admin_key, path_params={"brand_id": BRAND},
             json_body={"name": "pk", "kind": "cash_off", "value": 100, "valid_days_after_claim": 30,
                        "total_stock": 10, "per_member_limit": 1})
    assert r["statusCode"] == 201, r
    body = {"batch_id": "smoke", "count": 1500, "channel": "S1",
            "reward": {"coupon_template_id": json_of(r)["template_id"]}}
    r = call(sheets_api, "POST", "/admin/{brand_id}/package-codes", f"/admin/{BRAND}/package-codes", key=admin_key,
             path_params={"brand_id": BRAND}, json_body=body)
    assert r["statusCode"] == 202, r
    assert _run_queue(start_function, stack, "mint") == [{"brand_id": BRAND, "batch_id": "smoke"}]
    r = call(sheets_api, "GET", "/admin/{brand_id}/package-codes/{batch_id}", f"/admin/{BRAND}/package-codes/smoke",
             key=admin_key, path_params={"brand_id": BRAND, "batch_id": "smoke"})
    assert json_of(r)["state"] == "complete" and json_of(r)["minted"] == 1500, r
