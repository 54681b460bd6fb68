"""Package codes, pure: the request's refusals, and codes that are derived, distinct and unguessable."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from chalicelib.domain import package_codes as rules
from chalicelib.errors import BadRequest

GOOD = {"batch_id": "b1", "count": 10, "channel": "S1", "reward": {"coupon_template_id": "tpl_abc"}}


@pytest.mark.parametrize("change,code", [({"count": 0}, "invalid_count"), ({"count": 100_001}, "invalid_count"),
                                         ({"count": "10"}, "invalid_count"), ({"count": 1.5}, "invalid_count"),
                                         ({"reward": None}, "invalid_reward"),
                                         ({"reward": {"coupon_template_id": "a#b"}}, "invalid_reward"),
                                         ({"batch_id": ""}, "invalid_batch_id"),
                                         ({"channel": "has space"}, "invalid_channel")])
def test_bad_requests_are_refused(change, code):
    with pytest.raises(BadRequest) as refused:
        rules.request({**GOOD, **change})
    assert refused.value.code == code


def test_a_good_request():
    assert rules.request({**GOOD, "count": 100_000}) == {"batch_id": "b1", "count": 100_000, "channel": "S1",
                                                         "coupon_template_id": "tpl_abc"}


def test_codes_are_hmac_of_the_index_distinct_and_fit_a_scene():
    secret = bytes(range(32))
    batch = rules.codes(secret, 0, 20_000)
    assert len(set(batch)) == 20_000
    expected = base64.b32encode(hmac.new(secret, b"pk:5", hashlib.sha256).digest()).decode()[:20].lower()
    assert batch[5] == rules.code(secret, 5) == expected
    assert rules.codes(secret, 1000, 1003) == batch[1000:1003]           # a page minted again: the same codes
    assert rules.codes(bytes(32), 0, 3) != batch[:3]                     # another batch's secret: other codes
    assert all(len(rules.scene(c)) <= 32 and rules.code_of(rules.scene(c)) == c for c in batch[:100])


@pytest.mark.parametrize("scene", ["pk.", "pk.short", "pk." + "A" * 20, "pk." + "a" * 21, "pk." + "1" * 20])
def test_scenes_that_cannot_be_codes(scene):
    assert rules.code_of(scene) is None


def test_pages():
    assert rules.pages(1) == 1 and rules.pages(1000) == 1 and rules.pages(100_000) == 100
    assert rules.page_range(99, 99_500) == (99_000, 99_500)
