"""Onboarding: a shopper touches a channel code (QR scan, mini-program scene, WeCom add) and
becomes, or stays, one member of the brand, attributed to the store, guide and channel.

AWS cost per touch: one BatchGetItem (channel code + identity links + guide) and one
TransactWriteItems (member, identity links, inbound marker, outbox) — plus one more BatchGetItem
when the shopper is new to an OA or WeCom app and WeChat has to be asked for their unionid.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from chalicelib.domain.members import (MINI_PROGRAM_SOURCE, UNKNOWN_SOURCE, Shopper, attribute, plan_touch,
                                       session_member, settled_member)
from chalicelib.ids import new_id, scene as valid_scene
from chalicelib.observability import count, logger
from chalicelib.storage import members as member_store
from chalicelib.storage.guides import ContactUnchanged
from chalicelib.storage.tx import Conflicted

MAX_ATTEMPTS = 4


@dataclass(frozen=True)
class TouchResult:
    member_id: str | None
    created: bool
    duplicate: bool


def iso(now: datetime) -> str:
    return now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def touch(brand_id: str, shopper: Shopper, *, scene: str | None, via: str, now: datetime,
          inbound: str | None = None, event: str = "", subscribed: bool | None = None,
          wecom_user_id: str | None = None, welcome_code: str | None = None,
          find_unionid=None, join_only: bool = False, default_source: str = UNKNOWN_SOURCE) -> TouchResult:
    """Find or create the member and record the touch, exactly once per `inbound` key.

    `find_unionid()` (optional) asks WeChat for the shopper's unionid; it is called only when no
    identity the shopper brought resolves yet, so a known member costs WeChat nothing.
    Concurrent first touches by one shopper create one member: the identity links are conditional
    puts, and the loser of the race re-resolves and becomes a repeat touch.
    `join_only`: make the shopper a member if they are none yet, else change nothing (no touch) unless
    an identity they brought is not linked yet (an OA follower's first mini-program visit: their
    subscribe credits are found by the member's mini-program openid), which a repeat touch links.
    """
    count_contact = True
    for _attempt in range(MAX_ATTEMPTS):
        ctx = member_store.load_touch_context(brand_id, scene=scene, identities=shopper.identities(),
                                       wecom_user_id=wecom_user_id)
        if not ctx.found and find_unionid is not None and shopper.unionid is None:
            unionid = find_unionid()
            find_unionid = None
            if unionid:
                shopper = replace(shopper, unionid=unionid)
                continue                    # resolve again, now with the unionid
        settled = settled_member(ctx.found, shopper.identities())
        if join_only and settled is not None:
            return TouchResult(settled, False, False)
        at = iso(now)
        plan = plan_touch(brand_id=brand_id, shopper=shopper, found=ctx.found,
                          touch=attribute(ctx.channel, scene=scene, via=via, at=at, guide=ctx.guide,
                                          default_source=default_source),
                          channel=ctx.channel, new_member_id=new_id("m"), subscribed=subscribed,
                          wecom_guide=wecom_user_id, welcome_code=welcome_code)
        extend = None
        if count_contact and via == "wecom" and ctx.guide is not None and shopper.wecom and ctx.timezone:
            # the guide's contact list and counters move in this transaction (storage.guides)
            from chalicelib.domain.scoreboard import local_day
            from chalicelib.storage import guides
            extend = guides.contact_added(brand_id, ctx.guide.guide_id, shopper.wecom, plan.member_id,
                                          local_day(now, ctx.timezone), now)
        try:
            member_store.commit_touch(brand_id, plan, inbound=inbound, event=event, now=now, timezone_name=ctx.timezone,
                               **({"extend": extend} if extend else {}))
        except member_store.Duplicate:
            count("DuplicateCallbacks")
            return TouchResult(None, False, True)
        except member_store.IdentityRace:
            logger.info("identity race, resolving again", extra={"brand_id": brand_id})
            continue
        except ContactUnchanged:
            count_contact = False           # already the guide's contact: the touch alone, again
            continue
        except Conflicted:
            # DynamoDB cancelled the transaction while a concurrent one held the same identity item
            time.sleep(random.uniform(0, 0.02))
            continue
        logger.info("member touched", extra={"brand_id": brand_id, "member_id": plan.member_id,
                                             "member_created": plan.create, "scene": scene, "via": via,
                                             "source": plan.touch.source})
        if plan.create:
            count("MembersJoined")
        return TouchResult(plan.member_id, plan.create, False)
    raise RuntimeError(f"could not settle member identity for brand {brand_id} after {MAX_ATTEMPTS} attempts")


def scan_from_mini_program(brand_id: str, session: dict, body: dict, *, now: datetime | None = None) -> dict:
    """A shopper opened the mini-program from a code carrying `scene` (their session says who they are)."""
    scene = valid_scene(body.get("scene"))
    at = now or datetime.now(timezone.utc)
    result = touch(brand_id, Shopper(mp=session["o"], unionid=session.get("u")), scene=scene, via="mp", now=at)
    return {"member_id": result.member_id, "created": result.created, "scene": scene, "at": iso(at)}


def join_from_mini_program(brand_id: str, session: dict, *, now: datetime | None = None) -> str:
    """The member behind a mini-program session, made now if the shopper never scanned a code (they
    came from search, a share or the OA menu): first touch source `mini_program`, no store, guide or
    scene, one `member.joined`. A known member is returned untouched (once their mini-program openid is
    linked). Concurrent first calls from one
    session make one member (the identity links are conditional puts; the losers find the winner)."""
    named = session_member(session)
    if named is not None:
        return named
    shopper = Shopper(mp=session["o"], unionid=session.get("u"))
    result = touch(brand_id, shopper, scene=None, via="mp", now=now or datetime.now(timezone.utc),
                   join_only=True, default_source=MINI_PROGRAM_SOURCE)
    return result.member_id
