"""Listening sockets for the local stack's servers.

All of them are bound before anything starts, so a port already taken (a second `make run`, another
program) stops the stack at once with the variable that moves it, instead of a traceback from a server
thread or a wait for a server that never came up. Each listens with a backlog for bursts: a flash sale
opens a hundred connections at once, and the 5 that http.server asks for by default makes the kernel
reset the rest before the server accepts them.
"""
from __future__ import annotations

import errno
import socket
import socketserver

LISTEN_BACKLOG = 1024           # Linux caps it at net.core.somaxconn (4096 by default)


class PortInUse(Exception):
    def __init__(self, port: int, env_var: str):
        super().__init__(f"port {port} is in use; set {env_var} to a free port (is another `make run` running?)")
        self.port, self.env_var = port, env_var


def listen(host: str, port: int, env_var: str) -> socket.socket:
    """A TCP socket bound to host:port (0: any free port) and listening with LISTEN_BACKLOG."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as http.server does: a port left in TIME_WAIT by the previous run can be bound again (Linux still
    # refuses a port another socket is listening on)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUse(port, env_var) from None
        raise
    return sock


def listen_all(host: str, wanted: dict[str, int]) -> dict[str, socket.socket]:
    """One listening socket per env var name -> port; PortInUse names every port taken."""
    bound, taken = {}, []
    for env_var, port in wanted.items():
        try:
            bound[env_var] = listen(host, port, env_var)
        except PortInUse as err:
            taken.append(err)
    if taken:
        for sock in bound.values():
            sock.close()
        raise PortInUse(taken[0].port, taken[0].env_var) if len(taken) == 1 else PortsInUse(taken)
    return bound


class PortsInUse(PortInUse):
    def __init__(self, taken: list[PortInUse]):
        Exception.__init__(self, "\n".join(str(t) for t in taken))
        self.port, self.env_var, self.taken = taken[0].port, taken[0].env_var, taken


def adopt(server: socketserver.TCPServer, sock: socket.socket) -> None:
    """Give a server built with bind_and_activate=False an already listening socket."""
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
