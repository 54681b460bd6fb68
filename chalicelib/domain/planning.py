"""The planner's pure rules: full chunks across pages, the checkpoint that lets a crash resume without
planning a member twice or dropping one, and the choice between reading the audience index and the
tag index.

Chunks. A shard's eligible members are cut into chunks of CHUNK recipients in the order the shard is
read, whatever the page boundaries: the partial chunk at the end of a page is carried into the next.
The checkpoint records only what is on the send queue — the position of the last member of the last
chunk queued and how many chunks that was — never the carried partial chunk. A resumed planner reads
again from that position and so derives the same carry (and the same next chunks) the dead one held:
nothing is planned twice, nothing is lost, and the checkpoint stays one small item.

Index choice. The audience index (members by join time) is read in full within the join window;
the tag index holds one small item per (member, tag), so reading a tag's members costs one
BatchGetItem line (0.5 RRU: the member item, rounded up to 4 KB) per tagged member, against ~0.09 RRU
per member scanned (a ~0.7 KB member item, eventually consistent). The tag index is cheaper when
the driving tag is carried by fewer than ~15% of the members the scan would read, so the planner
reads one page of the scan first and measures that.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from chalicelib.domain.campaigns import Audience

CHUNK = 200                  # recipients per send message (~22 KB packed)
INDEX_BELOW = 0.15           # use the tag index when the driving tag(s) cover less of the scanned page


@dataclass(frozen=True)
class Checkpoint:
    """What a shard planner has put on the send queue: every eligible member up to and including
    `position` (a sort key of the mode's index), in `chunks` chunks. `mode` is fixed before the first
    chunk is queued (`scan`: the audience index, positions `<joined_at>#<member>`; `tags`: the tag index
    of `tags`, positions are member ids)."""
    mode: str | None = None
    tags: tuple[str, ...] = ()
    position: str | None = None
    chunks: int = 0

    def to_dict(self) -> dict:
        return {"v": 2, "mode": self.mode, "tags": list(self.tags), "at": self.position, "chunks": self.chunks}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "Checkpoint":
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") == 2:
            return cls(data["mode"], tuple(data["tags"]), data["at"], int(data["chunks"]))
        # a checkpoint from before carry-over: the audience index's LastEvaluatedKey after a page
        # whose chunks were all queued, so resuming after its sort key is exact
        return cls("scan", (), data["gsi1sk"]["S"], 0)

    def advanced(self, position: str, chunks: int) -> "Checkpoint":
        return Checkpoint(self.mode, self.tags, position, self.chunks + chunks)


@dataclass
class Cutter:
    """Cuts a stream of (position, recipient) into full chunks; the rest is carried to the next page."""
    size: int = CHUNK
    carry: list = field(default_factory=list)

    def add(self, entries) -> list[list]:
        """Add a page's eligible (position, recipient) pairs; the chunks that filled up, in order."""
        full = []
        for entry in entries:
            self.carry.append(entry)
            if len(self.carry) == self.size:
                full.append(self.carry)
                self.carry = []
        return full

    def rest(self) -> list[list]:
        """At the end of the shard: the last, partial chunk (if any)."""
        out, self.carry = ([self.carry] if self.carry else []), []
        return out


def chunk_id(shard: int, n: int) -> str:
    """The n-th chunk of a shard: the same on a resumed planner that derives the same chunk again."""
    return f"{shard:02d}-c{n:06d}"


def index_choice(audience: Audience, sample_tags: list[frozenset], *, below: float | None = None
                 ) -> tuple[str, ...] | None:
    """The tags whose index the planner should read, from the tags of one page of the scan (members in
    the join window); None to keep scanning.

    Every eligible member carries each tag of `tags_all`, and at least one of `tags_any`: reading the
    index of one tag of `tags_all` (the rarest in the sample), or of every tag of `tags_any` (merged),
    finds them all. A join window keeps the scan: the tag index is not ordered by join time, so a
    narrow window would make it read the tag's members of every other time too."""
    if audience.joined_after or audience.joined_before or not (audience.tags_all or audience.tags_any):
        return None
    if not sample_tags:
        return None
    counts: dict[str, int] = {}
    for tags in sample_tags:
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + 1
    options = []
    if audience.tags_all:
        rarest = min(sorted(audience.tags_all), key=lambda t: counts.get(t, 0))
        options.append((counts.get(rarest, 0), (rarest,)))
    if audience.tags_any:
        options.append((sum(counts.get(t, 0) for t in set(audience.tags_any)), tuple(sorted(set(audience.tags_any)))))
    covered, tags = min(options)
    return tags if covered < (INDEX_BELOW if below is None else below) * len(sample_tags) else None
