"""The shared access-token source: one refresher across containers, compare-and-expire."""
import threading
import time

from chalicelib.wechat.tokens import MemoryTokenStore, SharedTokenSource


class WeChat:
    """Counts token fetches; issues tok1, tok2, ... (force_refresh noted)."""

    def __init__(self, delay: float = 0.0):
        self.fetches: list[bool] = []
        self.delay = delay
        self._lock = threading.Lock()

    def fetch(self, force: bool):
        time.sleep(self.delay)
        with self._lock:
            self.fetches.append(force)
            return f"tok{len(self.fetches)}", 7200


def containers(n: int, wechat: WeChat, store: MemoryTokenStore) -> list[SharedTokenSource]:
    return [SharedTokenSource("wx1", wechat.fetch, store, poll=0.005) for _ in range(n)]


def test_a_warm_container_answers_from_memory_and_a_cold_one_from_the_shared_item():
    wechat, store = WeChat(), MemoryTokenStore()
    a, b = containers(2, wechat, store)
    assert a.get() == "tok1" and a.get() == "tok1"
    assert b.get() == "tok1"
    assert wechat.fetches == [False]


def test_four_containers_seeing_40001_at_once_refresh_once():
    wechat, store = WeChat(delay=0.05), MemoryTokenStore()
    sources = containers(4, wechat, store)
    assert {s.get() for s in sources} == {"tok1"}
    barrier = threading.Barrier(4)
    got = []

    def on_40001(source):
        barrier.wait()
        source.expire("tok1")
        got.append(source.get())

    threads = [threading.Thread(target=on_40001, args=(s,)) for s in sources]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert got == ["tok2"] * 4
    assert wechat.fetches == [False, False]


def test_a_late_expire_of_an_old_token_does_not_throw_away_the_new_one():
    wechat, store = WeChat(), MemoryTokenStore()
    a, b = containers(2, wechat, store)
    a.get(), b.get()
    a.expire("tok1")
    assert a.get() == "tok2"
    b.expire("tok1")                   # b saw 40001 on tok1 only now
    assert b.get() == "tok2" and a.get() == "tok2"
    assert store.read("wx1").token == "tok2" and len(wechat.fetches) == 2


def test_a_refused_token_handed_back_by_stable_token_is_force_refreshed():
    store = MemoryTokenStore()
    answers = iter([("tokA", 7200), ("tokA", 7200), ("tokB", 7200)])
    forced = []

    def fetch(force):
        forced.append(force)
        return next(answers)

    source = SharedTokenSource("wx1", fetch, store)
    assert source.get() == "tokA"
    source.expire("tokA")
    assert source.get() == "tokB" and forced == [False, False, True]


def test_a_refresher_that_dies_holding_the_lease_is_replaced_after_the_lease():
    store, now = MemoryTokenStore(), [1000.0]
    assert store.take_lease("wx1", "dead-container", now[0] + 10, now[0])
    wechat = WeChat()

    def sleep(seconds):
        now[0] += seconds

    source = SharedTokenSource("wx1", wechat.fetch, store, clock=lambda: now[0], sleep=sleep, poll=1)
    assert source.get() == "tok1" and now[0] >= 1010


def test_a_refresher_whose_lease_ran_out_mid_fetch_takes_the_token_its_successor_stored():
    store, now = MemoryTokenStore(), [1000.0]

    def slow_fetch(force):
        # while this fetch hangs past the lease, another container takes over and stores its token
        now[0] += 20
        assert store.take_lease("wx1", "successor", now[0] + 10, now[0])
        assert store.put("wx1", "successor", "tokSuccessor", now[0] + 7200)
        return "tokLate", 7200

    source = SharedTokenSource("wx1", slow_fetch, store, clock=lambda: now[0])
    assert source.get() == "tokSuccessor"
    assert store.read("wx1").token == "tokSuccessor"


class PausedAfterRead:
    """One container's view of the shared store. Once armed, right after its next read (before it can
    act on what it read) `meanwhile` runs: another container's whole get() is forced into that gap.
    Deterministic: no threads, no sleeps."""

    def __init__(self, store):
        self.store, self.meanwhile = store, None

    def read(self, key):
        record = self.store.read(key)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return record

    def take_lease(self, *args, **kwargs):
        return self.store.take_lease(*args, **kwargs)

    def put(self, *args, **kwargs):
        return self.store.put(*args, **kwargs)

    def release(self, *args, **kwargs):
        return self.store.release(*args, **kwargs)

    def expire(self, *args, **kwargs):
        return self.store.expire(*args, **kwargs)


class Nested:
    """n containers sharing one store. `run()`: container 0 reads, then container 1 runs get() in that
    gap, which reads, then container 2 runs get() in its gap, ...: all n read before any acts; the
    last one refreshes; the n-1 others then try the lease on what they read."""

    def __init__(self, n: int, wechat: WeChat, store, key: str = "wx1"):
        self.views = [PausedAfterRead(store) for _ in range(n)]
        self.sources = [SharedTokenSource(key, wechat.fetch, v, sleep=lambda _s: None) for v in self.views]
        self.got: list[str | None] = [None] * n

    def _get(self, i: int) -> None:
        self.got[i] = self.sources[i].get()

    def run(self) -> list[str | None]:
        for i, view in enumerate(self.views[:-1]):
            view.meanwhile = lambda j=i + 1: self._get(j)
        self._get(0)
        return self.got


def test_containers_that_read_no_token_just_before_another_put_do_not_fetch_again():
    for n in (2, 5):
        wechat, store = WeChat(), MemoryTokenStore()
        assert Nested(n, wechat, store).run() == ["tok1"] * n
        assert wechat.fetches == [False]                 # N containers, one fetch


def test_containers_that_saw_40001_and_read_the_emptied_item_late_do_not_fetch_again():
    for n in (2, 5):
        wechat, store = WeChat(), MemoryTokenStore()
        nested = Nested(n, wechat, store)
        assert {s.get() for s in nested.sources} == {"tok1"}
        for s in nested.sources:                        # every container saw 40001 on tok1
            s.expire("tok1")
        assert nested.run() == ["tok2"] * n
        assert wechat.fetches == [False, False]


def test_a_container_holding_a_refused_token_that_the_item_still_holds_refreshes_it():
    # this container saw tokA refused, but the shared item holds tokA again (another container's
    # stable_token got it back while WeChat still thought it valid): the lease must be takeable on
    # that token, or this container would wait on a "fresh" token it cannot use
    store = MemoryTokenStore()
    answers = iter([("tokA", 7200), ("tokA", 7200), ("tokA", 7200), ("tokB", 7200)])
    forced = []

    def fetch(force):
        forced.append(force)
        return next(answers)

    a = SharedTokenSource("wx1", fetch, store, sleep=lambda _s: None)
    b = SharedTokenSource("wx1", fetch, store, sleep=lambda _s: None)
    assert a.get() == "tokA"
    a.expire("tokA")
    assert b.get() == "tokA"                       # b refreshes first and is handed tokA back
    assert a.get() == "tokB" and forced == [False, False, False, True]
    assert store.read("wx1").token == "tokB"


def test_a_brand_naming_another_brands_app_id_with_a_wrong_secret_does_not_get_its_token(monkeypatch):
    import pytest

    from chalicelib.services import wechat_apps
    from chalicelib.wechat import client
    from chalicelib.wechat.client import WeChatError
    fetched = []

    def fetch_stable_token(url, app_id, secret, force_refresh=False, timeout=4.0):
        # WeChat: one registered secret per app id
        fetched.append((app_id, secret))
        if (app_id, secret) != ("wxVictim", "right"):
            raise WeChatError(40125, "invalid appsecret", "cgi-bin/stable_token")
        return "tokVictim", 7200

    monkeypatch.setattr(client, "fetch_stable_token", fetch_stable_token)
    store = MemoryTokenStore()               # the item every container of every brand shares
    victim = wechat_apps.App("brandA", "oa", "wxVictim", "right", "t", None)
    intruder = wechat_apps.App("brandB", "oa", "wxVictim", "wrong", "t", None)
    assert wechat_apps.token_source(victim, "http://wechat.test", store).get() == "tokVictim"
    with pytest.raises(WeChatError) as err:
        wechat_apps.token_source(intruder, "http://wechat.test", store).get()
    assert err.value.config_error and err.value.errcode == 40125
    assert fetched == [("wxVictim", "right"), ("wxVictim", "wrong")]
    # the same brand's other app kinds are separate items too
    assert wechat_apps.token_source(wechat_apps.App("brandA", "mp", "wxVictim", "right", "t", None),
                                    "http://wechat.test", store).key != wechat_apps.token_source(
        victim, "http://wechat.test", store).key


def test_a_refresher_whose_fetch_failed_hands_the_lease_back_at_once():
    from chalicelib.wechat.client import OutcomeUnknown
    store, now = MemoryTokenStore(), [1000.0]
    answers = [OutcomeUnknown("network, outcome unknown: ReadTimeoutError", "cgi-bin/stable_token"), ("tok1", 7200)]

    def fetch(force):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(seconds):
        now[0] += seconds

    a = SharedTokenSource("wx1", fetch, store, clock=lambda: now[0], sleep=sleep)
    b = SharedTokenSource("wx1", fetch, store, clock=lambda: now[0], sleep=sleep)
    try:
        a.get()
        raise AssertionError("the fetch failed")
    except OutcomeUnknown:
        pass
    assert b.get() == "tok1" and now[0] == 1000.0          # no lease to wait out
