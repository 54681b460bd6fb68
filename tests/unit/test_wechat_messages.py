"""Parsing every real sample, hostile XML, dedupe keys and passive replies."""
import json
from pathlib import Path

import pytest

from chalicelib.wechat import messages
from siyu_dev import phone

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat-samples"   # provenance: SOURCES.json there


def _sample(path: Path) -> bytes:
    if path.suffix == ".json":
        return json.dumps(json.loads(path.read_text())["body"]).encode()
    return path.read_bytes()


def test_every_shared_sample_parses():
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".xml", ".json") and p.name != "SOURCES.json")
    assert len(files) >= 20
    for path in files:
        msg = messages.parse_body(_sample(path))
        assert msg.get("MsgType") in ("event", "text") or msg.get("InfoType"), path.name
        assert msg.get("FromUserName") or msg.get("AuthCorpId"), path.name


def test_sample_fields():
    qr = messages.parse_body((SAMPLES / "oa_subscribe_qrscene.xml").read_bytes())
    assert qr["Event"] == "subscribe" and qr["EventKey"].startswith("qrscene_")
    wc = messages.parse_body((SAMPLES / "wecom_add_external_contact.xml").read_bytes())
    assert (wc["ExternalUserID"], wc["State"], wc["WelcomeCode"]) == (
        "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA", "teststate", "WELCOMECODE")
    popup = messages.parse_body((SAMPLES / "oa_subscribe_msg_popup_event.xml").read_bytes())
    assert [i["SubscribeStatusString"] for i in popup["SubscribeMsgPopupEvent"]["List"]] == ["accept", "reject"]
    single = messages.parse_body(_sample(SAMPLES / "mp_json_subscribe_msg_popup_single_object.json"))
    assert isinstance(single["List"], dict)
    array = messages.parse_body(_sample(SAMPLES / "mp_json_subscribe_msg_popup_array.json"))
    assert isinstance(array["List"], list) and len(array["List"]) == 2


@pytest.mark.parametrize("body, error", [
    (b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><a>&lol2;</a></xml>',
     messages.ForbiddenXml),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
     messages.ForbiddenXml),
    (b"<!DOCTYPE xml><xml><a>1</a></xml>", messages.ForbiddenXml),
    (b"<xml><a>1</xml>", messages.MalformedXml),
    (b"hello", messages.MalformedXml),
    (b'{"a": ', messages.MalformedJson),
    (b"[1, 2]", messages.MalformedXml),
    (b'<xml><a>' + b"x" * (70 * 1024) + b"</a></xml>", messages.BodyTooLarge),
])
def test_hostile_or_broken_bodies(body, error):
    with pytest.raises(error) as err:
        messages.parse_body(body)
    assert 400 <= err.value.status < 500 and err.value.code


def test_json_must_be_an_object():
    with pytest.raises(messages.MalformedJson):
        messages.parse_json(b"[1]")


def test_dedupe_key_rules():
    msg = phone.oa_subscribe(app_username="gh", openid="o1", scene="S1", create_time=100)
    xml_form = messages.parse_body(messages.to_xml(msg))
    json_form = messages.parse_body(json.dumps(msg))
    assert messages.dedupe_key(xml_form) == messages.dedupe_key(json_form) == messages.dedupe_key(dict(msg))
    for field, value in (("FromUserName", "o2"), ("CreateTime", 101), ("EventKey", "qrscene_S2"), ("Event", "SCAN")):
        assert messages.dedupe_key({**msg, field: value}) != messages.dedupe_key(msg)
    text = phone.oa_text(app_username="gh", openid="o1", content="a", create_time=1, msg_id=42)
    assert messages.dedupe_key(text) == messages.dedupe_key({**text, "CreateTime": 2})     # MsgId wins
    wecom = phone.wecom_add_external_contact(corp_id="ww", user_id="u", external_userid="e", create_time=1)
    assert messages.dedupe_key(wecom) != messages.dedupe_key({**wecom, "ExternalUserID": "e2"})
    assert messages.dedupe_key(wecom) != messages.dedupe_key({**wecom, "ChangeType": "del_external_contact"})


def test_text_reply_survives_cdata_terminators():
    xml = messages.text_reply("o1", "gh", "a]]>b<c>&", 1)
    assert messages.parse_xml(xml)["Content"] == "a]]>b<c>&"
