"""The API on 127.0.0.1: chalice's local server, made to take load and to answer in siyu's shape.

chalice.local serves each connection on its own thread (ThreadedHTTPServer) but listens with
http.server's backlog of 5: a burst of shoppers got connections reset before the server accepted
them. Here it serves on a socket from siyu_dev.listen (backlog LISTEN_BACKLOG).

chalice.local also mimics API Gateway for a path no route matches: 403 with the caller's
Authorization header copied into the body. siyu answers it `404 {"error": {"code": "not_found"}}`
and echoes nothing the caller sent. (Wrong methods and content types reach the app, which answers
them in siyu's shape itself: chalicelib.chalice_errors.)
"""
from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler

from chalice.local import (ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer, LocalGateway,
                           LocalGatewayException, ThreadedHTTPServer)

from chalicelib.errors import NotFound
from siyu_dev.listen import adopt


class NoRoute(LocalGatewayException):
    CODE = 404


class SiyuLocalGateway(LocalGateway):
    def _generate_lambda_event(self, method, path, headers, body):
        try:
            return super()._generate_lambda_event(method, path, headers, body)
        except ValueError:      # no route matches the path (chalice's RouteMatcher)
            error = NotFound("no such route; see the API table in the README", code="not_found")
            raise NoRoute({"Content-Type": "application/json"}, json.dumps(error.body()).encode()) from None


class SiyuRequestHandler(ChaliceRequestHandler):
    def __init__(self, request, client_address, server, app_object, config) -> None:
        # ChaliceRequestHandler.__init__ makes its own LocalGateway, and the base class serves the
        # request from inside __init__: set ours first and go straight to the base.
        self.local_gateway = SiyuLocalGateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)


class QuietRequestHandler(SiyuRequestHandler):
    def log_message(self, *args, **kwargs) -> None:
        pass


def local_api_server(app, config, listening: socket.socket, quiet: bool = True) -> LocalDevServer:
    """chalice's LocalDevServer for `app`, serving on `listening` (already bound and listening)."""
    if not isinstance(app, LocalChalice):
        # what chalice.local.create_local_server does: the app's current_request becomes thread-local,
        # so concurrent requests each see their own
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice

    def server_cls(address, handler) -> ThreadedHTTPServer:
        server = ThreadedHTTPServer(address, handler, bind_and_activate=False)
        adopt(server, listening)
        return server

    host, port = listening.getsockname()[:2]
    return LocalDevServer(app, config, host, port, handler_cls=QuietRequestHandler if quiet else SiyuRequestHandler,
                          server_cls=server_cls)
