"""The preview's estimator (domain.audience_preview): slices tile the window; complete slices are exact;
the 95% interval covers the truth at least 95% of the time for members joining evenly
(conservative: 200 of 200 here, its half-width ~5% of the count)."""
from __future__ import annotations

import random
from datetime import timedelta

from chalicelib.domain import audience_preview as est


def test_slices_tile_the_window_on_whole_seconds():
    cuts = est.slices("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z", 8)
    assert len(cuts) == 8 and cuts[0][0] == "2026-01-01T00:00:00Z" and cuts[-1][1] == "2026-01-31T00:00:01Z"
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert est.slices("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 8) == [("2026-01-01T00:00:00Z",
                                                                             "2026-01-01T00:00:01Z")]


def test_complete_slices_are_exact():
    got = est.combine(7, [est.Slice(5, 3, True), est.Slice(0, 0, True)], 100)
    assert got == {"eligible": 10, "low": 10, "high": 10}


def _shard_estimate(rng: random.Random, size: int, share: float, strata: int, sample: int) -> tuple[int, est.Slice]:
    """One shard of `size` members joining uniformly over 30 days, each eligible with `share`, read as
    the service reads it: `sample` members from the start of each of `strata` slices."""
    start = est.parse("2026-01-01T00:00:00Z")
    seconds = sorted(rng.randrange(30 * 86400) for _ in range(size))
    eligible = [rng.random() < share for _ in range(size)]
    low, high = est.iso(start + timedelta(seconds=seconds[0])), est.iso(start + timedelta(seconds=seconds[-1]))
    out = []
    for a, b in est.slices(low, high, strata):
        lo, hi = (est.parse(a) - start).total_seconds(), (est.parse(b) - start).total_seconds()
        inside = [(s, e) for s, e in zip(seconds, eligible) if lo <= s < hi]
        read = inside[:sample]
        if len(inside) <= sample:
            out.append(est.Slice(len(read), sum(e for _, e in read), True))
        else:
            out.append(est.Slice(len(read), sum(e for _, e in read), False, read[-1][0] - lo, hi - lo))
    return sum(eligible), out


def test_the_interval_covers_the_truth_at_least_95_percent_of_the_time():
    rng = random.Random(7)
    covered = trials = 0
    for _ in range(200):
        truth, slices = 0, []
        for _shard in range(16):
            n, s = _shard_estimate(rng, 400, 0.3, 8, 40)
            truth += n
            slices += s
        got = est.combine(0, slices, 100)
        trials += 1
        covered += got["low"] <= truth <= got["high"]
    assert covered / trials >= 0.95, covered
