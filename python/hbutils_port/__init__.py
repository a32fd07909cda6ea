"""Is this TCP port free? Give me a free port. Hold a port.

hbutils' ``hbutils.system.network.port`` API (``is_free_port``,
``get_free_port``), answered by the ``hbutils-port`` WebAssembly component
running in the ``port_host`` wasmtime host, which grants it loopback TCP and
nothing else. Beyond hbutils: several ports at once, reservations that hold a
port with a listening socket (and hand that socket over), a per-family
diagnosis, and a client for ``port-host portserver``'s requests beyond
portpicker's (``portserver_client``: ports, listening sockets, release)::

    from hbutils_port import get_free_port, is_free_port, reserve_port

    port = get_free_port(range(8000, 8100))      # the first free port in 8000..8099
    is_free_port(8080)                           # False if anything holds 8080
    with reserve_port(range(8000, 8100)) as r:   # nobody else can bind r.port
        server = r.socket()                      # ... or serve on the very socket

The module-level functions share one host per process, made on first use (a
forked child makes its own). ``Host(...)`` gives a host of its own, with a
network policy (a port block, connect or not, no network at all) and bounds
(a call timeout, sessions, sockets per session).

Errors are built-in exception types with the component's case in ``code``:
``NoFreePortError`` (an ``OSError``), ``PortAccessDenied`` (a
``PermissionError``), ``InvalidArgumentError`` (a ``ValueError``; a port
beyond 0..65535 is also an ``OverflowError``), ``SocketError`` (an
``OSError``), ``ReservationEnded`` (a ``ValueError``), ``SocketNotSupported``
(a ``NotImplementedError``: ``Reservation.socket()`` on Windows) and
``ComponentError`` (a ``RuntimeError``: ``ComponentTrapped``,
``DeadlineExceeded``).
"""

from ._errors import (
    ComponentError,
    ComponentTrapped,
    DeadlineExceeded,
    InvalidArgumentError,
    NoFreePortError,
    PortAccessDenied,
    PortOutOfRangeError,
    ReservationEnded,
    SocketError,
    SocketNotSupported,
)
from ._native import (
    Host,
    PortStatus,
    Reservation,
    get_free_port,
    get_free_ports,
    is_free_port,
    probe_port,
    reserve_port,
    reserve_ports,
)
from ._native import default_host_object as default_host
from .portserver_client import (
    PortServerError,
    get_ports_from_server,
    get_sockets_from_server,
    release_ports_to_server,
)

__version__ = "0.1.0"

__all__ = [
    "ComponentError",
    "ComponentTrapped",
    "DeadlineExceeded",
    "Host",
    "InvalidArgumentError",
    "NoFreePortError",
    "PortAccessDenied",
    "PortOutOfRangeError",
    "PortServerError",
    "PortStatus",
    "Reservation",
    "ReservationEnded",
    "SocketError",
    "SocketNotSupported",
    "default_host",
    "get_free_port",
    "get_free_ports",
    "get_ports_from_server",
    "get_sockets_from_server",
    "is_free_port",
    "probe_port",
    "release_ports_to_server",
    "reserve_port",
    "reserve_ports",
]
