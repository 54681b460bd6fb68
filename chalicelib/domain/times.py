"""The window every time a caller gives (coupon validity and claim windows, campaign schedules and
audiences) must fall in. Pure.

Why a window at all: `9999-12-31T23:59:59-12:00` parses but is past datetime's last instant in UTC,
`0001-01-01T00:00:00+01:00` before its first, and `valid_until: 9999-12-31T00:00:00Z` was stored and
then every claim failed adding the retention to it. Why this window:
- EARLIEST, 2000-01-01: siyu's data starts with WeChat (2011); no member joined, no coupon was
  valid and no campaign ran before it, so an earlier time is a typo (0202 for 2025).
- HORIZON, ten years from now: a coupon valid for more than ten years or a campaign scheduled more
  than ten years out is a typo too (2205), and ten years matches the longest `valid_days_after_claim`
  and `coupon_retention_days` (3650). With both added, every derived time (expiry + retention) stays
  decades inside datetime's range, so no arithmetic on a stored time can overflow.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
HORIZON = timedelta(days=3653)                                   # ten years, leap days included
LATEST_WITHOUT_CLOCK = datetime(2100, 1, 1, tzinfo=timezone.utc)


def window(now: datetime | None) -> tuple[datetime, datetime]:
    """[earliest, latest] for a time given at `now`; without a clock, the calendar bounds alone."""
    return EARLIEST, (now + HORIZON) if now is not None else LATEST_WITHOUT_CLOCK


def to_utc(moment: datetime) -> datetime | None:
    """`moment` in UTC, or None when UTC cannot represent it (year 0 or 10000 once the offset is applied)."""
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def problem(moment: datetime, now: datetime | None) -> str | None:
    """Why `moment` (aware) is refused, or None."""
    earliest, latest = window(now)
    utc = to_utc(moment)
    if utc is None or not earliest <= utc <= latest:
        return f"must be between {earliest:%Y-%m-%d} and {latest:%Y-%m-%d} (at most ten years ahead)"
    return None
