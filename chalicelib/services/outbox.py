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


def publish(item: dict) -> None:
    """Publish one outbox item (the stream's NewImage, deserialized). Raises so the record is retried."""
    topic, name, detail = item["topic"], item["name"], item["detail"]
    if topic == "event":
        result = aws.client("events").put_events(Entries=[{
            "Source": BUS.source, "DetailType": name, "Detail": detail,
            "EventBusName": os.environ[BUS.env], "Resources": []}])
        if result.get("FailedEntryCount"):
            raise PublishFailed(f"EventBridge refused {name}: {result['Entries']}")
    elif topic == "task":
        aws.client("sqs").send_message(QueueUrl=os.environ[queue("followups").env],
                                       MessageBody=json.dumps({"name": name, "detail": json.loads(detail)}))
    else:
        raise ValueError(f"unknown outbox topic {topic!r}")
