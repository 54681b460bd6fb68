"""The local stack's AWS emulator and WeChat simulator, in a process of its own for the smoke tests.

A process apart so the test process never points chalicelib's clients anywhere (tests/integration's
stack may live beside it) and so the emulator can be taken away. Prints one JSON line (`READY {...}`:
the resource environment, the emulator and simulator URLs, the platform key), then obeys commands,
one per stdin line, answering `OK {...}` or `ERR message`:
    fire <schedule name>     EventBridge Scheduler fires the schedule now (the emulator never does)
Exits when stdin closes.
"""
from __future__ import annotations

import json
import sys


def main() -> None:
    # stdout is the protocol's alone: anything the stack prints or logs (Powertools logs to stdout)
    # goes to stderr, so it can neither be mistaken for an answer nor fill a pipe nobody reads
    protocol, sys.stdout = sys.stdout, sys.stderr
    from siyu_dev.stack import LocalStack
    stack = LocalStack(api_port=0, aws_port=0, wechat_port=0, serve_api=False, run_pump=False).start()
    # The emulator loads its SSM backend on first use, seconds on a busy machine: longer than a
    # function's read timeout, whose retry of the PutParameter that did land then fails. Load it now.
    from chalicelib import aws
    aws.client("ssm").put_parameter(Name="/siyu/smoke/warm-up", Value="{}", Type="SecureString", Overwrite=True)
    print("READY " + json.dumps({"env": stack.env, "aws_url": stack.aws_url, "wechat_url": stack.wechat_url,
                                 "platform_key": stack.platform_key}), file=protocol, flush=True)
    try:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            try:
                if command == "fire":
                    stack.scheduler.fire(argument, times=1)
                    print("OK {}", file=protocol, flush=True)
                else:
                    print(f"ERR unknown command {command!r}", file=protocol, flush=True)
            except Exception as err:  # noqa: BLE001 - tell the test, keep serving
                print(f"ERR {err!r}", file=protocol, flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
