"""A claim's UpdateItem sets the attributes an item is made with only when the claim may make the
item (storage.ledger.Ledger.claim): on a credit item (the credit's condition needs it to exist) or
on a replaced mark, they are already there, and the request carries the mark and the credit alone.
The item ends as it did when the request carried them."""
from __future__ import annotations

import time
import uuid

from tests.integration.campaign_fixtures import TEMPLATE, grant_credits


def sent_updates(run) -> list[dict]:
    """The UpdateItem requests `run()` makes, as sent."""
    from chalicelib.storage import ledger
    client = ledger._client()
    seen: list[dict] = []

    def keep(params, **_kwargs):
        seen.append(params)
    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", keep)
    try:
        run()
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", keep)
    return seen


def item(key) -> dict:
    from chalicelib.storage import ledger
    raw = ledger._client().get_item(TableName=ledger._table(), Key=ledger._key(key), ConsistentRead=True)
    return raw.get("Item", {})


def test_a_credit_claim_sends_the_mark_and_the_credit_and_the_item_keeps_what_it_was_made_with(stack, brand):
    from chalicelib.storage import ledger as real
    openid = f"o_{uuid.uuid4().hex[:20]}"
    grant_credits(brand, [openid])
    book = real.Ledger(brand.brand_id, "cmp_req", "r1")
    key = book.claim_item("m_req", openid, TEMPLATE)
    before = item(key)
    mark = real.Mark("c", real.new_group(), time.time() + 60, int(time.time()))
    claim = real.Claim("m_req", key, mark, credit=True, item_attrs=book.item_attrs(key, openid, TEMPLATE))
    outcome = []
    updates = sent_updates(lambda: outcome.append(book.claim(claim)))
    assert outcome == ["claimed"]
    assert len(updates) == 1
    assert set(updates[0]["ExpressionAttributeNames"].values()) == {book.mark_attr, "credits"}
    after = item(key)
    assert after[book.mark_attr] == {"S": mark.text()}
    assert int(after["credits"]["N"]) == int(before["credits"]["N"]) - 1
    for name in ("kind", "brand_id", "openid", "template_id"):
        assert after[name] == before[name] and after[name]["S"]
    assert after["kind"] == {"S": "subscribe_credit"} and after["openid"] == {"S": openid}
    # a second claim by the same run is refused by the mark and changes nothing
    assert book.claim(real.Claim("m_req", key, mark, credit=True, item_attrs=claim.item_attrs)) == "marked"
    assert item(key) == after


def test_a_claim_that_may_make_its_item_still_makes_it_whole(stack, brand):
    from chalicelib.storage import ledger as real
    book = real.Ledger(brand.brand_id, "cmp_req", "r2")
    key = book.claim_item("m_new", None, None)                 # the member's reach item: not there yet
    assert item(key) == {}
    mark = real.Mark("c", real.new_group(), time.time() + 60, int(time.time()))
    assert book.claim(real.Claim("m_new", key, mark, item_attrs=book.item_attrs(key, None, None))) == "claimed"
    made = item(key)
    assert made["kind"] == {"S": "reach"} and made[book.mark_attr] == {"S": mark.text()}
