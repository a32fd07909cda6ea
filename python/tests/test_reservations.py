"""Reservations: a held port refuses every bind until released, collected,
or handed over as the very listening socket."""

import gc
import os
import socket
import subprocess
import sys
import threading

import pytest

from hbutils_port import (
    NoFreePortError,
    Reservation,
    ReservationEnded,
    SocketNotSupported,
    reserve_port,
    reserve_ports,
)

from conftest import eventually, natively_free

WINDOWS = sys.platform == "win32"
# socket() hands the listener over where the process can find it among its
# descriptors (Linux, macOS); on Windows it refuses (the last tests here).
takes_socket = pytest.mark.skipif(
    WINDOWS, reason="Windows: Reservation.socket() raises SocketNotSupported"
)


def bind_refused(port):
    """Whether every bind of `port` (127.0.0.1, 0.0.0.0, with SO_REUSEADDR
    too) is refused right now."""
    for address in ("127.0.0.1", "0.0.0.0"):
        for reuse in (False, True):
            with socket.socket() as s:
                if reuse:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((address, port))
                    s.listen()
                except OSError:
                    continue
                return False
    return True


def test_a_reserved_port_refuses_every_bind_until_released(block):
    r = reserve_port(range(block, block + 16))
    assert isinstance(r, Reservation) and r.held
    assert block <= r.port < block + 16
    assert bind_refused(r.port)
    r.release()
    assert not r.held and natively_free(r.port)
    r.release()  # again: nothing to do
    assert "released" in repr(r)


def test_a_reservation_is_a_context_manager(block):
    with reserve_port(range(block, block + 16)) as r:
        assert bind_refused(r.port)
    assert natively_free(r.port)


def test_a_collected_reservation_frees_its_port(block):
    # The finaliser makes no call (it runs with the GIL held): the host's
    # release thread frees the port, soon after.
    port = reserve_port(range(block, block + 16)).port
    gc.collect()
    assert eventually(lambda: natively_free(port))


def test_reservations_continue_through_a_range_and_never_repeat(block):
    held = [reserve_port(range(block, block + 4)) for _ in range(4)]
    assert sorted(r.port for r in held) == list(range(block, block + 4))
    with pytest.raises(NoFreePortError):
        reserve_port(range(block, block + 4))
    for r in held:
        r.release()


def test_reserve_ports_holds_all_or_none(block, holder):
    held = reserve_ports(3, range(block, block + 16))
    assert len({r.port for r in held}) == 3 and all(bind_refused(r.port) for r in held)
    for r in held:
        r.release()
    holder(block + 1)
    with pytest.raises(NoFreePortError, match="only 2 are free"):
        reserve_ports(3, range(block, block + 3))
    assert natively_free(block) and natively_free(block + 2)


@takes_socket
def test_the_socket_is_the_listener_and_the_port_is_never_free_in_between(block):
    r = reserve_port(range(block, block + 16))
    port = r.port
    stop = threading.Event()
    stolen = []

    def thief():
        while not stop.is_set():
            if not bind_refused(port):
                stolen.append(port)

    t = threading.Thread(target=thief)
    t.start()
    try:
        server = r.socket()
    finally:
        stop.set()
        t.join()
    assert stolen == []
    with server:
        assert server.getsockname() == ("127.0.0.1", port)
        assert server.family == socket.AF_INET and server.type == socket.SOCK_STREAM
        assert bind_refused(port)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        client.close()  # the client closes first, so TIME_WAIT stays on its side
        conn.close()
        assert not r.held and "socket taken" in repr(r)
        with pytest.raises(ReservationEnded):
            r.socket()
        r.release()  # the socket is the caller's now: nothing to do
        assert bind_refused(port)
    assert natively_free(port)


@takes_socket
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd here")
def test_a_socket_python_refuses_leaves_no_descriptor_behind(block, monkeypatch):
    r = reserve_port(range(block, block + 16))
    before = len(os.listdir("/proc/self/fd"))

    def refuse(*args, **kwargs):
        raise OSError("no socket objects today")

    monkeypatch.setattr(socket, "socket", refuse)
    with pytest.raises(OSError, match="no socket objects today"):
        r.socket()
    monkeypatch.undo()
    # The store's listener and the duplicate handed over are both closed.
    assert len(os.listdir("/proc/self/fd")) <= before - 1
    assert natively_free(r.port)
    assert not r.held and "released" in repr(r)
    with pytest.raises(ReservationEnded):
        r.socket()


@takes_socket
def test_socket_after_release_is_refused(block):
    r = reserve_port(range(block, block + 16))
    r.release()
    with pytest.raises(ReservationEnded) as raised:
        r.socket()
    assert isinstance(raised.value, ValueError)


def test_socket_not_supported_is_a_not_implemented_error():
    assert issubclass(SocketNotSupported, NotImplementedError)
    assert SocketNotSupported.code == "unsupported"


@pytest.mark.skipif(not WINDOWS, reason="Windows only: here socket() hands the listener over")
def test_socket_on_windows_is_refused_and_the_port_stays_held(block):
    with reserve_port(range(block, block + 16)) as r:
        with pytest.raises(SocketNotSupported):
            r.socket()
        assert r.held and "held" in repr(r)
        assert bind_refused(r.port)
    assert natively_free(r.port)


RACER = """
import sys
from hbutils_port import reserve_ports
start, end = int(sys.argv[1]), int(sys.argv[2])
held = reserve_ports(25, range(start, end))
print(" ".join(str(r.port) for r in held), flush=True)
sys.stdin.read()
"""


def test_eight_processes_racing_for_one_range_get_distinct_ports():
    from conftest import free_block

    start = free_block(200)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(start), str(start + 200)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        ports = [int(p) for racer in racers for p in racer.stdout.readline().split()]
        assert len(ports) == 200 and len(set(ports)) == 200
        assert all(start <= p < start + 200 for p in ports)
        assert all(bind_refused(p) for p in ports[::10])
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=60)
    assert all(racer.returncode == 0 for racer in racers)
    assert all(natively_free(p) for p in ports)


@takes_socket
def test_a_reservation_outlives_the_host_that_made_it(block):
    from hbutils_port import Host

    r = Host().reserve_port(range(block, block + 16))
    gc.collect()  # the Host object is gone; its engine lives on for r
    assert bind_refused(r.port)
    with r.socket() as server:
        assert server.getsockname() == ("127.0.0.1", r.port)
    assert natively_free(r.port)


OUT_OF_DESCRIPTORS = """
import resource, sys
import hbutils_port as h
start = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
try:
    h.reserve_ports(100, range(start, start + 200))
except h.SocketError as error:
    print(error.code, isinstance(error, OSError))
print(h.get_free_port(range(start, start + 200)) == start)
"""


def test_running_out_of_descriptors_is_an_oserror_and_holds_nothing(this_python):
    from conftest import free_block, run_python

    start = free_block(200)
    assert run_python(this_python, OUT_OF_DESCRIPTORS, start).split("\n") == ["other True", "True"]
