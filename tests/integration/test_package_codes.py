"""Issue 11 §2: package codes — a batch minted by the worker, its CSV, one winner per code, the
unknown-code guard, and a worker killed between pages resuming with no duplicate code."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def template(brand, stock: int = 5000) -> str:
    r = brand.admin("POST", "/coupon-templates", {"name": "包裹卡 ¥10", "kind": "cash_off", "value": 1000,
                                                   "min_spend_cents": 3000, "valid_days_after_claim": 30,
                                                   "total_stock": stock, "per_member_limit": 1})
    assert r.status_code == 201, r.text
    return r.json()["template_id"]


def wait_complete(brand, batch_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = brand.admin("GET", f"/package-codes/{batch_id}").json()
        if got["state"] == "complete":
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.3)


def csv_codes(brand, batch_id: str) -> list[tuple[str, str]]:
    r = brand.admin("GET", f"/package-codes/{batch_id}/codes.csv")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "code,scene"
    return [tuple(line.split(",")) for line in lines[1:]]


def scan(brand, session: str, scene: str) -> requests.Response:
    return brand.api.call("POST", f"/mp/{brand.brand_id}/scan", json_body={"scene": scene},
                          headers={"Authorization": f"Bearer {session}"})


def test_a_batch_of_1000_has_one_winner_per_code_under_50_concurrent_first_scans(stack, brand):
    tpl = template(brand)
    body = {"batch_id": "spring-1", "count": 1000, "channel": "S1", "reward": {"coupon_template_id": tpl}}
    r = brand.admin("POST", "/package-codes", body)
    assert r.status_code == 202 and r.json()["state"] in ("minting", "complete"), r.text
    done = wait_complete(brand, "spring-1")
    assert done["minted"] == 1000 and done["progress"] == 1
    rows = csv_codes(brand, "spring-1")
    assert len(rows) == 1000 and len({c for c, _ in rows}) == 1000
    assert all(scene == f"pk.{code}" and len(scene) <= 32 for code, scene in rows)
    # the same request again is the same batch; another with its id is refused
    assert brand.admin("POST", "/package-codes", body).json()["batch_id"] == "spring-1"
    other = brand.admin("POST", "/package-codes", {**body, "count": 5})
    assert other.status_code == 409 and other.json()["error"]["code"] == "batch_exists"

    scene = rows[123][1]
    sessions = [brand.mp_session(f"o-pk-{i}") for i in range(50)]
    answers: list = [None] * 50

    def first_scan(i):
        answers[i] = scan(brand, sessions[i], scene)
    threads = [threading.Thread(target=first_scan, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, a in enumerate(answers) if a.status_code == 200]
    assert len(winners) == 1, [(a.status_code, a.text[:80]) for a in answers]
    losers = [a for a in answers if a.status_code != 200]
    assert {(a.status_code, a.json()["error"]["code"]) for a in losers} == {(409, "code_already_used")}
    won = answers[winners[0]].json()
    assert won["channel"] == "S1" and won["coupon"]["template_id"] == tpl
    # one reward: the template issued exactly one coupon
    assert brand.admin("GET", f"/coupon-templates/{tpl}").json()["issued"] == 1
    # the winner's retry gets its first answer again, and nothing more is issued
    again = scan(brand, sessions[winners[0]], scene)
    assert again.status_code == 200 and again.json() == won
    assert brand.admin("GET", f"/coupon-templates/{tpl}").json()["issued"] == 1
    member = brand.member(mp_openid=f"o-pk-{winners[0]}")
    assert member["member_id"] == won["member_id"]
    assert (member["first_touch"]["scene"], member["first_touch"]["store_id"]) == ("S1", "sz")
    # another code of the batch is still good for another shopper
    assert scan(brand, sessions[(winners[0] + 1) % 50], rows[7][1]).status_code == 200


def test_unknown_codes_count_toward_the_guard(stack, brand):
    session = brand.mp_session("o-pk-guesser")
    for n in range(20):
        r = scan(brand, session, f"pk.{'a' * 19}{'abcdefghijklmnopqrstu'[n]}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_code", r.text
    r = scan(brand, session, "pk.not-even-a-code")
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_unknown_codes"


@pytest.mark.parametrize("change,code", [({"count": 0}, "invalid_count"), ({"count": 100_001}, "invalid_count"),
                                         ({"count": True}, "invalid_count"), ({"reward": {}}, "invalid_reward"),
                                         ({"batch_id": "Bad Id"}, "invalid_batch_id"),
                                         ({"channel": "NOPE"}, "unknown_channel"),
                                         ({"reward": {"coupon_template_id": "tpl_missing"}}, "unknown_coupon_template")])
def test_bad_batches_are_refused_and_change_nothing(stack, shared_brand, change, code):
    body = {"batch_id": "bad", "count": 10, "channel": "S1", "reward": {"coupon_template_id": "tpl_missing"},
            **change}
    if code != "unknown_coupon_template" and "reward" not in change:
        body["reward"] = {"coupon_template_id": template(shared_brand, 10)}
    r = shared_brand.admin("POST", "/package-codes", body)
    assert r.json()["error"]["code"] == code, r.text
    assert 400 <= r.status_code < 500
    assert shared_brand.admin("GET", "/package-codes/bad").status_code == 404


def test_a_worker_killed_between_pages_resumes_with_no_duplicate_code(stack, brand):
    """The batch is written without its job (so the pump does not race the test); a child process
    mints it and is killed (os._exit) after its second page; the next run resumes at the checkpoint."""
    from chalicelib.domain import package_codes as rules
    from chalicelib.services import package_codes as service
    from chalicelib.storage import package_codes as package_code_store
    from chalicelib.storage.models import Item, PackageBatch
    tpl = template(brand)
    package_code_store.create_batch(PackageBatch(*package_code_store.batch_key(brand.brand_id, "crash"), brand_id=brand.brand_id,
                                    batch_id="crash", count=2500, channel="S1", coupon_template_id=tpl,
                                    secret=os.urandom(32).hex(), request_hash="-", state="minting",
                                    pages_done=0, minted=0, created_at="2026-01-01T00:00:00Z"))
    child = ("import os\nfrom chalicelib.services import package_codes as p\n"
             f"p.mint({brand.brand_id!r}, 'crash', after_page=lambda page: page == 1 and os._exit(9))\n")
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 9, done.stderr
    killed = package_code_store.get_batch(brand.brand_id, "crash")
    assert (killed.state, int(killed.pages_done), int(killed.minted)) == ("minting", 2, 2000)
    assert service.mint(brand.brand_id, "crash") is True
    batch = package_code_store.get_batch(brand.brand_id, "crash")
    assert (batch.state, int(batch.minted)) == ("complete", 2500)
    codes = rules.codes(bytes.fromhex(batch.secret), 0, 2500)
    assert len(set(codes)) == 2500
    keys = [(package_code_store.code_pk(brand.brand_id, c), "PKCODE") for c in codes]
    stored = [i for n in range(0, len(keys), 100) for i in Item.batch_get(keys[n:n + 100])]
    assert sorted(int(i.index) for i in stored) == list(range(2500))
