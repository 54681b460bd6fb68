"""The AWS emulator or the WeChat simulator alone in a process, for a bench that keeps them out of the
process it measures (bench.throughput): `python -m bench.servers aws|wechat` serves on a free port of
127.0.0.1, prints `READY <url>` and serves until its standard input closes (the bench's end, or its
death: no server outlives the bench that started it).
"""
from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = "READY "


def serve(kind: str) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if kind == "aws":
        from siyu_dev.emulator import EmulatorServer
        server = EmulatorServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        url = "http://127.0.0.1:%d" % server.get_host_and_port()[1]
    elif kind == "wechat":
        from siyu_dev.wechat_sim import WeChatSimulator
        server = WeChatSimulator(port=0)
        url = server.start()
    else:
        raise SystemExit(f"usage: python -m bench.servers aws|wechat (not {kind!r})")
    print(READY + url, flush=True)
    sys.stdout = sys.stderr             # nothing more on the pipe the bench no longer reads
    sys.stdin.read()                    # until the bench closes our stdin or dies
    server.stop()


@contextmanager
def serving(kind: str, timeout: float = 60.0):
    """Start `kind` in a process of its own; yields its URL; stops it on exit."""
    process = subprocess.Popen([sys.executable, "-m", "bench.servers", kind], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith(READY):
            raise RuntimeError(f"the {kind} server did not start: {line!r}")
        yield line[len(READY):].strip()
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else "")
