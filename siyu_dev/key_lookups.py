"""DynamoType's hash and equality for string and binary values, without the cast_value property.

moto keys a table's items by DynamoType (items[hash key][range key]), so every read and write of an
item hashes and compares its key values, each through cast_value: five type tests before it returns
the value itself for a string. A coupon claim's transaction looks items up 12 times (its conditions,
its undo log, moto's own put_item/update_item), ~67 cast_value calls, ~4% of its emulator CPU. For S
and B values cast_value is the value, so hash((type, value)) and comparing type then value are moto's
answers; other types (numbers compare as Decimal, sets as sets) and anything that is not exactly a
DynamoType take moto's methods. tests/integration/test_emulator_key_lookups.py compares both.
"""
from __future__ import annotations

ORIGINALS: dict[str, object] = {}
_installed = False
_PLAIN = ("S", "B")


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    from moto.dynamodb.models.dynamo_type import DynamoType
    moto_hash = ORIGINALS["hash"] = DynamoType.__hash__
    moto_eq = ORIGINALS["eq"] = DynamoType.__eq__
    moto_ne = ORIGINALS["ne"] = DynamoType.__ne__

    def __hash__(self):
        kind = self.type
        if kind in _PLAIN and type(self) is DynamoType:
            return hash((kind, self.value))
        return moto_hash(self)

    def __eq__(self, other):
        kind = self.type
        if kind in _PLAIN and type(self) is DynamoType and type(other) is DynamoType:
            return kind == other.type and self.value == other.value
        return moto_eq(self, other)

    def __ne__(self, other):
        kind = self.type
        if kind in _PLAIN and type(self) is DynamoType and type(other) is DynamoType:
            return kind != other.type or self.value != other.value
        return moto_ne(self, other)

    moto_init = ORIGINALS["init"] = DynamoType.__init__

    def __init__(self, type_as_dict):
        if type(type_as_dict) is dict and len(type_as_dict) == 1:
            (kind, value), = type_as_dict.items()
            if kind != "L" and kind != "M":
                self.type = kind
                self.value = value
                return
        moto_init(self, type_as_dict)

    DynamoType.__init__ = __init__
    DynamoType.__hash__ = __hash__
    DynamoType.__eq__ = __eq__
    DynamoType.__ne__ = __ne__
