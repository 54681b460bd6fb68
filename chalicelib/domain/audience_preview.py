"""How many members a campaign's audience would plan, before the campaign exists: the pure arithmetic.

A shard whose members in the join window fit in one bounded page is counted exactly. A larger shard
is cut into STRATA equal slices of join time (between the window's ends, or the shard's first and
last member in it) and a page of SAMPLE members is read from the start of each slice: a slice that
ends within the page is counted exactly; otherwise its size is estimated from how long its first
SAMPLE members took to join — (n - 1) / span members per second, the unbiased rate of a Poisson
arrival process, times the slice's length — and its eligible members from the share of the page that
is eligible. The 95% interval adds both variances (the rate's, ~1/n relative, and the share's,
p(1-p)/n) over every estimated slice, plus the binomial variance of `sample_percent` (the pilot
sample hashes the campaign id, which a preview does not have yet, so a sampled audience is never
exact). What it assumes: joins spread evenly within a slice; a burst (an import of many members in one
second) inside a slice makes the estimate, and its interval, wrong — so slices are many and short.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

STRATA = 8            # slices of join time per large shard
SAMPLE = 40           # members read from the start of each slice
Z95 = 1.959964


@dataclass(frozen=True)
class Slice:
    """What was read of one slice: `examined` members (all of them when `complete`), `matched` of them
    eligible; `span` seconds from the slice's start to the last member read; `length` the slice's."""
    examined: int
    matched: int
    complete: bool
    span: float = 0.0
    length: float = 0.0

    def estimate(self) -> tuple[float, float]:
        """(eligible, variance) of the slice."""
        if self.complete or self.examined == 0:
            return float(self.matched), 0.0
        n = self.examined
        rate = (n - 1) / max(self.span, 1.0)            # members per second (span of 0: one second)
        size = max(rate * self.length, float(n))        # never fewer than were seen
        share = self.matched / n
        eligible = size * share
        variance = eligible ** 2 / max(n - 1, 1) + size ** 2 * share * (1 - share) / n
        return eligible, variance


def parse(at: str) -> datetime:
    return datetime.strptime(at[:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def slices(low: str, high: str, count: int | None = None) -> list[tuple[str, str]]:
    """`count` consecutive [start, end) join-time bounds covering [low, high] (high included: the last
    end is one second after it), on whole seconds as members' joined_at are."""
    count = count or STRATA
    start, stop = parse(low), parse(high) + timedelta(seconds=1)
    total = max(1, int((stop - start).total_seconds()))
    cuts = sorted({start + timedelta(seconds=total * k // count) for k in range(count)} | {stop})
    return [(iso(a), iso(b)) for a, b in zip(cuts, cuts[1:])]


def combine(exact: int, estimated: list[Slice], sample_percent: float) -> dict:
    """The preview's `estimate` {eligible, low, high} from the exactly counted members and the slices."""
    mean, variance = float(exact), 0.0
    for s in estimated:
        e, v = s.estimate()
        mean += e
        variance += v
    p = min(1.0, sample_percent / 100)
    if p < 1:
        variance = variance * p * p + mean * p * (1 - p)
        mean *= p
    half = Z95 * math.sqrt(variance)
    return {"eligible": round(mean), "low": max(0, math.floor(mean - half)), "high": math.ceil(mean + half)}
