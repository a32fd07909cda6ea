"""The exceptions hbutils_port raises.

Each is a subclass of the built-in exception a Python user already catches
(``OSError``, ``PermissionError``, ``ValueError``, ``RuntimeError``,
``NotImplementedError``), so code written for hbutils keeps working, and
each keeps the component's error case (its WIT name) in ``code``.
"""


class NoFreePortError(OSError):
    """Strict mode found no free port among the candidates (``no-free-port``).

    hbutils raises a plain ``OSError`` here; this is one.
    """

    code = "no-free-port"


class PortAccessDenied(PermissionError):
    """The host or the OS refused the socket (``access-denied``).

    The port's state is unknown: it is never reported as free. Ports below
    1024 without privilege, a ``Host(network=False)``, or a port outside a
    ``Host(port_block=...)`` end here.
    """

    code = "access-denied"


class InvalidArgumentError(ValueError):
    """The arguments cannot be searched (``invalid-argument``): port 0, a bool
    given as a port, a range bound outside 0..65536, a count of 0."""

    code = "invalid-argument"


class PortOutOfRangeError(InvalidArgumentError, OverflowError):
    """An integer that is no TCP port (below 0 or above 65535).

    Also an ``OverflowError``, which is what hbutils (through ``socket``)
    raises for such a port.
    """


class SocketError(OSError):
    """Another socket failure the host reported (``other``): for example
    ``unknown``, which is how wasmtime-wasi reports a process out of
    descriptors (EMFILE). A reservation call that fails so holds nothing."""

    code = "other"


class ReservationEnded(ValueError):
    """The reservation was released or its socket taken already, like an
    operation on a closed file."""

    code = "reservation-ended"


class SocketNotSupported(NotImplementedError):
    """``Reservation.socket()`` on an OS where the listening socket cannot be
    handed over: Windows. wasmtime-wasi keeps the reservation's SOCKET
    private, and a Windows process cannot list its own SOCKETs to find it
    (on Linux and macOS it is found among the process's descriptors).

    Raised before anything changes: the reservation is still held, and
    ``release()`` (or leaving its ``with`` block) frees the port as usual.
    """

    code = "unsupported"


class ComponentError(RuntimeError):
    """The host stopped the component: the call could not be answered.

    The session it ran in is replaced; other calls go on working.
    """

    code = "host"


class ComponentTrapped(ComponentError):
    """The component trapped (or went over its quota) and was stopped."""

    code = "trap"


class DeadlineExceeded(ComponentError):
    """The call ran past the host's ``call_timeout`` and was stopped."""

    code = "deadline"
