"""Lambda-faithful smoke tests: what `infra/` deploys, run the way Lambda runs it.

- The layer is built from requirements.txt alone (`pip install --target`, then boto3/botocore stripped
  as infra/build_layer.sh does), cached under build/lambda-smoke/<hash of the inputs>/ so reruns are fast.
- The runtime's AWS SDK (tests/lambda_smoke/runtime_sdk.txt) is installed beside it.
- Each function runs in a child interpreter (`python -I -S`, tests/lambda_smoke/bootstrap.py) whose import path
  is only its code asset (as infra/ packages it: app.py + chalicelib + Chalice's runtime for the API;
  handlers + chalicelib for the workers), the layer and that SDK: nothing of the test venv.
- Its environment is built from scratch: what infra/ gives each function (resources, stage, Powertools)
  plus what Lambda sets (function name, task root, region, credentials, X-Ray daemon address, a sampled
  trace header per invocation). The one deliberate difference: AWS_ENDPOINT_URL points at the emulator.
- The emulator and the WeChat simulator run in a process of their own (stack_server.py); a UDP socket
  plays the X-Ray daemon and keeps every segment the functions emit.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / "build" / "lambda-smoke"
RUNTIME_SDK = HERE / "runtime_sdk.txt"
REGION = "cn-north-1"


# ---- the layer and the runtime's SDK ----------------------------------------------------------------

def _pip(target: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-compile", "--target", str(target), *args], check=True, cwd=ROOT)


def _built(name: str, inputs: list[Path], build) -> Path:
    """build(dir) into build/lambda-smoke/<name>-<hash of inputs>, once: a rerun with the same inputs
    reuses it (the directory appears only complete, renamed into place after the build)."""
    digest = hashlib.sha256(sys.version.encode())
    for path in inputs:
        digest.update(path.read_bytes())
    final = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    CACHE.mkdir(parents=True, exist_ok=True)
    # one build at a time: `make test`'s workers each reach this fixture, and the second would otherwise
    # build the same layer alongside the first (a pip install on the same two cores); it waits and reuses
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not final.exists():
            partial = CACHE / f".{final.name}-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            build(partial)
            try:
                partial.rename(final)
            except OSError:         # another run finished the same build first
                shutil.rmtree(partial, ignore_errors=True)
            for stale in CACHE.glob(f"{name}-*"):       # builds of inputs that have changed since
                if stale != final:
                    shutil.rmtree(stale, ignore_errors=True)
    return final


def _build_layer(target: Path) -> None:
    _pip(target, "-r", str(ROOT / "requirements.txt"))
    # infra/build_layer.sh: the runtime provides boto3/botocore, the layer must not shadow them
    for pattern in ("boto3*", "botocore*", "s3transfer*"):
        for path in target.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _layer() -> Path:
    return _built("layer", [ROOT / "requirements.txt"], _build_layer)


def _runtime_sdk() -> Path:
    return _built("sdk", [RUNTIME_SDK], lambda target: _pip(target, "-r", str(RUNTIME_SDK)))


def pytest_collection_finish(session) -> None:
    """Start the builds as soon as a run is known to include these tests, beside the tests that come
    first, instead of when the first of these tests reaches its fixture (in a fresh clone `make test`
    spent the build's whole pip install there, with the other worker waiting or building it too). The
    fixtures below take the same lock: they wait for this build, or do it themselves if it failed."""
    if not any(Path(str(item.fspath)).is_relative_to(HERE) for item in session.items):
        return

    def build() -> None:
        try:
            _layer()
            _runtime_sdk()
        except Exception as exc:  # noqa: BLE001 - the fixture builds again, and fails the test with the cause
            print(f"lambda smoke: the background layer build failed ({exc!r}); the fixtures retry it")
    threading.Thread(target=build, name="lambda-smoke-layer", daemon=True).start()


@pytest.fixture(scope="session")
def layer() -> Path:
    return _layer()


@pytest.fixture(scope="session")
def runtime_sdk() -> Path:
    return _runtime_sdk()


# ---- code assets, as infra/ packages them --------------------------------------------------------------

def _copy_tree(name: str, target: Path) -> None:
    shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="session")
def api_asset(tmp_path_factory) -> Path:
    """What `chalice package` zips: app.py, chalicelib/, and Chalice's own runtime (chalice/app.py and
    chalice/__init__.py only, as its packager adds them)."""
    import chalice
    import chalice.app
    target = tmp_path_factory.mktemp("api-task")
    shutil.copy2(ROOT / "app.py", target / "app.py")
    _copy_tree("chalicelib", target)
    (target / "chalice").mkdir()
    shutil.copy2(chalice.app.__file__, target / "chalice" / "app.py")
    shutil.copy2(chalice.__file__, target / "chalice" / "__init__.py")
    return target


@pytest.fixture(scope="session")
def worker_asset(tmp_path_factory) -> Path:
    """infra/siyu_stack.py WORKER_ASSET_EXCLUDE: handlers/ and chalicelib/ only."""
    target = tmp_path_factory.mktemp("worker-task")
    _copy_tree("handlers", target)
    _copy_tree("chalicelib", target)
    return target


# ---- the local stack and the X-Ray daemon ------------------------------------------------------------

class StackProcess:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "stack_server.py")], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the local stack did not start: {line!r}")
        ready = json.loads(line[len("READY "):])
        self.env: dict[str, str] = ready["env"]
        self.aws_url: str = ready["aws_url"]
        self.wechat_url: str = ready["wechat_url"]
        self.platform_key: str = ready["platform_key"]

    def command(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if line.startswith("OK"):
                return
            if line.startswith("ERR") or not line:
                raise RuntimeError(f"stack command {text!r} failed: {line!r}")

    def client(self, service: str):
        """A client of the test process's own, straight to the emulator (to read what the functions did)."""
        import boto3
        return boto3.client(service, endpoint_url=self.aws_url, region_name=REGION, aws_access_key_id="local",
                            aws_secret_access_key="local")

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def stack():
    s = StackProcess()
    yield s
    s.stop()


class XRayDaemon:
    """A UDP socket where the functions' X-Ray SDK emits segments (Lambda's daemon listens on 2000)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.documents: list[dict] = []
        self._stop = False
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                continue
            _header, _, body = data.decode().partition("\n")
            self.documents.append(json.loads(body))

    def subsegments(self, trace_id: str) -> list[dict]:
        """Every subsegment emitted for the trace, nested ones included."""
        found, todo = [], [d for d in self.documents if d.get("trace_id") == trace_id]
        while todo:
            doc = todo.pop()
            found.append(doc)
            todo += doc.get("subsegments", [])
        return found

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture(scope="session")
def xray():
    daemon = XRayDaemon()
    yield daemon
    daemon.close()


# ---- functions -----------------------------------------------------------------------------------------

def trace_header() -> tuple[str, str]:
    """A new sampled trace, as Lambda's runtime sets _X_AMZN_TRACE_ID for an invocation."""
    root = "1-%08x-%s" % (int(time.time()), uuid.uuid4().hex[:24])
    return root, f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1;Lineage=1:a1b2c3d4:0"


def function_env(stack: StackProcess, xray: XRayDaemon, name: str, memory: int, timeout: int,
                 **overrides: str | None) -> dict[str, str]:
    env = {
        # what infra/siyu_stack.py puts in every function's environment (lambda_env)
        **{k: v for k, v in stack.env.items() if k.startswith("SIYU_") and k != "SIYU_LOCAL_TAP_QUEUE_URL"},
        "SIYU_WECHAT_BASE_URL": stack.wechat_url, "SIYU_WECOM_BASE_URL": stack.wechat_url, "SIYU_STAGE": "local",
        "POWERTOOLS_SERVICE_NAME": "siyu", "POWERTOOLS_METRICS_NAMESPACE": "siyu",
        # what Lambda sets (tracing ACTIVE included)
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
        "AWS_XRAY_DAEMON_ADDRESS": xray.address, "_AWS_XRAY_DAEMON_ADDRESS": xray.address.split(":")[0],
        "_AWS_XRAY_DAEMON_PORT": xray.address.split(":")[1], "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin/:/bin",
        # the one difference from AWS: the endpoint is the local emulator
        "AWS_ENDPOINT_URL": stack.aws_url,
    }
    for key, value in overrides.items():        # None: the variable is absent
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused at once, as from an unreachable AWS."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]


class LambdaFunction:
    """One function's execution environment: a child interpreter kept warm across invocations."""

    def __init__(self, name: str, handler: str, asset: Path, layer: Path, sdk: Path, env: dict, logs: Path,
                 timeout: int = 30, memory: int = 256):
        self.name, self.logs, self.timeout = name, logs, timeout
        read_fd, write_fd = os.pipe()
        spec = {"path": [str(asset), str(layer), str(sdk)], "handler": handler, "fd": write_fd,
                "function_name": name, "timeout": timeout, "memory": memory}
        self._log = open(logs, "wb")
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(HERE / "bootstrap.py"), json.dumps(spec)],
                                     cwd=asset, env=env, stdin=subprocess.PIPE, stdout=self._log,
                                     stderr=subprocess.STDOUT, pass_fds=(write_fd,))
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r")
        self.init = self._read()

    def _read(self, timeout: float | None = None) -> dict:
        """The next result; past `timeout` seconds the container is killed, as Lambda ends an invocation
        that outlives the function's timeout ("Task timed out")."""
        if timeout is not None and not select.select([self._results], [], [], timeout)[0]:
            self.proc.kill()
            raise AssertionError(f"{self.name}: Task timed out after {timeout} s; its log:\n{self.log()[-3000:]}")
        line = self._results.readline()
        if not line:
            raise AssertionError(f"{self.name} died; its log:\n{self.log()}")
        return json.loads(line)

    def invoke(self, event: dict) -> tuple[dict, str]:
        """Invoke with a fresh sampled trace; returns (Lambda's reply, the trace id)."""
        root, header = trace_header()
        self.proc.stdin.write((json.dumps({"event": event, "trace_id": header}) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(self.timeout), root

    def log(self) -> str:
        self._log.flush()
        return self.logs.read_text(errors="replace")

    def shut_down(self) -> None:
        """Tell the container to end (its stdin closes), without waiting for it."""
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def stop(self) -> None:
        self.shut_down()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._results.close()
        self._log.close()


@pytest.fixture(scope="session")
def start_function(layer, runtime_sdk, api_asset, worker_asset, stack, xray, tmp_path_factory):
    """start(name, handler, ...) -> the function's container: a new one the first time, then the same
    warm one (as Lambda reuses a container), unless the environment differs (a function of its own)."""
    started: dict[str, LambdaFunction] = {}
    logs = tmp_path_factory.mktemp("logs")

    def start(name: str, handler: str, *, memory: int = 256, timeout: int = 30, **env_overrides) -> LambdaFunction:
        if name in started and not env_overrides:
            return started[name]
        asset = api_asset if handler == "app.app" else worker_asset
        env = function_env(stack, xray, name, memory, timeout, **env_overrides)
        fn = LambdaFunction(name, handler, asset, layer, runtime_sdk, env, logs / f"{name}.log", timeout, memory)
        started[name] = fn
        return fn

    yield start
    for fn in started.values():         # all end side by side
        fn.shut_down()
    for fn in started.values():
        fn.stop()


class SilentEndpoint:
    """An endpoint that accepts connections and never answers: AWS reachable but not responding."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_endpoint():
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()
