"""Flash sales sized for six-figure claim rates: a template of 250 stock shards is one item (a
transaction holds at most 100), a claim writes one shard whose own partition it is, and the stock is
never oversold however many shards the claims spread over."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.domain import coupons as rules


def _template(brand_id: str, **fields) -> dict:
    from chalicelib.services import coupons
    body = {"name": "秒杀", "kind": "cash_off", "value": 100, "valid_days_after_claim": 1, "flash_sale": True,
            "per_member_limit": 1, **fields}
    return coupons.create_template(brand_id, body)


def _shoppers(brand, n: int) -> list[dict]:
    from datetime import datetime, timezone
    from chalicelib.domain.members import Shopper
    from chalicelib.services import onboarding
    sessions = []
    for i in range(n):
        openid = f"o_fs_{uuid.uuid4().hex[:10]}"
        onboarding.touch(brand.brand_id, Shopper(mp=openid), scene="S1", via="mp", now=datetime.now(timezone.utc))
        sessions.append({"o": openid})
    return sessions


@pytest.mark.parametrize("rate, shards", [(80_000, 100), (100_000, 125), (200_000, 250)])
def test_a_flash_sale_sized_for_six_figure_rates_is_created_and_counted(brand, rate, shards):
    from chalicelib.services import coupons
    created = _template(brand.brand_id, total_stock=100_000, expected_claims_per_second=rate)
    assert created["stock_shards"] == shards and created["remaining"] == 100_000
    counted = coupons.get_template(brand.brand_id, created["template_id"])
    assert (counted["stock_shards"], counted["issued"], counted["remaining"]) == (shards, 0, 100_000)


def test_faster_than_siyu_can_serve_is_refused_with_the_reason(brand):
    from chalicelib.errors import BadRequest
    with pytest.raises(BadRequest) as err:
        _template(brand.brand_id, total_stock=1000, expected_claims_per_second=rules.MAX_FLASH_RATE + 1)
    assert err.value.code == "flash_sale_too_fast" and "200,000" in err.value.message


def test_a_claim_writes_exactly_one_stock_shard_in_a_partition_of_its_own(brand, monkeypatch):
    from chalicelib.services import coupons
    from chalicelib.storage.tx import Tx
    template = _template(brand.brand_id, total_stock=1000, expected_claims_per_second=100_000)
    seen: list[list[str]] = []
    original = Tx.commit

    def spy(self, refusals=None):
        seen.append([op["Key"]["pk"]["S"] if "Key" in op else op["Item"]["pk"]["S"]
                     for op in self._tx._update_items + self._tx._put_items])
        return original(self, refusals)
    monkeypatch.setattr(Tx, "commit", spy)
    session = _shoppers(brand, 1)[0]
    coupons.claim(brand.brand_id, session, template["template_id"])
    stock = [pk for pk in seen[-1] if "#STOCK#" in pk]
    assert len(stock) == 1 and len(seen[-1]) == len(set(seen[-1])) <= 6          # one shard, no shared partition
    assert not any(pk.endswith(f"#TPL#{template['template_id']}") for pk in seen[-1])   # the template is not written


def test_many_shards_never_oversell_under_concurrent_claims(brand):
    from chalicelib.errors import ApiError
    from chalicelib.services import coupons
    template = _template(brand.brand_id, total_stock=30, expected_claims_per_second=200_000)
    assert template["stock_shards"] == 30                     # one coupon a shard: the tightest case
    sessions = _shoppers(brand, 60)

    def claim(session):
        try:
            return coupons.claim(brand.brand_id, session, template["template_id"])["coupon"]["code"]
        except ApiError as refused:
            assert refused.status == 409 and refused.code == "out_of_stock"
            return None
    with ThreadPoolExecutor(12) as pool:
        codes = [c for c in pool.map(claim, sessions) if c]
    counted = coupons.get_template(brand.brand_id, template["template_id"])
    assert len(codes) == len(set(codes)) == counted["issued"] == 30 and counted["remaining"] == 0


def _conflicting(monkeypatch, times: int) -> list[int]:
    """Make the next `times` claim transactions be cancelled as DynamoDB cancels concurrent ones on a hot item
    (TransactionConflict; the emulator serializes requests, so it never does)."""
    from chalicelib.storage import tx as tx_module
    left, hits = [times], []
    original = tx_module.Tx.attempt

    def attempt(self):
        if left[0] > 0 and "stock" in self._labels["update"]:
            left[0] -= 1
            hits.append(1)
            raise tx_module.Conflicted()
        return original(self)
    monkeypatch.setattr(tx_module.Tx, "attempt", attempt)
    return hits


def test_a_claim_meeting_a_busy_shard_tries_another_and_succeeds(brand, monkeypatch):
    from chalicelib.services import coupons
    template = _template(brand.brand_id, total_stock=100, expected_claims_per_second=100_000)
    session = _shoppers(brand, 1)[0]
    hits = _conflicting(monkeypatch, 2)
    coupon = coupons.claim(brand.brand_id, session, template["template_id"])["coupon"]
    assert len(hits) == 2 and coupon["code"]
    assert coupons.get_template(brand.brand_id, template["template_id"])["issued"] == 1


def test_a_claim_that_only_meets_busy_shards_is_told_to_retry_and_writes_nothing(brand, monkeypatch):
    from chalicelib.errors import ApiError
    from chalicelib.services import coupons
    from tests.integration.conftest import table_items
    template = _template(brand.brand_id, total_stock=100, expected_claims_per_second=100_000)
    session = _shoppers(brand, 1)[0]
    _conflicting(monkeypatch, 1000)
    before = table_items()
    with pytest.raises(ApiError) as refused:
        coupons.claim(brand.brand_id, session, template["template_id"])
    assert (refused.value.status, refused.value.code) == (429, "claims_busy")
    assert table_items() == before
    monkeypatch.undo()
    assert coupons.claim(brand.brand_id, session, template["template_id"])["coupon"]["code"]   # no shard marked empty
