"""A client for ``port-host portserver``'s requests beyond portpicker's.

portpicker's own ``pick_unused_port()`` (with ``PORTSERVER_ADDRESS`` set)
already works against ``port-host portserver``. This module adds what only
port-host serves, with the standard library alone::

    from hbutils_port import get_sockets_from_server

    [(port, listener)] = get_sockets_from_server(1)   # already listening
    # serve on `listener`: nobody could take the port between the server's
    # answer and the bind (portpicker#35)

A request names the process the ports are for (``pid``, by default this
one); the server keeps them for it until it exits or releases them.
Every function raises ``PortServerError`` (an ``OSError``) when the server
is unreachable or closes without an answer, which is how it refuses.
"""

import array
import os
import socket
from typing import List, Optional, Sequence, Tuple

__all__ = [
    "PortServerError",
    "get_ports_from_server",
    "get_sockets_from_server",
    "release_ports_to_server",
]

_DEFAULT_ADDRESS = "@unittest-portserver"
_MAX_PORTS = 64
_TIMEOUT = 30.0


class PortServerError(OSError):
    """The port server could not be reached, or refused the request."""


def _address(address: Optional[str]) -> str:
    if address is None:
        address = os.environ.get("PORTSERVER_ADDRESS", _DEFAULT_ADDRESS)
    # portpicker's convention: a leading '@' names an abstract socket.
    return "\0" + address[1:] if address.startswith("@") else address


def _check_count(count: int) -> None:
    if not 1 <= count <= _MAX_PORTS:
        raise ValueError("count must be 1 to %d, not %r" % (_MAX_PORTS, count))


def _request(
    line: str, address: Optional[str], fds: int = 0
) -> Tuple[List[int], List[int]]:
    """Sends one request line; returns the ports replied and any descriptors."""
    received: List[int] = []
    reply = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_TIMEOUT)
            conn.connect(_address(address))
            conn.sendall(line.encode("ascii"))
            while True:
                if fds:
                    space = socket.CMSG_SPACE(fds * array.array("i").itemsize)
                    data, ancillary, _, _ = conn.recvmsg(1024, space)
                    for level, kind, payload in ancillary:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            usable = len(payload) - len(payload) % array.array("i").itemsize
                            received.extend(array.array("i", payload[:usable]))
                else:
                    data = conn.recv(1024)
                if not data:
                    break
                reply += data
    except OSError as error:
        for fd in received:
            os.close(fd)
        raise PortServerError("port server %s: %s" % (address, error)) from error
    try:
        if not reply.endswith(b"\n"):
            raise ValueError(reply)
        ports = [int(word) for word in reply[:-1].split(b" ")]
    except ValueError:
        for fd in received:
            os.close(fd)
        raise PortServerError(
            "the port server refused the request (it closed without a reply)"
            if not reply
            else "the port server's reply is not a list of ports: %r" % reply[:64]
        ) from None
    return ports, received


def get_ports_from_server(
    count: int = 1, *, pid: Optional[int] = None, address: Optional[str] = None
) -> List[int]:
    """``count`` ports for ``pid`` (default: this process), all or none."""
    _check_count(count)
    pid = os.getpid() if pid is None else pid
    ports, _ = _request("get %d %d\n" % (pid, count), address)
    if len(ports) != count:
        raise PortServerError("asked for %d ports, got %d" % (count, len(ports)))
    return ports


def get_sockets_from_server(
    count: int = 1, *, pid: Optional[int] = None, address: Optional[str] = None
) -> List[Tuple[int, socket.socket]]:
    """``count`` ports, each with its TCP socket already listening on every
    address ([::] dual-stack, or 0.0.0.0 without IPv6), all or none. The
    sockets are blocking and the caller's to close."""
    _check_count(count)
    pid = os.getpid() if pid is None else pid
    ports, fds = _request("socket %d %d\n" % (pid, count), address, fds=count)
    if len(ports) != count or len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise PortServerError(
            "asked for %d sockets, got %d ports and %d sockets"
            % (count, len(ports), len(fds))
        )
    return [(port, socket.socket(fileno=fd)) for port, fd in zip(ports, fds)]


def release_ports_to_server(
    ports: Sequence[int], *, pid: Optional[int] = None, address: Optional[str] = None
) -> None:
    """Gives ``ports`` back at once, if ``pid`` (default: this process)
    holds every one of them; otherwise nothing is released."""
    _check_count(len(ports))
    pid = os.getpid() if pid is None else pid
    words = " ".join("%d" % port for port in ports)
    released, _ = _request("release %d %s\n" % (pid, words), address)
    if sorted(released) != sorted(ports):
        raise PortServerError("released %r, not %r" % (released, list(ports)))
