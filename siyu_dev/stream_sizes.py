"""A stream record's SizeBytes, the same length computed without moto's encoder class.

Every write to a table with a stream makes a record whose SizeBytes moto computes as the length of
json.dumps(record, cls=DynamoJsonEncoder): a fresh encoder object per record, and a call back into
Python (its default()) for the record's datetime. A coupon claim writes 4 items (so 4 records) and
that dump was ~40 of a record's ~60 us. The record's datetime is all that needs default() when the
images hold plain JSON types, and default() turns it into moto's unix_time float, which the encoder
writes with float's repr either way: so the record with that float in its place, through json's own
cached encoder (the same C encoder, the same separators and escaping), is the same text. Anything
else the plain encoder refuses (bytes, an object with to_json) takes moto's dump.
tests/integration/test_emulator_stream_sizes.py compares the two on many records.
"""
from __future__ import annotations

import datetime
import json

ORIGINALS: dict[str, object] = {}
_installed = False


def stream_json_dump(record):
    original = ORIGINALS["dynamo_json_dump"]
    if type(record) is dict:
        moment = record.get("ApproximateCreationDateTime")
        if type(moment) is datetime.datetime:
            from moto.core.utils import unix_time
            plain = dict(record)
            plain["ApproximateCreationDateTime"] = unix_time(moment)
            try:
                return json.dumps(plain)
            except TypeError:       # a value only moto's default() writes (bytes, to_json): its way
                pass
    return original(record)


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    from moto.dynamodb.models import table
    ORIGINALS["dynamo_json_dump"] = table.dynamo_json_dump
    table.dynamo_json_dump = stream_json_dump
