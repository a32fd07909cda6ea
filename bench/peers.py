#!/usr/bin/env python3
"""Per-call figures for Python's hbutils, portpicker and (when installed)
this project's hbutils_port wheel on the cases of bench/compare.

    python bench/peers.py FREE START     # run with the venv's python
    python bench/peers.py --hold START COUNT

prints `case<TAB>peer<TAB>median ns per call` lines. FREE is a free port and
START the first of 1000 free ports, both chosen by bench/compare.

hbutils asks "is it free?" by connecting, so a held port must be one that
accepts; `--hold` is that holder, in a process of its own so that accepting
takes nothing from the process being timed. It listens on 127.0.0.1 (as the
component's benchmark holds ports), accepts and closes until stdin closes.
"""
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import timeit
import warnings

BATCHES = 15
BATCH_SECONDS = 0.02


def hold(start, count):
    selector = selectors.DefaultSelector()
    servers = []
    for port in range(start, start + count):
        server = socket.socket()
        # A run before this one leaves TIME_WAIT on these ports.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(socket.SOMAXCONN)
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ)
        servers.append(server)
    print(servers[0].getsockname()[1], flush=True)
    stdin_closed = threading.Event()

    def watch():
        sys.stdin.read()
        stdin_closed.set()
    threading.Thread(target=watch, daemon=True).start()
    while not stdin_closed.is_set():
        for key, _ in selector.select(timeout=0.1):
            # Drain: a full accept queue drops the next SYN, and the client
            # then waits a second for its retry, which is not hbutils' cost.
            while True:
                try:
                    key.fileobj.accept()[0].close()
                except BlockingIOError:
                    break


class Holder:
    """`--hold` in a child process: the ports are held while inside `with`."""

    def __init__(self, start, count):
        self.args = [sys.executable, __file__, "--hold", str(start), str(count)]

    def __enter__(self):
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.first = int(self.process.stdout.readline())
        return self

    def __exit__(self, *_):
        self.process.stdin.close()
        self.process.wait()


def per_call(call):
    """Median nanoseconds per call over BATCHES batches of one timer."""
    timer = timeit.Timer(call)
    number = 1
    while timer.timeit(number) < BATCH_SECONDS:
        number *= 2
    return statistics.median(t / number * 1e9 for t in timer.repeat(repeat=BATCHES, number=number))


def report(case, peer, ns):
    print(f"{case}\t{peer}\t{ns:.0f}", flush=True)


def expect(got, want, what):
    if got != want:
        raise SystemExit(f"{what}: answered {got}, expected {want}")


def main():
    if sys.argv[1] == "--hold":
        hold(int(sys.argv[2]), int(sys.argv[3]))
        return
    free, start = int(sys.argv[1]), int(sys.argv[2])
    import portpicker
    from hbutils.system import get_free_port, is_free_port
    # get_free_port(None, strict=False) says that strict mode is off.
    warnings.simplefilter("ignore")
    hb, pp = "hbutils", "portpicker (Python)"

    try:
        import hbutils_port as ours
    except ImportError:
        ours = None
    hp = "hbutils_port (Python)"

    report("is-free-port, free port", hb, per_call(lambda: expect(is_free_port(free), True, "free")))
    if ours:
        report("is-free-port, free port", hp, per_call(lambda: expect(ours.is_free_port(free), True, "free")))
    report("is-free-port, free port", pp, per_call(lambda: expect(bool(portpicker.is_port_free(free)), True, "free")))

    with Holder(0, 1) as holder:
        held = holder.first
        report("is-free-port, held port", hb, per_call(lambda: expect(is_free_port(held), False, "held")))
        report("is-free-port, held port", pp, per_call(lambda: expect(bool(portpicker.is_port_free(held)), False, "held")))
        if ours:
            report("is-free-port, held port", hp, per_call(lambda: expect(ours.is_free_port(held), False, "held")))

    last = start + 999
    candidates = range(start, start + 1000)
    with Holder(start, 999):
        case = "get-free-port, 1000 candidates, first 999 held"
        report(case, hb, per_call(lambda: expect(get_free_port(candidates), last, "range")))
        # portpicker has no search over candidates: a user walks them with is_port_free.
        report(case, pp, per_call(
            lambda: expect(next(p for p in candidates if portpicker.is_port_free(p)), last, "range")))
        if ours:
            report(case, hp, per_call(lambda: expect(ours.get_free_port(candidates), last, "range")))

    case = "get-free-port(none, false), OS choice"
    report(case, hb, per_call(lambda: get_free_port(None, strict=False)))
    # pick_unused_port never repeats a port within a process; handing it back
    # keeps every call doing the same work.
    report(case, pp, per_call(lambda: portpicker.return_port(portpicker.pick_unused_port())))
    if ours:
        report(case, hp, per_call(lambda: ours.get_free_port(None, strict=False)))
        # Beyond hbutils: hold a port and give it back.
        report("reserve-port, then release", hp, per_call(lambda: ours.reserve_port(None, strict=False).release()))


if __name__ == "__main__":
    main()
