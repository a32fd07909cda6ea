"""Hosts with their own policy, threads calling at once, and fork."""

import os
import signal
import threading

import pytest

import hbutils_port
from hbutils_port import (
    ComponentError,
    DeadlineExceeded,
    Host,
    PortAccessDenied,
    get_free_port,
    is_free_port,
    reserve_port,
)

from conftest import natively_free


def test_a_port_block_confines_the_guest(block):
    host = Host(port_block=range(block, block + 4))
    assert host.is_free_port(block) is True
    assert host.get_free_port(range(block, block + 8)) == block
    with pytest.raises(PortAccessDenied) as raised:
        host.is_free_port(block + 4)
    assert raised.value.code == "access-denied"
    assert host.probe_port(block + 5).ipv4 == "denied"
    # The OS's choice would leave the block: refused, not answered.
    with pytest.raises(PermissionError):
        host.get_free_port(None, strict=False)
    assert Host(port_block=(block, block + 4)).is_free_port(block) is True


def test_no_network_means_every_answer_is_access_denied(block):
    host = Host(network=False)
    with pytest.raises(PermissionError):
        host.is_free_port(block)
    with pytest.raises(PermissionError):
        host.reserve_port(range(block, block + 4))
    assert host.probe_port(block).ipv4 == "denied"


def test_a_deadline_is_a_runtime_error_and_the_host_goes_on(block, holder):
    holder(block)
    host = Host(call_timeout=0.001)
    # A million failed binds run far past 1 ms; the guest yields to the
    # deadline at every 10 ms epoch tick.
    with pytest.raises(RuntimeError) as raised:
        host.get_free_port([block] * 1_000_000)
    assert isinstance(raised.value, DeadlineExceeded), raised.value
    assert isinstance(raised.value, ComponentError) and raised.value.code == "deadline"
    assert "deadline" in str(raised.value)
    # The ended session was dropped; the next call gets a fresh one.
    assert host.is_free_port(block + 1) is True


def test_a_host_repr_and_connect_grant(block):
    host = Host(connect=True, call_timeout=5, max_sessions=4, max_sockets=100)
    assert "max_sockets=100" in repr(host) and host.pid == os.getpid()
    assert host.is_free_port(block) is True


def test_threads_calling_at_once_get_right_answers(block, holder):
    holder(block)
    errors = []
    results = []

    def work():
        try:
            for _ in range(50):
                results.append(
                    (is_free_port(block), is_free_port(block + 1), get_free_port([block, block + 1]))
                )
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(results) == {(False, True, block + 1)} and len(results) == 800


def test_threads_reserving_at_once_get_distinct_ports(block):
    held = []
    lock = threading.Lock()

    def work():
        for _ in range(2):
            r = reserve_port(range(block, block + 16))
            with lock:
                held.append(r)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.port for r in held}) == 16
    for r in held:
        r.release()


def _wait(pid):
    """The child's exit status; kills it if it hangs (a deadlock)."""
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        threading.Event().wait(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
# Python 3.12+ warns about exactly what this test does on purpose.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_makes_its_own_host_even_mid_call(block, holder):
    holder(block)
    parent_host = hbutils_port.default_host()
    r = reserve_port(range(block + 1, block + 16))
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            is_free_port(block)
            get_free_port(range(block, block + 16))

    workers = [threading.Thread(target=busy) for _ in range(4)]
    for t in workers:
        t.start()
    try:
        children = []
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # the child: only async-signal-safe habits until exit
                code = 0
                try:
                    assert is_free_port(block) is False
                    assert is_free_port(block + 1) is False  # the parent's reservation
                    assert hbutils_port.default_host().pid == os.getpid()
                    with reserve_port(range(block + 2, block + 16)) as mine:
                        assert not natively_free(mine.port)
                    try:
                        parent_host.is_free_port(block)
                        code = 3
                    except ComponentError as error:
                        code = 0 if "before a fork" in str(error) else 4
                except BaseException:  # noqa: BLE001 - the exit code says it
                    code = 2
                os._exit(code)
            children.append(pid)
        codes = [_wait(pid) for pid in children]
    finally:
        stop.set()
        for t in workers:
            t.join()
    assert codes == [0] * 5
    assert r.held and hbutils_port.default_host().pid == os.getpid()
    r.release()
    assert is_free_port(block) is False


def test_the_gil_is_released_while_the_component_works(block, holder):
    # 600,000 failed binds keep the component busy for most of a second;
    # another Python thread must run meanwhile, which it cannot if the GIL
    # is held (then it gets a switch interval or two, some 10^5 counts at
    # most here, against millions while the GIL is free).
    holder(block)
    host = Host()
    counted = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counted[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        before = counted[0]
        with pytest.raises(hbutils_port.NoFreePortError):
            host.get_free_port([block] * 600_000)
        during = counted[0] - before
    finally:
        stop.set()
        counter.join()
    assert during > 500_000, f"the counting thread ran {during} times during the call"


def test_a_quota_trap_is_a_runtime_error_and_never_costs_other_reservations(block):
    host = Host(max_sockets=12)
    kept = host.reserve_port(range(block, block + 16))
    # More than a session's quota: refused before the component runs.
    with pytest.raises(ValueError, match="max_sockets=12"):
        host.reserve_ports(10, range(block, block + 16))
    # Fits a session, not the one holding `kept`: a fresh session takes it.
    more = host.reserve_ports(8, range(block, block + 16))
    assert kept.held and all(r.held for r in more)
    assert len({kept.port, *(r.port for r in more)}) == 9
    # A search whose OS-picked ports pass the quota stops its own session only.
    with pytest.raises(RuntimeError) as raised:
        host.get_free_ports(40, range(block, block + 1), strict=False)
    assert isinstance(raised.value, hbutils_port.ComponentTrapped)
    assert raised.value.code == "trap" and "quota of 12" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert kept.held and all(r.held for r in more)
    for r in [kept, *more]:
        r.release()
