"""Hosts with their own policy, threads calling at once, and fork."""

import os
import random
import signal
import threading
import time

import pytest

import hbutils_port
from hbutils_port import (
    ComponentError,
    DeadlineExceeded,
    Host,
    NoFreePortError,
    PortAccessDenied,
    get_free_port,
    is_free_port,
    reserve_port,
)

from conftest import eventually, natively_free

# Python 3.12+ warns about forking a process with threads, which is what the
# fork tests here do on purpose.
FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"


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


def _wait_or_kill(pid):
    """The child's exit code, or None if it hung (it is killed then)."""
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _wait(pid):
    """The child's exit status; fails if it hung (it is killed then)."""
    code = _wait_or_kill(pid)
    if code is None:
        pytest.fail("the forked child hung")
    return code


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.filterwarnings(FORK_WARNING)
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


def _cpu_share(run):
    """CPU time another Python thread got while `run()` ran, over the CPU
    time `run` took: near 1 when the GIL is free (the OS shares the cores
    fairly, however busy the machine), near 0 when `run` holds it."""
    calling = threading.Event()
    stop = threading.Event()
    got = [0.0]

    def step():
        while not stop.is_set():
            began = time.thread_time()
            sum(range(200))
            if calling.is_set():
                got[0] += time.thread_time() - began

    stepper = threading.Thread(target=step)
    stepper.start()
    try:
        calling.set()
        began = time.thread_time()
        run()
        spent = time.thread_time() - began
        calling.clear()
    finally:
        stop.set()
        stepper.join()
    return got[0] / spent


def test_the_gil_is_released_while_the_component_works(block, holder):
    # 600,000 failed binds keep the component busy for a good while; had the
    # call held the GIL, the other thread would have had no CPU for all of
    # it. A share, not a count, so it means the same on any machine.
    holder(block)
    host = Host()
    ports = [block] * 600_000

    def call():
        with pytest.raises(NoFreePortError):
            host.get_free_port(ports)

    share = _cpu_share(call)
    assert share > 0.25, f"another thread got {share:.2f} of the call's CPU time"


def test_held_repr_and_collection_never_wait_for_a_call(block, holder):
    # A long reserve holds the reservations' session. Meanwhile, on this
    # thread, a reservation of that session is read and others are
    # collected: none of it may wait for that call (with the GIL held, it
    # would stop every thread until the call ends).
    holder(block)
    host = Host()
    kept = host.reserve_port(range(block + 1, block + 16))
    spares = host.reserve_ports(8, range(block + 1, block + 16))
    spare_ports = [r.port for r in spares]
    call = {}

    def long_reserve():
        began = time.monotonic()
        try:
            host.reserve_port([block] * 600_000)
        except NoFreePortError as error:
            call["error"] = error
        call["span"] = time.monotonic() - began

    caller = threading.Thread(target=long_reserve)
    caller.start()
    longest = 0.0
    while caller.is_alive():
        began = time.monotonic()
        assert kept.held and "held" in repr(kept)
        if spares:
            spares.pop()  # the last reference: collected here
        longest = max(longest, time.monotonic() - began)
    caller.join()
    assert "error" in call
    assert longest < call["span"] / 2, f"one step took {longest:.3f} s of the call's {call['span']:.3f} s"
    assert spares == []
    # Collected ones are released by the host's release thread, soon after.
    assert eventually(lambda: all(natively_free(p) for p in spare_ports))
    assert kept.held
    kept.release()


def _in_child(parents, parent, block):
    """What a forked child may do with its parent's reservations and its own
    host; an exit code, 0 when all is as documented."""
    for r in parents:
        if r.held:
            return 10  # the parent holds it, not this process
        text = repr(r)
        if not any(word in text for word in (f"held by process {parent}", "released")):
            return 11
        r.release()  # nothing to do here
        try:
            r.socket()
            return 12
        except ComponentError as error:
            if "before a fork" not in str(error):
                return 13
    if is_free_port(parents[0].port):
        return 14  # the parent still holds it
    if not block <= get_free_port(range(block, block + 16)) < block + 16:
        return 15
    with reserve_port(range(block, block + 16)) as mine:
        if not mine.held:
            return 16
    return 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_child_forked_at_any_moment_can_call_and_touch_the_parents_reservations(block):
    kept = reserve_port(range(block, block + 4))
    latest = [kept]
    stop = threading.Event()
    failures = []

    def churn():
        try:
            while not stop.is_set():
                with reserve_port(range(block + 4, block + 16)) as r:
                    latest[0] = r
                    assert r.held and "held" in repr(r)
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(error)

    parent = os.getpid()
    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    codes = []
    try:
        for _ in range(30):
            time.sleep(random.random() / 100)
            pid = os.fork()
            if pid == 0:  # the child: it exits here, whatever happens
                code = 2
                try:
                    code = _in_child([kept, latest[0]], parent, block)
                except BaseException:  # noqa: BLE001 - the exit code says it
                    code = 3
                os._exit(code)
            codes.append(_wait_or_kill(pid))
            if codes[-1] is None:
                break  # hung: one is enough to fail
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert codes == [0] * 30, f"exit codes (None: hung and killed): {codes}"
    assert kept.held and "held>" in repr(kept)
    kept.release()


def test_deadlines_stop_calls_in_several_threads_at_once(block, holder):
    # Each caller's deadline is kept even while another thread's call is
    # the one driving the host's runtime.
    holder(block)
    host = Host(call_timeout=0.05)
    ports = [block] * 1_000_000
    raised = []

    def call():
        try:
            host.get_free_port(ports)
        except Exception as error:  # noqa: BLE001 - checked below
            raised.append(error)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(raised) == 3 and all(isinstance(e, DeadlineExceeded) for e in raised), raised
    assert host.is_free_port(block + 1) is True


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
