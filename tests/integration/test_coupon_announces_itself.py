"""A coupon issued on its own announces itself: its INSERT on the stream (the coupon carries an
`event_id`) is published as `coupon.issued`, so its transaction writes no outbox item. A redemption
(a MODIFY of the same item) announces no second `coupon.issued`, and a redelivered stream record
publishes the same event id."""
from __future__ import annotations

from chalicelib.services import outbox
from tests.integration.test_session_member import login, scan


def test_a_claimed_coupon_is_published_once_from_its_own_insert(brand, stack, bus, ddb, inproc):
    from chalicelib.storage.models import Item
    template = brand.admin("POST", "/coupon-templates", {"name": "ten off", "kind": "cash_off", "value": 1000,
                                                         "valid_days_after_claim": 30}).json()["template_id"]
    session = scan(brand, login(brand, "o_self")["session"])["session"]
    client = Item._get_connection().connection.client
    written: list[dict] = []

    def keep(params, **_kw):
        written.extend(params["TransactItems"])
    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", keep)
    try:
        r = brand.via(inproc).api.call("POST", f"/mp/{brand.brand_id}/coupon-templates/{template}/claim", session)
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", keep)
    assert r.status_code == 201, r.text
    kinds = sorted(op["Put"]["Item"]["kind"]["S"] for op in written if "Put" in op)
    assert kinds == ["coupon"]                  # no outbox item: the coupon is its own
    code = r.json()["coupon"]["code"]
    coupon = ddb.get_item(TableName=Item.Meta.table_name, Key={"pk": {"S": f"B#{brand.brand_id}#C#{code}"},
                                                               "sk": {"S": "COUPON"}}, ConsistentRead=True)["Item"]
    redeemed = brand.api.call("POST", f"/pos/{brand.brand_id}/stores/sz/redemptions", brand.pos_keys["sz"],
                              {"code": code, "order_id": "o-self", "order_amount_cents": 5000},
                              headers={"Idempotency-Key": "self-1"})
    assert redeemed.status_code == 201, redeemed.text
    stack.pump.idle()
    events = bus.events(brand.brand_id, "coupon.issued")
    assert [e["detail"] for e in events] == [{
        "brand_id": brand.brand_id, "member_id": coupon["member_id"]["S"], "code": code, "template_id": template,
        "source": "claim", "valid_until": coupon["valid_until"]["S"], "event_id": coupon["event_id"]["S"]}]
    assert len(bus.events(brand.brand_id, "coupon.redeemed")) == 1


def test_a_redelivered_coupon_record_publishes_the_same_event(monkeypatch):
    sent = []

    class Events:
        def put_events(self, Entries):
            sent.extend(Entries)
            return {"FailedEntryCount": 0}
    monkeypatch.setattr(outbox.aws, "client", lambda name: Events())
    monkeypatch.setenv("SIYU_EVENT_BUS", "bus")
    image = {"kind": "coupon", "brand_id": "b", "member_id": "m_1", "code": "ABC", "template_id": "tpl_1",
             "source": "welcome", "valid_until": "2027-01-01T00:00:00Z", "event_id": "ev_x", "state": "issued"}
    outbox.publish(image)
    outbox.publish(image)
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0]["DetailType"] == "coupon.issued"
    assert sent[0]["Detail"] == ('{"brand_id":"b","member_id":"m_1","code":"ABC","template_id":"tpl_1",'
                                 '"source":"welcome","valid_until":"2027-01-01T00:00:00Z","event_id":"ev_x"}')
