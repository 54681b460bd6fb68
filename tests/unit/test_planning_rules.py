"""The planner's pure rules (domain.planning): chunks cut across pages, the checkpoint, the index choice."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain.campaigns import Audience
from chalicelib.domain.planning import Checkpoint, Cutter, chunk_id, index_choice


def test_chunks_stay_full_across_pages_and_only_the_last_is_partial():
    cutter = Cutter(size=3)
    pages = [[("a", 1)], [], [("b", 2), ("c", 3), ("d", 4)], [("e", 5)], [("f", 6), ("g", 7)]]
    chunks = []
    for page in pages:
        chunks += cutter.add(page)
    chunks += cutter.rest()
    assert [[r for _, r in c] for c in chunks] == [[1, 2, 3], [4, 5, 6], [7]]
    assert cutter.rest() == []


def test_a_resumed_cutter_from_the_checkpoint_cuts_the_same_chunks():
    entries = [(f"p{i:03d}", i) for i in range(23)]
    whole = Cutter(size=5)
    reference = whole.add(entries) + whole.rest()
    # the first planner queued two chunks, checkpointed the position of their last member, then died
    point = Checkpoint("scan", (), None, 0).advanced(reference[1][-1][0], 2)
    again = Cutter(size=5)
    resumed = again.add([e for e in entries if e[0] > point.position]) + again.rest()
    assert reference[2:] == resumed
    assert point.chunks == 2


def test_checkpoint_round_trip_and_the_old_last_evaluated_key():
    point = Checkpoint("tags", ("vip", "rare"), "m_abc", 7)
    assert Checkpoint.from_json(point.to_json()) == point
    assert Checkpoint.from_json(None) == Checkpoint()
    old = json.dumps({"pk": {"S": "B#b#M#m_x"}, "sk": {"S": "MEMBER"}, "gsi1pk": {"S": "B#b#AUD#03"},
                      "gsi1sk": {"S": "2026-01-01T00:00:00Z#m_x"}})
    assert Checkpoint.from_json(old) == Checkpoint("scan", (), "2026-01-01T00:00:00Z#m_x", 0)
    assert chunk_id(3, 12) == "03-c000012"


def _sample(n: int, tagged: dict[str, int]) -> list[frozenset]:
    out = [set() for _ in range(n)]
    for tag, count in tagged.items():
        for i in range(count):
            out[i].add(tag)
    return [frozenset(s) for s in out]


@pytest.mark.parametrize("audience,tagged,expected", [
    (Audience(tags_all=("rare",)), {"rare": 5}, ("rare",)),
    (Audience(tags_all=("rare",)), {"rare": 40}, None),                       # 40%: the scan is cheaper
    (Audience(tags_all=("common", "rare")), {"common": 80, "rare": 3}, ("rare",)),   # the rarest drives
    (Audience(tags_any=("a", "b")), {"a": 5, "b": 6}, ("a", "b")),           # merged, 11% together
    (Audience(tags_any=("a", "b")), {"a": 10, "b": 10}, None),               # 20% together
    (Audience(tags_all=("rare",), joined_after="2026-01-01T00:00:00Z"), {"rare": 1}, None),   # a window scans
    (Audience(store_ids=("sz",)), {}, None),                                  # no tags: nothing to index
], ids=["rare", "common", "rarest-of-all", "any-rare", "any-common", "window", "no-tags"])
def test_the_tag_index_is_chosen_only_where_the_tags_narrow_the_scan(audience, tagged, expected):
    assert index_choice(audience, _sample(100, tagged)) == expected


def test_an_empty_sample_keeps_the_scan():
    assert index_choice(Audience(tags_all=("rare",)), []) is None
