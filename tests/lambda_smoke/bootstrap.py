"""The child side of the Lambda smoke tests: a stand-in for Lambda's Python runtime loop.

Run as `python -I -S bootstrap.py SPEC_JSON`: isolated (no PYTHONPATH, no user site) and without
`site`, so nothing of the test venv is importable. Only the directories in SPEC's "path" are put in
front of the standard library, in Lambda's order: the function's code (/var/task), the layer
(/opt/python), the runtime's boto3/botocore. The environment is whatever the parent gave (it is built
from scratch there, as Lambda builds it from the function's configuration).

Like Lambda it imports the handler once (the init phase), then runs one invocation per line read
from stdin ({"event", "trace_id"}), setting _X_AMZN_TRACE_ID for each as the runtime does. Results go
to the file descriptor SPEC names, one JSON line each: stdout and stderr stay the function's logs.
Uses the standard library only.
"""
import importlib
import json
import os
import sys
import time
import traceback
import uuid


def _error(err: BaseException) -> dict:
    # the shape of Lambda's error response, plus the chain (an error raised while handling another)
    return {"ok": False, "errorType": type(err).__name__, "errorMessage": str(err),
            "stackTrace": traceback.format_exception(type(err), err, err.__traceback__)}


class Context:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, spec: dict):
        name = spec["function_name"]
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws-cn:lambda:{os.environ['AWS_REGION']}:000000000000:function:{name}"
        self.memory_limit_in_mb = int(spec.get("memory", 256))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "2026/01/01/[$LATEST]" + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + float(spec.get("timeout", 30))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path[:0] = spec["path"]
    out = os.fdopen(int(spec["fd"]), "w", buffering=1)
    module, _, attr = spec["handler"].rpartition(".")
    started = time.perf_counter()
    handler = None
    try:
        handler = getattr(importlib.import_module(module), attr)
        init = {"ok": True}
    except BaseException as err:  # noqa: BLE001 - reported as Lambda reports Runtime.ImportModuleError
        init = _error(err)
    init["seconds"] = time.perf_counter() - started
    init["sys_path"] = sys.path
    for name in ("boto3", "botocore", "urllib3", "aws_xray_sdk"):
        found = sys.modules.get(name)
        if found is None:
            try:
                found = importlib.import_module(name)
            except ImportError:
                continue
        init[name] = {"version": getattr(found, "__version__", None), "file": getattr(found, "__file__", None)}
    out.write(json.dumps(init, default=str) + "\n")
    for line in sys.stdin:
        message = json.loads(line)
        os.environ["_X_AMZN_TRACE_ID"] = message["trace_id"]
        try:
            if handler is None:
                raise RuntimeError("the handler failed to import")
            reply = {"ok": True, "result": handler(message["event"], Context(spec))}
        except BaseException as err:  # noqa: BLE001 - the invocation fails, the container lives on
            reply = _error(err)
        sys.stdout.flush()
        sys.stderr.flush()
        out.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
