"""Every bad callback gets a 4xx JSON error with a reason, and writes nothing."""
from __future__ import annotations

import base64
import os
import re
import time

import pytest

from chalicelib.wechat import crypto
from siyu_dev import phone
from tests.integration.conftest import table_items


def _resign(brand, query: dict, body: bytes, encrypt: str) -> tuple[dict, bytes]:
    """Put `encrypt` in the body and sign it properly, so only the ciphertext is wrong."""
    body = re.sub(rb"<Encrypt><!\[CDATA\[.*?\]\]></Encrypt>", b"<Encrypt><![CDATA[" + encrypt.encode() + b"]]></Encrypt>",
                  body, flags=re.S)
    token = brand.app("oa")["token"]
    query = dict(query, msg_signature=crypto.signature(token, query["timestamp"], query["nonce"], encrypt))
    return query, body


CASES = {
    "wrong signature": (dict(tamper=lambda q, b: (dict(q, signature="0" * 40), b)), 401, "bad_signature"),
    "missing signature": (dict(tamper=lambda q, b: ({k: v for k, v in q.items() if k != "signature"}, b)), 401,
                          "bad_signature"),
    "wrong msg_signature": (dict(tamper=lambda q, b: (dict(q, msg_signature="f" * 40), b)), 401, "bad_signature"),
    "stale timestamp": (dict(timestamp=int(time.time()) - 3600), 401, "stale_timestamp"),
    "future timestamp": (dict(timestamp=int(time.time()) + 3600), 401, "stale_timestamp"),
}


@pytest.fixture
def refusing(shared_brand, inproc):
    """One brand for every refusal case, called in process: a refused callback leaves it unchanged,
    and each group below keeps one case over HTTP."""
    return shared_brand.via(inproc)


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_callback_is_refused_and_writes_nothing(refusing, case):
    _tampered(refusing, case)


def test_a_tampered_callback_over_http_is_refused_and_writes_nothing(shared_brand):
    _tampered(shared_brand, "wrong signature")


def _tampered(brand, case: str) -> None:
    kwargs, status, code = CASES[case]
    before = table_items()
    r = brand.subscribe(f"o_{abs(hash(case))}", "S1", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert table_items() == before


def test_receive_id_of_another_app_is_refused(shared_brand):
    brand = shared_brand          # a refusal changes nothing: one brand serves every case
    cfg = brand.app("oa")
    msg = phone.oa_subscribe(app_username="gh", openid="o_x", scene="S1", create_time=int(time.time()))
    cb = phone.build_callback(msg, token=cfg["token"], receive_id="wxSOMEONEELSE", encoding_aes_key=cfg["encoding_aes_key"],
                              mode="safe", openid="o_x")
    before = table_items()
    r = brand.api.call("POST", f"/wechat/{brand.brand_id}/oa", params=cb.query, data=cb.body,
                       headers={"Content-Type": "text/xml"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "receive_id_mismatch"
    assert table_items() == before


@pytest.mark.parametrize("ciphertext", [
    "!!!not-base64!!!",
    base64.b64encode(os.urandom(64)).decode(),          # decrypts to garbage: bad padding / length
    base64.b64encode(os.urandom(20)).decode(),          # not a whole number of AES blocks
], ids=["not_base64", "garbage_blocks", "partial_block"])   # stable ids: parallel workers collect alike
def test_broken_ciphertext_is_refused(refusing, ciphertext):
    _broken_ciphertext(refusing, ciphertext)


def test_broken_ciphertext_over_http_is_refused(shared_brand):
    _broken_ciphertext(shared_brand, "!!!not-base64!!!")


def _broken_ciphertext(brand, ciphertext: str) -> None:
    before = table_items()
    r = brand.subscribe("o_y", "S1", tamper=lambda q, b: _resign(brand, q, b, ciphertext))
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_ciphertext", r.text
    assert table_items() == before


@pytest.mark.parametrize("body, code", [
    (b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><ToUserName>&x;</ToUserName></xml>',
     "forbidden_xml"),
    (b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><A>1</A></xml>', "forbidden_xml"),
    (b"<xml><ToUserName>unclosed</xml>", "malformed_xml"),
    (b"<xml>" + b"<A>aaaaaaaaaa</A>" * 5000 + b"</xml>", "body_too_large"),
])
def test_hostile_or_broken_xml_is_refused(refusing, body, code):
    _hostile_xml(refusing, body, code)


def test_hostile_xml_over_http_is_refused(shared_brand):
    _hostile_xml(shared_brand, b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><A>1</A></xml>', "forbidden_xml")


def _hostile_xml(brand, body: bytes, code: str) -> None:
    before = table_items()
    q = phone.build_callback({"ToUserName": "x"}, token=brand.app("oa")["token"], receive_id="x").query
    r = brand.api.call("POST", f"/wechat/{brand.brand_id}/oa", params=q, data=body, headers={"Content-Type": "text/xml"})
    assert r.status_code in (400, 413) and r.json()["error"]["code"] == code, r.text
    assert table_items() == before


def test_malformed_mini_program_json_is_refused(shared_brand):
    brand = shared_brand          # a refusal changes nothing: one brand serves every case
    q = phone.build_callback({"ToUserName": "x"}, token=brand.app("mp")["token"], receive_id="x").query
    r = brand.api.call("POST", f"/wechat/{brand.brand_id}/mp", params=q, data=b'{"ToUserName": ',
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


def test_unknown_brand_is_404(api):
    r = api.call("POST", "/wechat/no-such-brand/oa?signature=x&timestamp=1&nonce=1", data=b"<xml/>",
                  headers={"Content-Type": "text/xml"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_brand"


def test_malformed_admin_json_is_refused(shared_brand):
    brand = shared_brand          # a refusal changes nothing: one brand serves every case
    r = brand.api.call("POST", f"/admin/{brand.brand_id}/stores", brand.admin_key, data=b"{not json",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


def test_wecom_without_msg_signature_is_refused(shared_brand):
    brand = shared_brand          # a refusal changes nothing: one brand serves every case
    cfg = brand.app("wecom")
    msg = phone.wecom_add_external_contact(corp_id=cfg["corp_id"], user_id="li", external_userid="wm_z",
                                           create_time=int(time.time()), state="S1")
    before = table_items()
    r = brand.post_callback("wecom", msg, tamper=lambda q, b: ({k: v for k, v in q.items() if k != "msg_signature"}, b))
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
    assert table_items() == before
