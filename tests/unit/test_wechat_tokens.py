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
