"""The whole backend on 127.0.0.1: AWS emulator, WeChat simulator, the API and the event pump.

Everything runs in one process (threads), with the same code paths as on AWS; only the endpoints
differ (AWS_ENDPOINT_URL, SIYU_WECHAT_BASE_URL). Used by `make run` and by the integration tests.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
    # A China region by default: brands mostly deploy there, so the local stack proves nothing
    # assumes the `aws` partition.
    "AWS_DEFAULT_REGION": "cn-north-1", "AWS_REGION": "cn-north-1",
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "siyu",
    "POWERTOOLS_METRICS_NAMESPACE": "siyu", "SIYU_STAGE": "local",
}

# The emulator serializes DynamoDB requests (siyu_dev.emulator): a burst of 50 concurrent claims
# queues behind one lock, so the local stack waits longer for an answer than Lambda would.
EMULATOR_READ_TIMEOUT = 30.0


@dataclass
class LocalStack:
    api_port: int = 8000
    aws_port: int = 4566
    wechat_port: int = 8900
    platform_key: str | None = None
    quiet: bool = True
    serve_api: bool = True      # benchmarks that call services in-process turn the API and pump off
    run_pump: bool = True
    env: dict = field(default_factory=dict)
    # An emulator / a simulator already serving in another process (bench.throughput keeps them out of
    # the process it measures): used as they are, neither started nor stopped here.
    aws_url: str | None = None
    wechat_url: str | None = None

    def start(self) -> "LocalStack":
        """Raises siyu_dev.listen.PortInUse, before starting anything, when a port is taken."""
        from siyu_dev.listen import listen_all
        wanted = {"SIYU_AWS_PORT": self.aws_port, "SIYU_WECHAT_PORT": self.wechat_port}
        if self.aws_url:
            del wanted["SIYU_AWS_PORT"]
        if self.wechat_url:
            del wanted["SIYU_WECHAT_PORT"]
        if self.serve_api:
            wanted["SIYU_API_PORT"] = self.api_port
        sockets = listen_all("127.0.0.1", wanted)
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        self._moto = self.sim = None
        if not self.aws_url:
            from siyu_dev.emulator import EmulatorServer
            self._moto = EmulatorServer(ip_address="127.0.0.1", port=self.aws_port, verbose=False)
            self._moto.start(sockets["SIYU_AWS_PORT"])
            self.aws_url = f"http://127.0.0.1:{self._moto.get_host_and_port()[1]}"
        self.aws_port = int(self.aws_url.rsplit(":", 1)[1])
        os.environ["AWS_ENDPOINT_URL"] = self.aws_url

        from chalicelib import aws
        from chalicelib.storage.models import allow_slow_storage
        aws.reset_clients()
        allow_slow_storage(EMULATOR_READ_TIMEOUT)
        from siyu_dev.provision import provision
        self.env = provision("local")
        os.environ.update(self.env)

        if not self.wechat_url:
            from siyu_dev.wechat_sim import WeChatSimulator
            self.sim = WeChatSimulator(port=self.wechat_port)
            self.wechat_url = self.sim.start(sockets["SIYU_WECHAT_PORT"])
        self.wechat_port = int(self.wechat_url.rsplit(":", 1)[1])
        os.environ["SIYU_WECHAT_BASE_URL"] = self.wechat_url
        os.environ["SIYU_WECOM_BASE_URL"] = self.wechat_url
        os.environ["SIYU_SHOWQRCODE_BASE_URL"] = self.wechat_url

        from chalicelib.services.auth import new_key
        from chalicelib.storage import tenancy
        from chalicelib.services.onboarding import iso  # noqa: F401 - warms the import before serving
        from datetime import datetime, timezone
        self.platform_key = self.platform_key or new_key("platform")
        tenancy.create_platform_key(self.platform_key, datetime.now(timezone.utc))

        if self.serve_api:
            self._start_api(sockets["SIYU_API_PORT"])
        from siyu_dev.pump import Pump, SchedulerFirer
        self.pump = Pump()
        self.scheduler = SchedulerFirer()      # fires due EventBridge Scheduler schedules (moto never does)
        self.pump.hooks.append(self.scheduler.tick)
        if self.run_pump:
            self.pump.start()
        return self

    def _start_api(self, listening) -> None:
        from chalice.config import Config
        import app as api_module
        from siyu_dev.local_api import local_api_server
        config = Config.create(chalice_stage="local", app_name="siyu", chalice_app=api_module.app,
                               environment_variables={})
        self._api = local_api_server(api_module.app, config, listening, quiet=self.quiet)
        self.api_port = self._api.server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self._api_thread = threading.Thread(target=self._api.server.serve_forever, name="api", daemon=True)
        self._api_thread.start()

    def stop(self) -> None:
        steps = [self.pump.stop]
        if self.serve_api:
            steps += [self._api.server.shutdown, self._api.server.server_close]
        for step in steps + [server.stop for server in (self.sim, self._moto) if server is not None]:
            try:
                step()
            except Exception:  # noqa: BLE001 - stop everything we can
                logging.getLogger("siyu.stack").exception("while stopping")
