"""Validation of admin input: every refusal is a 4xx with a reason."""
import pytest

from chalicelib.domain import tenancy as rules
from chalicelib.errors import BadRequest

KEY = "a" * 43
BRAND = {"brand_id": "tea", "name": "Tea", "timezone": "Asia/Shanghai",
         "wechat": {"oa": {"app_id": "wx123456", "app_secret": "s", "token": "tok123", "encoding_aes_key": KEY},
                    "wecom": {"corp_id": "ww123456", "secret": "s", "token": "tok123", "encoding_aes_key": KEY}}}


def test_brand_splits_public_ids_from_secrets():
    fields = rules.brand(BRAND)
    assert fields["public"] == {"oa_app_id": "wx123456", "wecom_corp_id": "ww123456"}
    assert fields["secret"]["oa"]["app_secret"] == "s" and "app_id" not in fields["secret"]["oa"]


@pytest.mark.parametrize("change, code", [
    ({"brand_id": "Has Space"}, "invalid_brand_id"),
    ({"brand_id": "a#b"}, "invalid_brand_id"),
    ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
    ({"name": ""}, "invalid_name"),
    ({"wechat": {}}, "invalid_wechat"),
    ({"wechat": {"oa": {"app_id": "wx123456", "app_secret": "s", "token": "t!", "encoding_aes_key": KEY}}},
     "invalid_wechat_oa_token"),
    ({"wechat": {"oa": {"app_id": "wx123456", "app_secret": "s", "token": "tok", "encoding_aes_key": "short"}}},
     "invalid_wechat_oa_encoding_aes_key"),
    ({"wechat": {"wecom": {"corp_id": "ww123456", "secret": "s", "token": "tok"}}},
     "invalid_wechat_wecom_encoding_aes_key"),
    ({"wechat": {"weibo": {}}}, "invalid_wechat"),
])
def test_bad_brand_input_is_refused_with_a_reason(change, code):
    with pytest.raises(BadRequest) as err:
        rules.brand({**BRAND, **change})
    assert err.value.code == code and err.value.status == 400


def test_channel_defaults_and_limits():
    fields = rules.channel({"scene": "S1", "store_id": "sz", "tags": ["b", "a", "a"]})
    assert fields["tags"] == ["a", "b"] and fields["source"] == "qrcode" and fields["guide_id"] is None
    with pytest.raises(BadRequest):
        rules.channel({"scene": "has space"})
    with pytest.raises(BadRequest):
        rules.channel({"scene": "S1", "tags": "vip"})
    with pytest.raises(BadRequest):
        rules.channel({"scene": "x" * 65})
