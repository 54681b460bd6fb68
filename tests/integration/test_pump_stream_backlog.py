"""The local pump reads a stream until it is caught up before it calls the stream quiet: a page of
records its filters drop (every write makes one) must not hide the outbox record behind it from
idle(), which tests call before reading what the workers published."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from chalicelib.resources import STREAMS


def test_an_outbox_record_behind_pages_of_other_writes_is_published_before_idle_returns(stack, bus, ddb):
    from chalicelib.storage.members import outbox_item
    from chalicelib.storage.models import Item
    tag = f"backlog-{uuid.uuid4().hex[:8]}"
    stack.pump.idle()
    fillers = [{"PutRequest": {"Item": {"pk": {"S": f"{tag}#{i}"}, "sk": {"S": "X"}, "kind": {"S": "filler"}}}}
               for i in range(int(STREAMS[0].batch_size * 3.5))]          # 3.5 pages the filters drop
    for i in range(0, len(fillers), 25):
        assert not ddb.batch_write_item(RequestItems={Item.Meta.table_name: fillers[i:i + 25]})["UnprocessedItems"]
    outbox_item("event", "test.backlog", tag, {"brand_id": tag}, datetime.now(timezone.utc)).save()
    assert [e["detail-type"] for e in bus.events(tag)] == ["test.backlog"]
