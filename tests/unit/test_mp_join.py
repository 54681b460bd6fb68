"""A mini-program join on an in-memory member store, interleavings forced (no threads, no timing)."""
from datetime import datetime, timezone

import pytest

from chalicelib.services import onboarding
from chalicelib.storage import members as real_store
from chalicelib.storage.members import TouchContext
from chalicelib.storage.tx import Conflicted

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class FakeMembers:
    """Identity links with DynamoDB's conditional semantics: the part of storage.members a touch uses."""
    Duplicate, IdentityRace = real_store.Duplicate, real_store.IdentityRace

    def __init__(self):
        self.links: dict[tuple[str, str], str] = {}
        self.commits = []
        self.before_commit: list = []          # run one per commit attempt, before it applies

    def load_touch_context(self, brand_id, *, scene, identities, wecom_user_id=None):
        return TouchContext(None, None, {i: self.links[i] for i in identities if i in self.links})

    def commit_touch(self, brand_id, plan, *, inbound, event, now, timezone_name=None):
        if self.before_commit:
            self.before_commit.pop(0)()
        if any(link in self.links for link in plan.link):
            raise real_store.IdentityRace()
        for link in plan.link:
            self.links[link] = plan.member_id
        self.commits.append(plan)


@pytest.fixture
def fake(monkeypatch):
    fake = FakeMembers()
    monkeypatch.setattr(onboarding, "member_store", fake)
    return fake


def join(session: dict) -> str:
    return onboarding.join_from_mini_program("b1", session, now=NOW)


def test_a_shopper_who_never_scanned_joins_once_with_source_mini_program(fake):
    member_id = join({"o": "o1", "u": "u1"})
    [plan] = fake.commits
    assert plan.create and plan.member_id == member_id
    assert plan.touch.source == "mini_program" and (plan.touch.store_id, plan.touch.guide_id) == (None, None)
    assert [name for name, _ in plan.events] == ["member.joined"]
    assert fake.links == {("unionid", "u1"): member_id, ("mp", "o1"): member_id}


def test_the_loser_of_a_first_join_race_returns_the_winner_and_writes_nothing(fake):
    # A reads "no member"; before A commits, B's whole join lands; A's links are then refused.
    won = []
    fake.before_commit.append(lambda: won.append(join({"o": "o1"})))
    fake.before_commit.append(lambda: None)                 # B's own commit
    lost = join({"o": "o1"})
    assert lost == won[0]
    assert len(fake.commits) == 1 and fake.commits[0].create
    assert sum(name == "member.joined" for p in fake.commits for name, _ in p.events) == 1


def test_a_transaction_conflict_is_tried_again(fake):
    def conflict():
        raise Conflicted()
    fake.before_commit.append(conflict)
    member_id = join({"o": "o2"})
    assert [p.member_id for p in fake.commits] == [member_id]


def test_a_known_member_is_returned_untouched(fake):
    fake.links[("mp", "o3")] = "m_known"
    assert join({"o": "o3"}) == "m_known"
    assert fake.commits == []                   # a claim is no touch: first/last touch, counts unchanged


def test_an_oa_follower_on_their_first_mini_program_visit_gets_their_openid_linked_once(fake):
    # a member known by unionid (followed the OA); the mini-program session brings its own openid too
    fake.links[("unionid", "u4")] = "m_oa"
    assert join({"o": "o4", "u": "u4"}) == "m_oa"
    [plan] = fake.commits
    assert not plan.create and plan.member_id == "m_oa" and plan.link == [("mp", "o4")]
    assert plan.events == []                                  # no second member.joined
    assert join({"o": "o4", "u": "u4"}) == "m_oa" and len(fake.commits) == 1
