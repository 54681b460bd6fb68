"""Publishing the transactional outbox: domain events to the EventBridge bus, tasks to the follow-up queue.

Stream delivery is at-least-once, so a consumer may see an event twice; every event carries its
`event_id` for consumers to dedupe on, and follow-up tasks dedupe on it themselves.
"""
from __future__ import annotations

import json
import os

from chalicelib import aws
from chalicelib.resources import BUS, queue


class PublishFailed(Exception):
    pass


COUPON_EVENT_FIELDS = ("brand_id", "member_id", "code", "template_id", "source", "valid_until")


def publish(item: dict) -> None:
    """Publish one outbox item (the stream's NewImage, deserialized), or the `coupon.issued` of a coupon
    that announces itself (an inserted coupon with an `event_id`: storage.coupons.issue). Raises so the
    record is retried."""
    if item.get("kind") == "coupon":
        item = {"topic": "event", "name": "coupon.issued", "detail": json.dumps(
            {**{k: item[k] for k in COUPON_EVENT_FIELDS}, "event_id": item["event_id"]}, ensure_ascii=False,
            separators=(",", ":"))}
    topic, name, detail = item["topic"], item["name"], item["detail"]
    if topic == "event":
        result = aws.client("events").put_events(Entries=[{
            "Source": BUS.source, "DetailType": name, "Detail": detail,
            "EventBusName": os.environ[BUS.env], "Resources": []}])
        if result.get("FailedEntryCount"):
            raise PublishFailed(f"EventBridge refused {name}: {result['Entries']}")
    elif topic == "events":
        _publish_group(name, json.loads(detail))
    elif topic == "task":
        aws.client("sqs").send_message(QueueUrl=os.environ[queue("followups").env],
                                       MessageBody=json.dumps({"name": name, "detail": json.loads(detail)}))
    else:
        raise ValueError(f"unknown outbox topic {topic!r}")


def _publish_group(name: str, detail: dict) -> None:
    """One event per coupon of a campaign's delivery group (storage.campaign_coupons): the outbox item
    names the group's outcome item, written in the same transaction; each event gets the id
    `<outbox event id>.<n>` (n by member id), the same on every redelivery of the stream record."""
    from chalicelib.domain.coupons import normalize_code
    from chalicelib.storage.models import DeliveryGroup
    pk, sk = detail["outcomes"]
    group = DeliveryGroup.get(pk, sk, consistent_read=True)
    common = {k: detail[k] for k in ("brand_id", "template_id", "source", "valid_until")}
    coupons = [(member, entry[3]) for member, entry in sorted(json.loads(group.entries).items())
               if entry[0] == "sent" and normalize_code(entry[3]) is not None]
    entries = [{"Source": BUS.source, "DetailType": name, "EventBusName": os.environ[BUS.env], "Resources": [],
                "Detail": json.dumps({**common, "member_id": member, "code": code,
                                      "event_id": f"{detail['event_id']}.{n}"}, separators=(",", ":"))}
               for n, (member, code) in enumerate(coupons)]
    for i in range(0, len(entries), 10):            # PutEvents takes 10 entries a call
        result = aws.client("events").put_events(Entries=entries[i:i + 10])
        if result.get("FailedEntryCount"):
            raise PublishFailed(f"EventBridge refused {name}: {result['Entries']}")
