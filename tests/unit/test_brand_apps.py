"""One app id, one brand; a WeCom suite's callbacks; a mini-program join: the pure rules."""
import time
from pathlib import Path

import pytest

from chalicelib.domain import members, tenancy
from chalicelib.errors import BadRequest
from chalicelib.wechat import crypto

KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# WeCom's documented third-party (suite) add_external_contact: InfoType instead of MsgType/Event,
# encrypted for ReceiveId = SuiteId (source in the file's first line).
SUITE_SAMPLE = (FIXTURES / "wecom_thirdparty_add_external_contact.xml").read_bytes()
SUITE_ID, AUTH_CORP_ID = "ww4asffe99e54c0f4c", "wxf8b4f85f3a794e77"


def brand_body(**wecom) -> dict:
    return {"brand_id": "b1", "name": "B",
            "wechat": {"oa": {"app_id": "wxoa0001", "app_secret": "s", "token": "tok123"},
                       "mp": {"app_id": "wxmp0001", "app_secret": "s", "token": "tok123"},
                       "wecom": {"corp_id": "wwcorp01", "secret": "s", "token": "tok123", "encoding_aes_key": KEY,
                                 **wecom}}}


def test_every_app_id_a_brand_names_is_claimed_in_its_id_space():
    fields = tenancy.brand(brand_body(suite_id="wwsuite1"))
    assert fields["public"]["wecom_suite_id"] == "wwsuite1"
    assert "suite_id" not in fields["secret"]["wecom"]             # a public id, not a secret
    assert tenancy.app_claims(fields["public"]) == [
        ("wx", "wxoa0001", "wechat.oa.app_id"), ("wx", "wxmp0001", "wechat.mp.app_id"),
        ("wecom", "wwcorp01", "wechat.wecom.corp_id"), ("suite", "wwsuite1", "wechat.wecom.suite_id")]


def test_an_oa_appid_given_as_another_brands_mini_program_is_the_same_app():
    # OA and mini-program app ids share one space, so brand B naming A's OA app as its MP collides
    a = tenancy.app_claims({"oa_app_id": "wxsame01"})
    b = tenancy.app_claims({"mp_app_id": "wxsame01"})
    assert a[0][:2] == b[0][:2]


def test_one_brand_cannot_give_its_oa_and_mini_program_one_app_id():
    body = brand_body()
    body["wechat"]["mp"]["app_id"] = "wxoa0001"
    with pytest.raises(BadRequest) as err:
        tenancy.brand(body)
    assert err.value.code == "invalid_wechat"


@pytest.mark.parametrize("suite_id", ["", "a b", "x" * 65, 12345, ["ww1"]])
def test_a_malformed_suite_id_is_refused(suite_id):
    with pytest.raises(BadRequest) as err:
        tenancy.brand(brand_body(suite_id=suite_id))
    assert err.value.code == "invalid_wechat_wecom_suite_id"


def test_no_suite_id_claims_no_suite():
    fields = tenancy.brand(brand_body())
    assert "wecom_suite_id" not in fields["public"]
    assert [space for space, _, _ in tenancy.app_claims(fields["public"])] == ["wx", "wx", "wecom"]


def test_an_envelope_for_the_suite_id_opens_only_where_the_suite_id_is_accepted():
    envelope = crypto.MessageCrypto("tok123", KEY, SUITE_ID).encrypt(b"<xml/>")
    with pytest.raises(crypto.ReceiveIdMismatch):
        crypto.MessageCrypto("tok123", KEY, AUTH_CORP_ID).decrypt(envelope)
    box = crypto.MessageCrypto("tok123", KEY, AUTH_CORP_ID, also_receive=(SUITE_ID,))
    assert box.open(envelope) == (b"<xml/>", SUITE_ID)
    assert box.open(box.encrypt(b"<a/>")) == (b"<a/>", AUTH_CORP_ID)
    with pytest.raises(crypto.ReceiveIdMismatch):
        box.decrypt(crypto.MessageCrypto("tok123", KEY, "wwsomeoneelse").encrypt(b"<xml/>"))


def _suite_callback(now: int) -> tuple[dict, bytes]:
    box = crypto.MessageCrypto("tok123", KEY, SUITE_ID)
    encrypted = box.encrypt(SUITE_SAMPLE)
    query = {"msg_signature": box.sign(str(now), "n1", encrypted), "timestamp": str(now), "nonce": "n1"}
    body = f"<xml><ToUserName><![CDATA[{SUITE_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>" \
           "<AgentID><![CDATA[]]></AgentID></xml>"
    return query, body.encode()


def test_a_suite_callback_is_read_when_the_brand_names_the_suite():
    from chalicelib.services.callbacks import open_callback, route
    from chalicelib.services.wechat_apps import App
    now = int(time.time())
    query, body = _suite_callback(now)
    app = App("b1", "wecom", AUTH_CORP_ID, "secret", "tok123", KEY, suite_id=SUITE_ID)
    opened = open_callback(app, query, body, now)
    assert opened.msg["ExternalUserID"] == "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w"
    assert opened.box.receive_id == SUITE_ID               # a reply goes back under the id it came with
    action = route("wecom", opened.msg)
    assert action.name == "touch" and action.args["shopper"].wecom == "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w"
    assert action.args["scene"] == "teststate" and action.args["wecom_user_id"] == "zhangsan"
    # API calls keep using the corp id
    assert app.app_id == AUTH_CORP_ID and app.receive_ids == (AUTH_CORP_ID, SUITE_ID)


def test_a_suite_callback_is_refused_when_the_brand_names_no_suite():
    from chalicelib.services.callbacks import open_callback
    from chalicelib.services.wechat_apps import App
    now = int(time.time())
    query, body = _suite_callback(now)
    with pytest.raises(crypto.ReceiveIdMismatch):
        open_callback(App("b1", "wecom", AUTH_CORP_ID, "secret", "tok123", KEY), query, body, now)


def test_a_mini_program_shopper_without_a_code_joins_as_source_mini_program():
    touch = members.attribute(None, scene=None, via="mp", at="2026-01-01T00:00:00Z",
                              default_source=members.MINI_PROGRAM_SOURCE)
    plan = members.plan_touch(brand_id="b1", shopper=members.Shopper(mp="o1"), found={}, touch=touch,
                              channel=None, new_member_id="m1")
    assert plan.create and plan.member_id == "m1" and plan.link == [("mp", "o1")]
    assert plan.touch.as_dict() == {"store_id": None, "guide_id": None, "scene": None, "source": "mini_program",
                                    "via": "mp", "at": "2026-01-01T00:00:00Z"}
    assert [name for name, _ in plan.events] == ["member.joined"]
    assert plan.events[0][1]["first_touch"]["source"] == "mini_program"
    assert plan.tasks == []                   # nobody to welcome: no channel, no OA follow


def test_a_scene_without_a_channel_code_stays_unknown():
    touch = members.attribute(None, scene="S404", via="mp", at="t")
    assert touch.source == members.UNKNOWN_SOURCE


def test_a_suite_callback_from_another_corp_that_installed_the_suite_is_not_this_brands():
    from chalicelib.services.callbacks import _for_this_corp, open_callback
    from chalicelib.services.wechat_apps import App
    now = int(time.time())
    query, body = _suite_callback(now)
    ours = App("b1", "wecom", AUTH_CORP_ID, "secret", "tok123", KEY, suite_id=SUITE_ID)
    theirs = App("b2", "wecom", "wwanothercorp", "secret", "tok123", KEY, suite_id=SUITE_ID)
    assert _for_this_corp(ours, open_callback(ours, query, body, now).msg, open_callback(ours, query, body, now))
    opened = open_callback(theirs, query, body, now)
    assert not _for_this_corp(theirs, opened.msg, opened)
    # a suite envelope that names no corp at all is nobody's
    anonymous = {k: v for k, v in opened.msg.items() if k != "AuthCorpId"}
    assert not _for_this_corp(theirs, anonymous, opened)
