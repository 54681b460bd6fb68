"""moto's type check of a written item, without its recursive call for attributes it cannot refuse.

Table.put_item (every Put, and every item an UpdateItem creates) walks the item with
_validate_item_types, one recursive call per attribute. For an attribute holding a single string
({"S": "..."}), that call looks at the key "S" with a str value and can raise nothing (it refuses an
int under "S", or a map under "S" for a key attribute). A coupon claim's Put holds ~20 of them. Here
such attributes are skipped and everything else (numbers, NULL, maps, lists, sets, and any value of
another shape) gets moto's own check, in the item's order, so the first refusal is moto's.

An update assigns each attribute through the item's LimitedSizeDict, whose check sums the sizes of
every name and value already in the item (a list built per assignment, DynamoType.size() with its
five type tests per value): ~6% of a plain UpdateItem's emulator CPU. The same sum is taken here
without the list, with a string's size taken as the UTF-8 length and a number's as its text's
length (what size() returns for them), and size() for everything else; the same limit, raised at
the same assignment. DynamoType.size() itself answers strings and numbers that way too (every
attribute of every item written is measured).

tests/integration/test_emulator_item_checks.py compares both on many items.
"""
from __future__ import annotations

ORIGINALS: dict[str, object] = {}
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    from moto.dynamodb.models.table import Table
    original = ORIGINALS["validate_item_types"] = Table._validate_item_types

    def _validate_item_types(self, item_attrs, attr=None):
        if attr is not None or type(item_attrs) is not dict:
            return original(self, item_attrs, attr)
        for key, value in item_attrs.items():
            if type(value) is dict and len(value) == 1 and type(value.get("S")) is str:
                continue                # moto's check of {"S": str}: nothing to refuse
            # moto's loop body for this one attribute (a top-level name is never checked itself when
            # its value is a map; a name such as "N" or "NULL" with another value is, as in moto)
            original(self, {key: value}, None)

    Table._validate_item_types = _validate_item_types

    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize
    ORIGINALS["limited_setitem"] = LimitedSizeDict.__setitem__

    def size_of(value) -> int:
        # DynamoType.size is the direct one below (installed with this)
        return value.size() if type(value) is DynamoType else bytesize(str(value))

    def __setitem__(self, key, value):
        total = 0
        for name in dict.keys(self):
            total += size_of(name)
        for held in dict.values(self):
            total += size_of(held)
        # moto's limit, as in LimitedSizeDict.__setitem__ (the new name is measured as bytes)
        if total + bytesize(key) + size_of(value) > 405000:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = __setitem__

    # and every other size moto takes (each attribute of each item written, nested values, key sizes)
    moto_size = ORIGINALS["size"] = DynamoType.size

    def size(self) -> int:
        if type(self) is DynamoType:
            kind, inner = self.type, self.value
            if kind == "S" and type(inner) is str:
                return len(inner.encode("utf-8"))
            if kind == "N" and type(inner) is str:
                return len(inner)
        return moto_size(self)

    DynamoType.size = size
