"""The AWS emulator: moto's server, with DynamoDB requests applied one at a time.

moto handles requests on parallel threads without a lock, so two concurrent conditional writes can
both see "not exists" and both succeed, and a cancelled transaction restores a snapshot of the whole
table, erasing writes other threads made meanwhile. Real DynamoDB serializes writes per item; here
every DynamoDB request is serialized, which is stricter but keeps the emulator honest about the
races siyu's tests exercise (concurrent first scans, flash-sale claims, tills racing).
"""
from __future__ import annotations

import threading

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (they are told apart by their X-Amz-Target)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        # DynamoDB_20120810.* and DynamoDBStreams_20120810.*: a stream read must not see a transaction
        # half-applied (moto applies its items one by one and rolls back by restoring a snapshot).
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class EmulatorServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
