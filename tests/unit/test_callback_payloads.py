"""Callback bodies written by other projects and by attackers: what parse and route make of them.

Samples are in tests/fixtures/callbacks (SOURCES.json says where each comes from)."""
import json
from pathlib import Path

import pytest

from chalicelib.services.callbacks import InvalidMessage, open_callback, route
from chalicelib.services.wechat_apps import App
from chalicelib.wechat import crypto, messages
from siyu_dev import phone

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "callbacks"
BOM = b"\xef\xbb\xbf"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OA = App("b", "oa", "wxapp0001", "s", "tok123", KEY)
MP = App("b", "mp", "wxmp0001", "s", "tok123", KEY)
WECOM = App("b", "wecom", "wwcorp0001", "s", "tok123", KEY)


def fixture(name: str) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    if name.endswith(".json"):
        return json.dumps(json.loads(raw)["body"], ensure_ascii=False).encode()
    return raw


def sample(name: str) -> dict:
    return messages.parse_body(fixture(name))


# ---- EventKey: only qrscene_<scene> (subscribe) and a SCAN key are QR scenes --------------------

@pytest.mark.parametrize("name", ["oa_subscribe_last_trade_no.xml", "oa_subscribe_scanbarcode.xml"])
def test_a_follow_whose_event_key_is_not_a_qr_scene_is_a_touch_without_scene(name):
    msg = sample(name)
    assert msg["EventKey"] and not msg["EventKey"].startswith("qrscene_")
    action = route("oa", msg)
    assert action.name == "touch" and action.args["shopper"].oa == msg["FromUserName"]
    assert action.args["scene"] is None


def test_qrscene_prefix_and_scan_key_still_carry_the_scene():
    assert route("oa", sample("oa_subscribe_qrscene_spaced_cdata.xml")).args["scene"] == "123123"
    scan = sample("oa_scan.xml")
    assert route("oa", scan).args["scene"] == scan["EventKey"] == "SCENE_VALUE"


@pytest.mark.parametrize("event_key", ["qrscene_", "qrscene_" + "x" * 65, "qrscene_a\nb"])
def test_a_qr_scene_no_wechat_code_could_carry_attributes_nothing(event_key):
    msg = {"MsgType": "event", "Event": "subscribe", "FromUserName": "o1", "CreateTime": 1, "EventKey": event_key}
    action = route("oa", msg)
    assert action.name == "touch" and action.args["scene"] is None


# ---- byte-order mark -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["oa_subscribe_scanbarcode.xml", "mp_json_subscribe_msg_popup_array.json",
                                  "wecom_add_external_contact.xml"])
def test_a_body_with_a_utf8_bom_parses_like_the_body_without(name):
    assert messages.parse_body(BOM + fixture(name)) == messages.parse_body(fixture(name))
    assert messages.parse_body((BOM + fixture(name)).decode()) == messages.parse_body(fixture(name))


@pytest.mark.parametrize("app, name, fmt", [(OA, "oa_subscribe_scanbarcode.xml", "xml"),
                                            (MP, "mp_json_subscribe_msg_popup_array.json", "json"),
                                            (WECOM, "wecom_add_external_contact.xml", "xml")])
@pytest.mark.parametrize("where", ["envelope", "plaintext", "both"])
def test_a_bom_on_the_envelope_or_the_decrypted_plaintext_is_accepted(app, name, fmt, where):
    inner = (BOM if where in ("plaintext", "both") else b"") + fixture(name)
    cb = phone.build_raw_callback(inner, token=app.token, receive_id=app.app_id, encoding_aes_key=KEY, mode="safe",
                                  fmt=fmt, wecom=app.kind == "wecom", timestamp=1000)
    body = (BOM if where in ("envelope", "both") else b"") + cb.body
    assert open_callback(app, cb.query, body, now=1000).msg == messages.parse_body(fixture(name))


def test_a_plain_callback_with_a_bom_opens():
    cb = phone.build_raw_callback(BOM + fixture("oa_subscribe_scanbarcode.xml"), token=OA.token,
                                  receive_id=OA.app_id, timestamp=1000)
    assert open_callback(OA, cb.query, cb.body, now=1000).msg["Event"] == "subscribe"


# ---- whitespace around CDATA -----------------------------------------------------------------

def test_whitespace_around_cdata_is_not_part_of_the_value():
    card = sample("oa_user_get_card_spaced_cdata.xml")
    assert (card["MsgType"], card["Event"], card["FromUserName"]) == (
        "event", "user_get_card", "oZI8Fj040-be6rlDohc6gkoPOQTQ")
    assert card["FriendUserName"] == "" and card["OuterStr"] == "12b"


def test_a_spaced_cdata_subscribe_is_a_touch_with_its_scene():
    action = route("oa", sample("oa_subscribe_qrscene_spaced_cdata.xml"))
    assert action.name == "touch" and action.args["shopper"].oa == "FromUser" and action.args["scene"] == "123123"


# ---- nesting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, error", [
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, messages.MalformedJson),
    (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", messages.MalformedJson),
    (b'{"a":' + b"[" * 5000, messages.MalformedJson),
    (b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>", messages.MalformedXml),
    (b"<xml>" + b"<a>" * 5000 + b"x" + b"</a>" * 5000 + b"</xml>", messages.MalformedXml),
    (b"<xml>" + b"<a>" * 40 + b"</a>" * 40 + b"</xml>", messages.MalformedXml),
    (b'{"a":' * 40 + b"1" + b"}" * 40, messages.MalformedJson),
])
def test_deep_nesting_is_refused_as_malformed(body, error):
    with pytest.raises(error) as err:
        messages.parse_body(body)
    assert err.value.status == 400 and "nest" in err.value.message


def test_nesting_as_deep_as_wechat_uses_and_brackets_inside_strings_are_fine():
    assert messages.parse_body(fixture("mp_json_subscribe_msg_popup_array.json"))["List"][1]["TemplateId"]
    text = messages.parse_body(json.dumps({"MsgType": "text", "Content": "[" * 5000 + "{" * 5000}))
    assert text["Content"] == "[" * 5000 + "{" * 5000
    escaped = messages.parse_body(json.dumps({"Content": '\\"[[[' * 100}))
    assert escaped["Content"] == '\\"[[[' * 100


# ---- surrogates and numbers in JSON ------------------------------------------------------------

def test_lone_surrogates_in_json_become_replacement_characters_and_pairs_survive():
    body = b'{"MsgType": "text", "FromUserName": "o1", "Content": "a\\ud800b\\udc00c\\ud83d\\ude00", "MsgId": 1}'
    msg = messages.parse_body(body)
    assert msg["Content"] == "a\ufffdb\ufffdc\U0001F600"
    assert messages.dedupe_key(msg)
    assert messages.parse_body(b'{"\\ud800": {"List": ["\\udfff"]}}') == {"\ufffd": {"List": ["\ufffd"]}}


@pytest.mark.parametrize("body", [b'{"CreateTime": Infinity}', b'{"CreateTime": NaN}', b'{"CreateTime": -Infinity}'])
def test_json_that_is_not_json_is_refused(body):
    with pytest.raises(messages.MalformedJson):
        messages.parse_body(body)


def test_invalid_utf8_is_refused():
    with pytest.raises(messages.MalformedJson):
        messages.parse_body(b'{"Content": "\xff\xfe"}')
    with pytest.raises(messages.MalformedXml):
        messages.parse_body(b"<xml><Content>\xed\xa0\x80</Content></xml>")     # an encoded lone surrogate
    for body in (b"<xml><Content>&#xD800;</Content></xml>", b'<?xml version="1.0" encoding="GBK"?><xml><A>\xc4\xe3</A></xml>'):
        with pytest.raises(messages.MalformedXml):
            messages.parse_body(body)


# ---- odd fields --------------------------------------------------------------------------------

def _subscribe(**fields) -> dict:
    return {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": 1, "MsgType": "event", "Event": "subscribe",
            "EventKey": "qrscene_S1", **fields}


ODD = {
    "openid as an element with children": _subscribe(FromUserName={"a": "b"}),
    "openid repeated": _subscribe(FromUserName=["o1", "o2"]),
    "openid as a JSON number": _subscribe(FromUserName=12345),
    "openid of 3,000 characters": _subscribe(FromUserName="o" * 3000),
    "openid with a newline": _subscribe(FromUserName="o1\n"),
    "text MsgId of 3,000 characters": {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": 1, "MsgType": "text",
                                       "Content": "hi", "MsgId": "9" * 3000},
    "text Content as an element with children": {"ToUserName": "gh", "FromUserName": "o1", "CreateTime": 1,
                                                 "MsgType": "text", "Content": {"x": "y"}, "MsgId": "1"},
    "WeCom external_userid of 3,000 characters": {"MsgType": "event", "Event": "change_external_contact",
                                                  "ChangeType": "add_external_contact", "UserID": "li",
                                                  "ExternalUserID": "w" * 3000, "CreateTime": 1},
    "WeCom UserID as an element with children": {"MsgType": "event", "Event": "change_external_contact",
                                                 "ChangeType": "del_external_contact", "UserID": {"a": "b"},
                                                 "ExternalUserID": "wm1", "CreateTime": 1},
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_field_siyu_uses_that_is_not_a_sane_string_is_refused(case):
    kind = "wecom" if "WeCom" in case else "oa"
    with pytest.raises(InvalidMessage) as err:
        route(kind, ODD[case])
    assert err.value.status == 400 and err.value.code == "invalid_message"


@pytest.mark.parametrize("msg", [
    _subscribe(MsgType={"a": "b"}), _subscribe(Event=["subscribe", "SCAN"]), _subscribe(Event={"x": "subscribe"}),
    {"MsgType": "event", "Event": "change_external_contact", "ChangeType": {"a": "add_external_contact"},
     "ExternalUserID": "wm1"},
])
def test_a_message_whose_type_is_not_text_is_ignored(msg):
    assert route("wecom" if "ChangeType" in msg else "oa", msg).name == "ignore"


def test_an_odd_field_siyu_does_not_use_changes_nothing():
    action = route("oa", _subscribe(Ticket={"deep": {"er": "x"}}, ToUserName=["a", "b"]))
    assert action.name == "touch" and action.args["scene"] == "S1"


def test_a_create_time_outside_the_clock_is_zero_not_a_long_key():
    msg = {"ToUserName": "gh", "FromUserName": "o1", "MsgType": "text", "Content": "hi", "MsgId": "7"}
    for value in ("9" * 3000, 10 ** 12, -5, 1e308, "x", {"a": 1}):
        assert route("oa", {**msg, "CreateTime": value}).args["create_time"] == 0
    assert route("oa", {**msg, "CreateTime": "1700000000"}).args["create_time"] == 1700000000


def _popup(n: int, fmt: str = "json") -> dict:
    return phone.mp_subscribe_msg_popup(app_username="gh", openid="o1", create_time=1,
                                        accepted=[f"T{i}" for i in range(n)], rejected=[], fmt=fmt)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_popup_with_more_templates_than_a_transaction_holds_is_refused(fmt):
    # 500 entries in JSON; as many as 64 KiB of XML holds
    msg = messages.parse_body(json.dumps(_popup(500)) if fmt == "json" else messages.to_xml(_popup(300, "xml")))
    with pytest.raises(InvalidMessage) as err:
        route("mp", msg)
    assert err.value.code == "invalid_message" and "templates" in err.value.message


def test_a_popup_within_bounds_is_routed_and_repeats_count_once():
    from chalicelib.domain.campaigns import MAX_TEMPLATES
    assert len(route("mp", _popup(MAX_TEMPLATES)).args["changes"].accepted) == MAX_TEMPLATES
    repeated = {**_popup(1), "List": [{"TemplateId": "T", "SubscribeStatusString": "accept"}] * 500}
    assert route("mp", repeated).args["changes"].accepted == ("T",)


def test_a_popup_that_both_accepts_and_rejects_one_template_is_refused():
    msg = {**_popup(1), "List": [{"TemplateId": "T", "SubscribeStatusString": "accept"},
                                 {"TemplateId": "T", "SubscribeStatusString": "reject"}]}
    with pytest.raises(InvalidMessage):
        route("mp", msg)


def test_a_template_id_that_is_not_text_is_skipped():
    msg = {**_popup(1), "List": [{"TemplateId": {"a": "b"}, "SubscribeStatusString": "accept"},
                                 {"TemplateId": "T2", "SubscribeStatusString": "accept"}]}
    assert route("mp", msg).args["changes"].accepted == ("T2",)


def test_callback_errors_are_4xx():
    assert issubclass(InvalidMessage, crypto.CallbackError)
