"""Type stubs for the compiled part of hbutils_port (PyO3)."""

from types import TracebackType
from typing import Iterable, List, Literal, Optional, Tuple, Type, Union

import socket

FamilyStatus = Literal["free", "in-use", "denied", "unsupported"]
Ports = Optional[Iterable[int]]

class PortStatus:
    """What a bind on 127.0.0.1 (``ipv4``) and on [::1] (``ipv6``) found."""

    @property
    def ipv4(self) -> FamilyStatus: ...
    @property
    def ipv6(self) -> FamilyStatus: ...
    @property
    def is_free(self) -> bool:
        """Whether ``is_free_port`` reads this status as free."""

class Reservation:
    """A port held by a listening socket on 127.0.0.1 until released.

    A context manager (``with reserve_port(...) as r:``). One collected
    unreleased is freed soon after, by its host's release thread: the
    finaliser itself makes no call.

    In a child forked from the process that made it, the reservation is the
    parent's: ``held`` is ``False``, ``repr`` says ``held by process N``
    (the parent; or how it ended before the fork), ``release()`` does
    nothing and ``socket()`` raises ``ComponentError``.
    """

    @property
    def port(self) -> int:
        """The reserved port (still readable after the reservation ended)."""
    @property
    def held(self) -> bool:
        """Whether this process holds the port through this reservation."""
    def release(self) -> None:
        """Frees the port at once. Calling it again does nothing."""
    def socket(self) -> socket.socket:
        """The listening socket itself (blocking, bound to 127.0.0.1:port,
        ready for ``accept``). The port is never free in between; the
        reservation ends and the socket is the caller's to close.

        Raises ``ReservationEnded`` if the reservation was released or its
        socket taken, ``ComponentError`` in a forked child. Should
        ``socket.socket`` itself fail, the descriptor is closed and the port
        freed.

        Linux and macOS only. On Windows it raises ``SocketNotSupported``
        (a ``NotImplementedError``): wasmtime-wasi keeps the SOCKET private
        and the process cannot find it. Nothing changes then: the
        reservation is still held until released."""
    def __enter__(self) -> "Reservation": ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...

class Host:
    """An engine, the compiled component and its sessions, with a network
    policy and bounds of its own."""

    def __init__(
        self,
        *,
        network: bool = True,
        connect: bool = False,
        port_block: Union[range, Tuple[int, int], None] = None,
        call_timeout: float = 30.0,
        max_sessions: int = 256,
        max_sockets: int = 66000,
    ) -> None: ...
    @property
    def pid(self) -> int:
        """The process this host was made in; it works only there."""
    def is_free_port(self, port: int) -> bool: ...
    def get_free_port(self, ports: Ports = None, strict: bool = True) -> int: ...
    def get_free_ports(self, count: int, ports: Ports = None, strict: bool = True) -> List[int]: ...
    def reserve_port(self, ports: Ports = None, strict: bool = True) -> Reservation: ...
    def reserve_ports(self, count: int, ports: Ports = None, strict: bool = True) -> List[Reservation]: ...
    def probe_port(self, port: int) -> PortStatus: ...

def default_host_object() -> Host:
    """The host the module-level functions use in this process."""

def is_free_port(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 (and [::1], where the host
    has IPv6 loopback) right now.

    It binds and closes; it never connects or listens. ``PortAccessDenied``
    when the OS refuses the bind (ports below 1024 without privilege),
    ``InvalidArgumentError`` for port 0 or a bool, ``PortOutOfRangeError``
    below 0 or above 65535, ``TypeError`` for a non-integer."""

def get_free_port(ports: Ports = None, strict: bool = True) -> int:
    """The first free port >= 1024 among ``ports``, in their order.

    A ``range`` is searched as a range, never expanded; any other iterable
    is read into a list. Ports below 1024 are skipped. With ``strict`` and
    no usable candidate, warns (``UserWarning``, hbutils' words) and lets
    the OS pick. With ``strict`` and none free, ``NoFreePortError`` (an
    ``OSError``); without it, a port the OS picks."""

def get_free_ports(count: int, ports: Ports = None, strict: bool = True) -> List[int]:
    """``count`` distinct free ports among ``ports``, in their order; without
    ``strict`` the OS fills what they lack. Nothing is held."""

def reserve_port(ports: Ports = None, strict: bool = True) -> Reservation:
    """Holds a free port among ``ports`` (``get_free_port``'s rules) with a
    listening socket, so that nobody else can bind it until released.
    Successive reservations continue after the previous one in the range."""

def reserve_ports(count: int, ports: Ports = None, strict: bool = True) -> List[Reservation]:
    """Holds ``count`` ports at once, or none (all or nothing)."""

def probe_port(port: int) -> PortStatus:
    """Why ``port`` reads busy or free: one bind per loopback family."""
