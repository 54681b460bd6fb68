"""A member code's `expires_at` is the instant the till stops accepting it, not when the display rotates."""
from datetime import datetime, timezone

from chalicelib.domain import coupons as rules

SECRET = b"k" * 32


def test_expires_at_is_the_first_instant_the_till_refuses_the_code():
    # shown at the start, the middle and the very end of a rotation step
    for shown_at in (6000.0, 6030.5, 6059.999, 1_740_000_017.25):
        code, expires = rules.member_code(SECRET, "m_abc", shown_at)
        assert expires > shown_at
        assert rules.read_member_code(SECRET, code, shown_at) == "m_abc"
        assert rules.read_member_code(SECRET, code, expires - 0.001) == "m_abc", shown_at
        assert rules.read_member_code(SECRET, code, expires) is None, shown_at


def test_a_code_shown_just_before_a_rotation_says_it_is_good_for_another_minute():
    code, expires = rules.member_code(SECRET, "m_abc", 6057.0)
    assert expires - 6057.0 == 63.0
    assert rules.read_member_code(SECRET, code, 6100.0) == "m_abc"     # the till still takes it then


def test_the_service_reports_the_domain_expiry(monkeypatch):
    from chalicelib.services import coupons as service

    class Brand:
        secret_ref = "ref"
    monkeypatch.setattr(service.tenancy, "require_brand", lambda brand_id: Brand())
    monkeypatch.setattr(service.secrets, "brand_secrets", lambda ref: {"session_secret": "k" * 32})
    monkeypatch.setattr(service, "_member_of", lambda brand_id, session: "m_abc")
    answer = service.my_member_code("b", {}, now=6057.0)
    assert datetime.fromisoformat(answer["expires_at"]) == datetime.fromtimestamp(6120, timezone.utc)
    assert rules.read_member_code(SECRET, answer["member_code"], 6119.9) == "m_abc"
