"""Membership rules: who a shopper is, where they came from, and what a touch changes.

Pure: plain data in, a plan of changes out. The service commits the plan in one DynamoDB
transaction whose conditions make it safe under WeChat's retries and concurrent first scans.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Identity namespaces, most authoritative first: a unionid is the same person across the brand's
# OA, mini-program and WeCom; openids are per app; external_userid is per WeCom corp.
NAMESPACES = ("unionid", "mp", "oa", "wecom")
MEMBER_FIELD = {"unionid": "unionid", "mp": "mp_openid", "oa": "oa_openid", "wecom": "external_userid"}
UNKNOWN_SOURCE = "unknown"
# A shopper who reached the mini-program without a code (search, a share, the OA menu) and joined by
# claiming a coupon or accepting a subscription there.
MINI_PROGRAM_SOURCE = "mini_program"
AUDIENCE_SHARDS = 16


@dataclass(frozen=True)
class ChannelCode:
    scene: str
    store_id: str | None
    guide_id: str | None
    source: str
    tags: tuple[str, ...] = ()
    welcome_coupon_template_id: str | None = None
    welcome_message: str | None = None


@dataclass(frozen=True)
class Shopper:
    """The identities one callback or session tells us about; any may be missing."""
    unionid: str | None = None
    mp: str | None = None
    oa: str | None = None
    wecom: str | None = None

    def identities(self) -> list[tuple[str, str]]:
        return [(ns, getattr(self, ns)) for ns in NAMESPACES if getattr(self, ns)]


@dataclass(frozen=True)
class Touch:
    store_id: str | None
    guide_id: str | None
    scene: str | None
    source: str
    via: str
    at: str

    def as_dict(self) -> dict:
        return {"store_id": self.store_id, "guide_id": self.guide_id, "scene": self.scene,
                "source": self.source, "via": self.via, "at": self.at}


@dataclass(frozen=True)
class GuideRef:
    guide_id: str
    store_id: str


@dataclass
class Plan:
    """What a touch changes. `create` means a new member item; otherwise `member_id` is updated."""
    member_id: str
    create: bool
    touch: Touch
    tags: tuple[str, ...]
    link: list[tuple[str, str]]                    # identities to point at member_id (new items)
    fields: dict[str, str]                         # member fields learned from this touch
    events: list[tuple[str, dict]] = field(default_factory=list)
    tasks: list[tuple[str, dict]] = field(default_factory=list)
    subscribed: bool | None = None
    wecom_guide: str | None = None


def attribute(channel: ChannelCode | None, *, scene: str | None, via: str, at: str,
              guide: GuideRef | None = None, default_source: str = UNKNOWN_SOURCE) -> Touch:
    """The touch a scan makes. A scene with no channel code still counts, as source 'unknown'
    (`default_source`: a mini-program join with no code at all is 'mini_program'); a WeCom add
    without a State falls back to the guide the shopper added."""
    if channel is not None:
        return Touch(channel.store_id, channel.guide_id, scene, channel.source, via, at)
    if guide is not None:
        return Touch(guide.store_id, guide.guide_id, scene, "guide" if scene is None else UNKNOWN_SOURCE, via, at)
    return Touch(None, None, scene, default_source, via, at)


def choose_member(found: dict[tuple[str, str], str]) -> str | None:
    """The member the shopper already is, by the most authoritative identity that resolves."""
    for ns in NAMESPACES:
        for (found_ns, _value), member_id in found.items():
            if found_ns == ns:
                return member_id
    return None


def settled_member(found: dict[tuple[str, str], str], identities: list[tuple[str, str]]) -> str | None:
    """The member the shopper is for good, or None while an identity they brought is not linked yet.
    Identity links are written once and never change, so once every identity resolves no later touch
    can make choose_member answer otherwise (a session may then carry the member: mp_sessions)."""
    if found and all(identity in found for identity in identities):
        return choose_member(found)
    return None


def session_member(claims: dict) -> str | None:
    """The member a mini-program session names (services.mp_sessions.naming_member: only once every
    identity it carries resolves to them for good), or None for a session that names none."""
    member_id = claims.get("m")
    return member_id if isinstance(member_id, str) and member_id else None


def audience_shard(member_id: str) -> int:
    return sum(member_id.encode()) % AUDIENCE_SHARDS


def audience_key(brand_id: str, member_id: str, joined_at: str) -> tuple[str, str]:
    return f"B#{brand_id}#AUD#{audience_shard(member_id):02d}", f"{joined_at}#{member_id}"


def plan_touch(*, brand_id: str, shopper: Shopper, found: dict[tuple[str, str], str], touch: Touch,
               channel: ChannelCode | None, new_member_id: str, subscribed: bool | None = None,
               wecom_guide: str | None = None, welcome_code: str | None = None) -> Plan:
    """Plan a touch: create the member if no identity resolves, else update the one that does.

    Every identity the shopper brought that is not linked yet gets linked to that member. A
    `member.joined` event and the welcome follow-up ride along only on creation (the welcome
    message also on a repeat touch when WeChat gives a fresh WeCom welcome code).
    """
    identities = shopper.identities()
    if not identities:
        raise ValueError("a touch needs at least one identity")
    existing = choose_member(found)
    member_id = existing or new_member_id
    link = [ident for ident in identities if ident not in found]
    fields = {MEMBER_FIELD[ns]: value for ns, value in identities}
    tags = tuple(sorted(set(channel.tags))) if channel else ()
    plan = Plan(member_id=member_id, create=existing is None, touch=touch, tags=tags, link=link, fields=fields,
                subscribed=subscribed, wecom_guide=wecom_guide)
    if plan.create:
        plan.events.append(("member.joined", {
            "brand_id": brand_id, "member_id": member_id, "first_touch": touch.as_dict(),
            "tags": list(tags), **{MEMBER_FIELD[ns]: value for ns, value in identities}}))
    welcome = _welcome_task(brand_id, member_id, plan.create, channel, shopper, welcome_code)
    if welcome:
        plan.tasks.append(("welcome", welcome))
    return plan


def _welcome_task(brand_id: str, member_id: str, created: bool, channel: ChannelCode | None,
                  shopper: Shopper, welcome_code: str | None) -> dict | None:
    message = channel.welcome_message if channel else None
    coupon = channel.welcome_coupon_template_id if (channel and created) else None
    if welcome_code:
        # WeCom's welcome code is valid for 20 s and only this event carries it.
        return {"brand_id": brand_id, "member_id": member_id, "via": "wecom", "welcome_code": welcome_code,
                "message": message, "coupon_template_id": coupon}
    # Only the OA can message a new follower unprompted (customer-service message within 48 h).
    message = message if shopper.oa else None
    if not created or not (message or coupon):
        return None
    return {"brand_id": brand_id, "member_id": member_id, "via": "oa" if shopper.oa else "mp",
            "openid": shopper.oa or shopper.mp, "message": message, "coupon_template_id": coupon}
