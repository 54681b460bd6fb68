"""The audience size preview: how many members a campaign with this audience would plan, before it exists.

`POST /admin/{brand}/campaigns/preview {audience, message?}`: the audience (and message, when given) is
validated by the same parse campaign creation uses (same 400 codes); members are read from the
audience index (never a table scan) and kept by the planner's own rule (domain.campaigns.eligible),
so the exact count is what a campaign then plans (its `stats.targeted`; the holdout is planned too).

Cost: each of the 16 audience shards is read once, in parallel (one Query of up to EXACT_PAGE members:
~11 RRU); a shard with more is sampled (domain.audience_preview): 1 Query for its last member and
STRATA Queries of SAMPLE members (~4 RRU each). So at most 16 × (1 + 1 + 8) Queries, ~800 RRU, whatever
the brand's size: the answer is exact up to 16 × 128 members in the window, then an estimate with its
95% interval.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone

from chalicelib.domain import audience_preview as est
from chalicelib.domain import campaigns as rules
from chalicelib.domain.members import AUDIENCE_SHARDS
from chalicelib.errors import BadRequest
from chalicelib.storage import audience as audience_store
from chalicelib.storage import members as member_store
from chalicelib.storage import tenancy

EXACT_PAGE = 128            # members read per shard before sampling it (16 × 128 = 2,048 exact)


def _facts(member) -> rules.MemberFacts:
    # the planner's own reading of a member (services.planning._facts)
    from chalicelib.services.planning import _facts as planner_facts
    return planner_facts(member)


def preview(brand_id: str, body: dict) -> dict:
    brand = tenancy.require_brand(brand_id)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object", code="malformed_json")
    now = datetime.now(timezone.utc)
    section = body.get("audience")
    if section is not None and not isinstance(section, dict):
        raise BadRequest("audience must be an object", code="invalid_audience")
    schedule = body.get("schedule") if isinstance(body.get("schedule"), dict) else {}
    tz = schedule.get("timezone") or brand.timezone
    rules.zone(tz)
    audience = rules.audience(section or {}, tz, now)
    if body.get("message") is not None:
        if not isinstance(body["message"], dict):
            raise BadRequest("message must be an object", code="invalid_message")
        rules.message(body["message"])
    matching = replace(audience, sample_percent=100.0)    # the pilot sample hashes the campaign id: applied after
    with ThreadPoolExecutor(AUDIENCE_SHARDS) as pool:
        shards = list(pool.map(lambda s: _shard(brand_id, s, matching), range(AUDIENCE_SHARDS)))
    examined = sum(s[0] for s in shards)
    exact_count = sum(s[1] for s in shards)
    sliced = [x for s in shards for x in s[2]]
    exact = not sliced and audience.sample_percent >= 100
    out = {"members_examined": examined, "exact": exact}
    if exact:
        out["eligible"] = exact_count
    else:
        estimate = est.combine(exact_count, sliced, audience.sample_percent)
        out["eligible"] = estimate["eligible"]
        out["estimate"] = estimate
    return out


def _eligible(audience: rules.Audience, members) -> int:
    return sum(1 for m in members if rules.eligible("preview", audience, _facts(m)))


def _shard(brand_id: str, shard: int, audience: rules.Audience) -> tuple[int, int, list[est.Slice]]:
    """(members read, eligible among the exactly counted, the slices estimated) of one shard."""
    after, before = rules.join_range(audience)
    page, more = audience_store.audience_page(brand_id, shard, after, before, None, EXACT_PAGE)
    if not more:
        return len(page), _eligible(audience, page), []
    last, _ = member_store.audience_desc(brand_id, shard, None, after or "0", before or "9999", 1)
    low = after or page[0].joined_at
    high = last[0][1].joined_at if last else page[-1].joined_at
    examined, found = 0, []
    for start, end in est.slices(low, high):
        members, fuller = audience_store.audience_page(brand_id, shard, start, end, None, est.SAMPLE)
        examined += len(members)
        matched = _eligible(audience, members)
        if not fuller:
            found.append(est.Slice(len(members), matched, True))
            continue
        span = (est.parse(members[-1].joined_at) - est.parse(start)).total_seconds()
        length = (est.parse(end) - est.parse(start)).total_seconds()
        found.append(est.Slice(len(members), matched, False, span, length))
    return examined + len(page), 0, found
