"""Signed callbacks with bodies other projects write, or attackers do, through the whole stack:
never a 5xx; a refusal is a 4xx in the error shape and writes nothing; the sample bodies act as
WeChat means them. Samples are in tests/fixtures/callbacks (SOURCES.json)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from siyu_dev import phone
from tests.integration.conftest import table_items

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "callbacks"
BOM = b"\xef\xbb\xbf"


def post_raw(brand, kind: str, inner: bytes, *, mode: str = "plain", fmt: str = "xml", envelope_prefix: bytes = b""):
    """Sign (and encrypt unless plain) `inner` byte for byte, as WeChat would for this brand's app."""
    cfg = brand.app(kind)
    cb = phone.build_raw_callback(inner, token=cfg["token"], receive_id=cfg.get("corp_id") or cfg["app_id"],
                                  encoding_aes_key=cfg["encoding_aes_key"], mode=mode, fmt=fmt,
                                  wecom=kind == "wecom")
    return brand.api.call("POST", f"/wechat/{brand.brand_id}/{kind}", params=cb.query, data=envelope_prefix + cb.body,
                          headers={"Content-Type": cb.content_type})


def refused(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


@pytest.mark.parametrize("name", ["oa_subscribe_last_trade_no.xml", "oa_subscribe_scanbarcode.xml"])
def test_a_follow_from_a_payment_or_a_product_scan_makes_a_member_with_no_first_touch_scene(brand, name):
    openid = "o_paid_follow"
    inner = (FIXTURES / name).read_bytes().replace(b"FromUser]]", openid.encode() + b"]]").replace(
        b"otAzGjrS4AYCmeJM1GhEOcHXXTAo", openid.encode())
    assert post_raw(brand, "oa", inner, mode="safe").status_code == 200
    member = brand.member(openid=openid)
    assert member["first_touch"]["scene"] is None and member["first_touch"]["source"] == "unknown"
    # the shopper's first QR code scan afterwards is a touch with its scene; first touch never changes
    msg = phone.oa_scan(app_username="gh", openid=openid, scene="S1", create_time=int(time.time()))
    assert brand.post_callback("oa", msg).status_code == 200
    member = brand.member(openid=openid)
    assert member["first_touch"]["scene"] is None and member["last_touch"]["scene"] == "S1"


@pytest.mark.parametrize("kind, fmt, name", [("oa", "xml", "oa_subscribe_qrscene_spaced_cdata.xml"),
                                             ("wecom", "xml", "wecom_add_external_contact.xml"),
                                             ("mp", "json", "mp_json_subscribe_msg_popup_array.json")])
def test_a_bom_before_the_envelope_and_the_plaintext_is_accepted(brand, kind, fmt, name):
    raw = (FIXTURES / name).read_bytes()
    if fmt == "json":
        raw = json.dumps(json.loads(raw)["body"]).encode()
    r = post_raw(brand, kind, BOM + raw, mode="safe", fmt=fmt, envelope_prefix=BOM)
    assert r.status_code == 200 and r.text == "success", r.text
    if kind == "oa":
        assert brand.member(openid="FromUser")["first_touch"]["scene"] == "123123"
    elif kind == "wecom":
        assert brand.member(external_userid="woAJ2GCAAAXtWyujaWJHDDGi0mAAAA")["first_touch"]["scene"] == "teststate"
    else:
        from chalicelib.storage.campaigns import credits_of
        assert credits_of(brand.brand_id, "oXXXXXXXXXXXXXXXXXXXXXXXXXXX") == {"TEMPLATE_ID_1": 1, "TEMPLATE_ID_2": 0}


def test_a_subscribe_with_spaces_around_its_cdata_makes_the_member_once(brand, bus):
    inner = (FIXTURES / "oa_subscribe_qrscene_spaced_cdata.xml").read_bytes()
    for _ in range(2):                                   # WeChat's retry
        assert post_raw(brand, "oa", inner).status_code == 200
    member = brand.member(openid="FromUser")
    assert member["first_touch"]["scene"] == "123123" and member["touches"] == 1
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


@pytest.mark.parametrize("kind, fmt, mode, body, code", [
    ("mp", "json", "plain", b'{"ToUserName": "gh", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
    ("mp", "json", "safe", b'{"a":' * 5000 + b"1" + b"}" * 5000, "malformed_json"),
    ("mp", "json", "safe", b"[" * 5000, "malformed_xml"),             # not an object: neither XML nor JSON
    ("oa", "xml", "safe", b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>", "malformed_xml"),
])
def test_deeply_nested_signed_bodies_are_refused_and_change_nothing(shared_brand, kind, fmt, mode, body, code):
    brand = shared_brand              # a refusal changes nothing: one brand serves every case
    before = table_items()
    refused(post_raw(brand, kind, body, mode=mode, fmt=fmt), 400, code)
    assert table_items() == before


def test_a_deeply_nested_wecom_envelope_is_refused_before_any_signature_check(shared_brand):
    brand = shared_brand
    before = table_items()
    r = brand.api.call("POST", f"/wechat/{brand.brand_id}/wecom", params={"timestamp": "1", "nonce": "1"},
                       data=b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>", headers={"Content-Type": "text/xml"})
    refused(r, 400, "malformed_xml")
    assert table_items() == before


def _subscribe_xml(from_user: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName>{from_user}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_S1]]></EventKey></xml>").encode()


ODD_BODIES = {
    "FromUserName with children": ("oa", "xml", _subscribe_xml("<a>o1</a><b>o2</b>")),
    "FromUserName repeated": ("oa", "xml", _subscribe_xml("o1</FromUserName><FromUserName>o2")),
    "openid of 3,000 characters": ("oa", "xml", _subscribe_xml("o" * 3000)),
    "MsgId of 3,000 characters": ("oa", "xml", (
        b"<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>text</MsgType><Content>hi</Content><MsgId>" + b"9" * 3000 + b"</MsgId></xml>")),
    "external_userid of 3,000 characters": ("wecom", "xml", (
        b"<xml><ToUserName>ww</ToUserName><FromUserName>sys</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType>"
        b"<UserID>li</UserID><ExternalUserID>" + b"w" * 3000 + b"</ExternalUserID></xml>")),
    "popup with 500 templates": ("mp", "json", json.dumps(phone.mp_subscribe_msg_popup(
        app_username="gh", openid="o1", create_time=1, accepted=[f"T{i}" for i in range(500)], rejected=[])).encode()),
    "popup accepting and rejecting one template": ("mp", "json", json.dumps(phone.mp_subscribe_msg_popup(
        app_username="gh", openid="o1", create_time=1, accepted=["T"], rejected=["T"])).encode()),
}


@pytest.mark.parametrize("case", sorted(ODD_BODIES))
def test_signed_callbacks_with_odd_fields_are_refused_and_change_nothing(shared_brand, case):
    brand = shared_brand
    kind, fmt, body = ODD_BODIES[case]
    before = table_items()
    refused(post_raw(brand, kind, body, mode="safe", fmt=fmt), 400, "invalid_message")
    assert table_items() == before


def test_a_popup_with_many_repeats_of_a_few_templates_is_one_transaction(brand):
    msg = phone.mp_subscribe_msg_popup(app_username="gh", openid="o_popup", create_time=int(time.time()),
                                       accepted=["T1", "T2"], rejected=["T3"])
    msg["List"] = msg["List"] * 150
    assert post_raw(brand, "mp", json.dumps(msg).encode(), fmt="json").status_code == 200
    from chalicelib.storage.campaigns import credits_of
    assert credits_of(brand.brand_id, "o_popup") == {"T1": 1, "T2": 1, "T3": 0}


def test_a_lone_surrogate_in_a_mini_program_text_is_stored_as_a_replacement_character(brand):
    from chalicelib.storage.models import Message
    body = json.dumps({"ToUserName": "gh", "FromUserName": "o_surrogate", "CreateTime": int(time.time()),
                       "MsgType": "text", "Content": "hi \ud800 there \U0001F600", "MsgId": 1234567890123456})
    assert "\\ud800" in body
    for _ in range(2):                                   # WeChat's retry
        r = post_raw(brand, "mp", body.encode(), fmt="json", mode="safe")
        assert r.status_code == 200, r.text
    stored = list(Message.query(f"B#{brand.brand_id}#MSG#o_surrogate"))
    assert [m.content for m in stored] == ["hi \ufffd there \U0001F600"]


# ---- DynamoDB's key limits, which the emulator does not enforce ---------------------------------

KEY_LIMITS = {"pk": 2048, "gsi1pk": 2048, "sk": 1024, "gsi1sk": 1024}      # bytes, as DynamoDB counts them


def _items_and_keys(params: dict):
    yield params.get("Key"), params.get("Item")
    for entry in params.get("TransactItems", ()):
        for op in entry.values():
            yield op.get("Key"), op.get("Item")
    for requests_ in (params.get("RequestItems") or {}).values():
        if isinstance(requests_, dict):                                     # BatchGetItem
            yield from ((key, None) for key in requests_.get("Keys", ()))
        else:                                                               # BatchWriteItem
            for request in requests_:
                for op in request.values():
                    yield op.get("Key"), op.get("Item")


@pytest.fixture
def dynamodb_key_limits(stack):
    """Refuse, as real DynamoDB would (ValidationException), any request whose key is too long; the
    refusals are listed too, so a test sees them even where the app would have swallowed the error."""
    from botocore.exceptions import ClientError

    from chalicelib import aws
    from chalicelib.storage.models import Item
    seen: list[str] = []

    def check(params, model, **_kw):
        for key, item in _items_and_keys(params):
            for attrs in (key, item):
                for name, limit in KEY_LIMITS.items():
                    value = (attrs or {}).get(name, {}).get("S")
                    if value is not None and len(value.encode()) > limit:
                        seen.append(f"{model.name} {name} of {len(value.encode())} bytes")
        if model.name == "Query":
            for value in (params.get("ExpressionAttributeValues") or {}).values():
                if len(value.get("S", "").encode()) > KEY_LIMITS["pk"]:
                    seen.append(f"Query key of {len(value['S'].encode())} bytes")
        if seen:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": seen[-1]}}, model.name)

    clients = [Item._get_connection().connection.client, aws.client("dynamodb")]
    for client in clients:
        client.meta.events.register("before-parameter-build.dynamodb", check, unique_id="key-limits")
    yield seen
    for client in clients:
        client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="key-limits")


def test_the_key_limit_check_refuses_what_dynamodb_refuses(brand, dynamodb_key_limits):
    from pynamodb.exceptions import GetError

    from chalicelib.storage import members
    with pytest.raises(GetError, match="ValidationException"):
        members.find_member_id(brand.brand_id, "oa", "o" * 3000)
    size = len(members.identity_key(brand.brand_id, "oa", "o" * 3000).encode())
    assert dynamodb_key_limits == [f"GetItem pk of {size} bytes"]


def test_the_longest_ids_a_callback_may_carry_make_keys_dynamodb_accepts(make_brand, dynamodb_key_limits):
    brand = make_brand("k" * 30)                        # a brand id of 40 characters, the longest allowed
    widest = "\U0001F600" * 128                         # 128 characters of 4 UTF-8 bytes each
    now = int(time.time())
    follow = phone.oa_subscribe(app_username="gh", openid=widest, scene="場" * 64, create_time=now)
    text = phone.oa_text(app_username="gh", openid=widest, content="hi", create_time=now, msg_id=1)
    text["MsgId"] = "\U0001F600" * 64
    add = phone.wecom_add_external_contact(corp_id=brand.app("wecom")["corp_id"], user_id=widest,
                                           external_userid=widest, create_time=now, state="場" * 64,
                                           welcome_code="W" * 512)
    popup = phone.mp_subscribe_msg_popup(app_username="gh", openid=widest, create_time=now,
                                         accepted=[f"{i:02d}" + "\U0001F600" * 126 for i in range(20)], rejected=[])
    for kind, msg, fmt in (("oa", follow, "xml"), ("oa", text, "xml"), ("wecom", add, "xml"), ("mp", popup, "json")):
        r = brand.post_callback(kind, msg, fmt=fmt)
        assert r.status_code == 200, (kind, r.text)
    assert dynamodb_key_limits == []
    assert brand.member(openid=widest)["first_touch"]["scene"] == "場" * 64


def test_a_signed_wecom_url_check_whose_echostr_is_not_text_is_refused(shared_brand):
    brand = shared_brand
    from chalicelib.wechat.crypto import MessageCrypto
    cfg = brand.app("wecom")
    box = MessageCrypto(cfg["token"], cfg["encoding_aes_key"], cfg["corp_id"])
    echostr, ts = box.encrypt(b"\xff\xfe not utf-8"), str(int(time.time()))
    r = brand.api.call("GET", f"/wechat/{brand.brand_id}/wecom", params={
        "msg_signature": box.sign(ts, "n1", echostr), "timestamp": ts, "nonce": "n1", "echostr": echostr})
    refused(r, 400, "bad_ciphertext")
