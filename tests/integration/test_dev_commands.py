"""`python -m siyu_dev` as a developer meets it: a port already taken, a stack that is not running, the
latest events, a campaign watched to its end, a platform key without what it needs, and --help.

Each command runs in a child interpreter, as from a terminal."""
from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def siyu_dev(*args: str, env: dict | None = None, timeout: float = 30, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "siyu_dev", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def taken_port():
    """A port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def state_file(tmp_path) -> Path:
    return tmp_path / "demo.json"


# ---- make run with a port taken -----------------------------------------------------------------

@pytest.mark.parametrize("env_var", ["SIYU_API_PORT", "SIYU_AWS_PORT", "SIYU_WECHAT_PORT"])
def test_run_exits_at_once_naming_the_taken_port_and_its_variable(taken_port, state_file, env_var):
    env = {"SIYU_API_PORT": "0", "SIYU_AWS_PORT": "0", "SIYU_WECHAT_PORT": "0", env_var: str(taken_port),
           "SIYU_LOCAL_STATE": str(state_file)}
    started = time.monotonic()
    done = siyu_dev("run", env=env, timeout=60)      # a stack that came up would run until killed: a timeout
    assert time.monotonic() - started < 15
    assert done.returncode != 0
    assert f"port {taken_port} is in use; set {env_var}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not state_file.exists()                  # nothing of a stack that did not start


def test_a_second_run_names_every_port_the_first_one_holds(stack, state_file):
    env = {"SIYU_API_PORT": str(stack.api_port), "SIYU_AWS_PORT": str(stack.aws_port),
           "SIYU_WECHAT_PORT": str(stack.wechat_port), "SIYU_LOCAL_STATE": str(state_file)}
    done = siyu_dev("run", env=env, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    for env_var, port in [("SIYU_API_PORT", stack.api_port), ("SIYU_AWS_PORT", stack.aws_port),
                          ("SIYU_WECHAT_PORT", stack.wechat_port)]:
        assert f"port {port} is in use; set {env_var}" in done.stderr
    assert requests_ok(f"{stack.api_url}/health")          # the running stack is untouched


def requests_ok(url: str) -> bool:
    import requests
    return requests.get(url, timeout=10).status_code == 200


def test_run_refuses_a_port_that_is_not_a_number(state_file):
    done = siyu_dev("run", env={"SIYU_API_PORT": "80a", "SIYU_LOCAL_STATE": str(state_file)})
    assert done.returncode != 0 and "SIYU_API_PORT='80a' is not a port number" in done.stderr


# ---- commands when the stack is not running ------------------------------------------------------

COMMANDS = [["scan", "--scene", "S1"], ["scan", "--app", "mp", "--scene", "S1"], ["coupon"], ["campaign"]]


def in_process(monkeypatch, state_file: Path, *argv: str) -> SystemExit:
    """`python -m siyu_dev argv` in this interpreter (these commands only speak HTTP to the state's
    URLs): the SystemExit it ends with. A SystemExit carrying a message prints it and exits 1."""
    from siyu_dev import __main__ as cli
    monkeypatch.setattr(cli, "STATE_FILE", state_file)
    with pytest.raises(SystemExit) as ended:
        cli.main(list(argv))
    return ended.value


def _stopped_stack_state(state_file: Path) -> None:
    """The state file of a stack that has gone away (killed, so it could not remove it)."""
    with socket.socket() as sock:                   # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    from siyu_dev.__main__ import DEMO_BRAND
    state_file.write_text(json.dumps({"api_url": closed, "aws_url": closed, "wechat_url": closed,
                                      "platform_key": "k", "brand": DEMO_BRAND, "admin_key": "a",
                                      "pos_keys": {"sz-futian": "p"}, "tap_queue_url": f"{closed}/000000000000/tap"}))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_command_without_a_stack_asks_whether_make_run_is_running(monkeypatch, state_file, command):
    ended = in_process(monkeypatch, state_file, *command)
    assert isinstance(ended.code, str) and "is `make run` running?" in ended.code


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_command_against_a_stopped_stack_asks_whether_make_run_is_running(monkeypatch, state_file, command):
    _stopped_stack_state(state_file)
    ended = in_process(monkeypatch, state_file, *command)
    assert isinstance(ended.code, str) and "is `make run` running?" in ended.code


def test_events_without_a_stack_or_against_a_stopped_one_asks_whether_make_run_is_running(state_file):
    """A child interpreter: `events` points the AWS clients at the state's emulator."""
    for prepare in (lambda: None, lambda: _stopped_stack_state(state_file)):
        prepare()
        done = siyu_dev("events", env={"SIYU_LOCAL_STATE": str(state_file)})
        assert done.returncode == 1
        assert "is `make run` running?" in done.stderr and "Traceback" not in done.stderr


# ---- events: the latest ones, and --follow ------------------------------------------------------

def _state_for(stack, state_file: Path, **extra) -> None:
    state_file.write_text(json.dumps({"api_url": stack.api_url, "aws_url": stack.aws_url,
                                      "wechat_url": stack.wechat_url, "platform_key": stack.platform_key,
                                      "tap_queue_url": stack.env["SIYU_LOCAL_TAP_QUEUE_URL"], **extra}))


def _publish(stack, marker: str, numbers: range) -> None:
    """Events on the bus, as siyu publishes them (the tap rule matches siyu's source)."""
    from chalicelib import aws, resources
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    entries = [{"Source": resources.BUS.source, "DetailType": "test.event", "EventBusName": stack.env["SIYU_EVENT_BUS"],
                "Time": at + timedelta(seconds=n), "Detail": json.dumps({"brand_id": marker, "n": n})}
               for n in numbers]
    for i in range(0, len(entries), 10):
        assert aws.client("events").put_events(Entries=entries[i:i + 10])["FailedEntryCount"] == 0


def _numbers(output: str, marker: str) -> list[int]:
    return [json.loads(line.split(" ", 2)[2])["n"] for line in output.splitlines()
            if f'"brand_id": "{marker}"' in line]


def test_events_shows_the_latest_events_not_the_first_ten(stack, state_file):
    _state_for(stack, state_file)
    assert siyu_dev("events", env={"SIYU_LOCAL_STATE": str(state_file)}).returncode == 0   # what other tests left
    marker = f"events-{time.time_ns()}"
    _publish(stack, marker, range(25))
    done = siyu_dev("events", "--last", "5", env={"SIYU_LOCAL_STATE": str(state_file)})
    assert done.returncode == 0, done.stderr
    assert _numbers(done.stdout, marker) == [20, 21, 22, 23, 24]
    assert "earlier events not shown" in done.stdout
    again = siyu_dev("events", "--last", "0", env={"SIYU_LOCAL_STATE": str(state_file)})   # kept once read
    assert _numbers(again.stdout, marker) == list(range(25))


def test_events_follow_prints_new_events_as_they_arrive(stack, state_file):
    _state_for(stack, state_file)
    marker = f"follow-{time.time_ns()}"
    follower = subprocess.Popen([sys.executable, "-m", "siyu_dev", "events", "--follow", "--last", "1"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "SIYU_LOCAL_STATE": str(state_file)})
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
        while "following" not in lines.get(timeout=30):     # the backlog is printed; it waits on the queue
            pass
        _publish(stack, marker, range(3))
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            try:
                seen += _numbers(lines.get(timeout=1), marker)
            except queue.Empty:
                pass
        assert seen == [0, 1, 2]
        assert follower.poll() is None          # still following
    finally:
        follower.terminate()
        follower.wait(10)


# ---- campaign --wait -----------------------------------------------------------------------------

def test_campaign_wait_prints_progress_until_the_run_completes(stack, state_file):
    from siyu_dev.__main__ import DEMO_BRAND, seed_demo
    keys = seed_demo(stack.api_url, stack.platform_key)
    _state_for(stack, state_file, brand=DEMO_BRAND, **keys)
    done = siyu_dev("campaign", "--openid", "o_cli_wait", "--delay", "2", "--wait", "--timeout", "60",
                    env={"SIYU_LOCAL_STATE": str(state_file)}, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    progress = [line for line in done.stdout.splitlines() if line[:2].isdigit() and line[2] == ":"]
    assert progress, done.stdout
    assert "completed: sent 1 of 1 targeted" in progress[-1]


# ---- platform-key without what it needs ----------------------------------------------------------

def test_platform_key_says_what_is_missing(tmp_path):
    bare = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIYU_"))}
    bare.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "siyu_dev", "platform-key"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env=bare)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for missing in ("--table", "--region", "AWS credentials"):
        assert missing in done.stderr
    with_region = subprocess.run([sys.executable, "-m", "siyu_dev", "platform-key", "--region", "cn-north-1",
                                  "--table", "siyu-prod-main"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                                 env=bare)
    assert with_region.returncode == 1
    assert "AWS credentials" in with_region.stderr and "--region" not in with_region.stderr


def test_platform_key_names_a_table_that_does_not_exist(stack):
    done = siyu_dev("platform-key", "--region", "cn-north-1", "--table", "no-such-table")
    assert done.returncode == 1 and "no table 'no-such-table' in cn-north-1" in done.stderr


# ---- --help --------------------------------------------------------------------------------------

def test_help_describes_each_command_with_examples(capsys):
    from siyu_dev.__main__ import main
    for command in ["run", "scan", "coupon", "campaign", "events", "platform-key"]:
        with pytest.raises(SystemExit) as ended:
            main([command, "--help"])
        assert ended.value.code == 0
        shown = capsys.readouterr().out
        description = shown.split("\n\n")[1]
        assert len(description) > 40, command             # what it does, not only the usage line
        assert "examples:" in shown and f"-m siyu_dev {command}" in shown.split("examples:")[1]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "examples:" in capsys.readouterr().out
