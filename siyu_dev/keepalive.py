"""The emulator's HTTP server: werkzeug's threaded WSGI server, with connections kept alive.

werkzeug's development server answers every request with `Connection: close` and then drains the
socket with a 10 ms select, so every AWS request paid a new TCP connection, a new server thread and
that drain: ~2.4 ms of the emulator's CPU on a ~6 ms UpdateItem, and the emulator's CPU per request
bounds every figure of the local stack (DynamoDB requests are applied one at a time). werkzeug
closes because http.server cannot find the next request line if an application leaves part of a
body unread; here the handler reads the whole body (by Content-Length, or de-chunked) before the
application runs and answers with a Content-Length, so the stream stays in step and the connection
serves the client's next request (a chunked body reaches moto as a body of the length it turned
out to have). botocore keeps its connections in a pool, so a client reuses one connection per
thread. Measured: a conditional PutItem took ~3.6 ms of emulator CPU, now ~1.7 ms.

Everything else is moto's handler as it was (MotoRequestHandler: werkzeug's environ plus the
underscore headers S3 metadata needs), so the application sees the same environ and answers the
same; `Expect: 100-continue` (S3 uploads) is answered as werkzeug answers it.

Stopping: shutdown() stops accepting; close_connections() ends every connection's reading side, so
a handler waiting for a next request that will never come sees the end of its stream and returns,
while one answering a request still writes its answer.
"""
from __future__ import annotations

import io
import logging
import socket
import threading

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.exceptions import InternalServerError
from werkzeug.serving import ThreadedWSGIServer, connection_dropped_errors

_LOG = logging.getLogger("werkzeug")
# no body whatever the headers say (RFC 9110 6.4.1), so no Content-Length is added to them
_BODILESS = {204, 304}


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"
    # the answer goes out in one write; the client's next request must not wait for a delayed ACK
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        try:
            body = self._read_body(environ)
        except ValueError:
            self.close_connection = True
            self.send_error(400, "Bad Content-Length")
            return
        except connection_dropped_errors as err:
            self.connection_dropped(err, environ)
            self.close_connection = True
            return
        environ["wsgi.input"] = io.BytesIO(body)

        answer: list = []           # [status, headers]
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            # nothing is sent before the application returns, so an error page may replace the answer
            answer[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception as err:
            if self.server.passthrough_errors:
                raise
            from werkzeug.debug.tbtools import DebugTraceback
            self.server.log("error", f"Error on request:\n{DebugTraceback(err).render_traceback_text()}")
            chunks.clear()
            chunks.extend(InternalServerError()(environ, start_response))
        try:
            self._send(environ, *answer, b"".join(chunks))
        except connection_dropped_errors as err:
            self.connection_dropped(err, environ)
            self.close_connection = True

    def _read_body(self, environ) -> bytes:
        """The whole request body, read off the connection (ValueError: a Content-Length that is not one)."""
        if environ.pop("wsgi.input_terminated", False):     # chunked: werkzeug's DechunkedInput
            body = environ["wsgi.input"].read()
            # ...handed on as the body of that length it now is (moto reads a body by its length)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(body))
            return body
        length = environ.get("CONTENT_LENGTH", "").strip()
        if not length:
            return b""
        size = int(length)
        if size < 0:
            raise ValueError(length)
        body = self.rfile.read(size)
        if len(body) != size:
            raise ConnectionResetError("the client closed the connection in the middle of a body")
        return body

    def _send(self, environ, status: str, headers, body: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        declared = None
        for name, value in headers:
            if name.lower() == "content-length":
                declared = value
            self.send_header(name, value)
        head = environ["REQUEST_METHOD"] == "HEAD"
        if head or code < 200 or code in _BODILESS:
            body = b""
        elif declared is None:
            self.send_header("Content-Length", str(len(body)))
        elif declared.strip() != str(len(body)):
            # an answer whose length the client cannot trust: sent as it is, and the connection ends
            # with it (what werkzeug does with every answer)
            self.close_connection = True
        if self.close_connection or self.server.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)                   # status, headers and body in one write
        self.flush_headers()

    def log_request(self, code="-", size="-") -> None:
        # werkzeug logs each request at INFO (and sets a level on a logger that has none); skip the
        # line's formatting when the level set drops it (the stack and the benches set ERROR)
        if _LOG.level == logging.NOTSET or _LOG.isEnabledFor(logging.INFO):
            super().log_request(code, size)


class KeepAliveServer(ThreadedWSGIServer):
    """werkzeug's threaded server, serving KeepAliveHandler; knows its open connections to end them."""

    def __init__(self, host: str, port: int, app, fd: int | None = None) -> None:
        super().__init__(host, port, app, KeepAliveHandler, fd=fd)
        self.stopping = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """End every open connection's reading side: idle handlers return, busy ones answer first."""
        self.stopping = True
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass                # already closed by its handler

