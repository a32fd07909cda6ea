"""Shared helpers: ports this machine really has free, and sockets that hold
them. No fixed port numbers: blocks are picked at random outside the
ephemeral range (32768-60999) and checked free natively on both loopback
families before a test uses them."""

import errno
import os
import random
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest


def _bindable(family, address, port):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                return True  # no IPv6 loopback: IPv4 alone decides
            return False
        return True


def natively_free(port):
    """Free as the component defines it: bindable on 127.0.0.1 and [::1]."""
    return _bindable(socket.AF_INET, "127.0.0.1", port) and _bindable(
        socket.AF_INET6, "::1", port
    )


def free_block(size):
    """`size` consecutive ports, all free now, outside the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(10_000, 32_768 - size)
        if all(natively_free(p) for p in range(start, start + size)):
            return start
    raise RuntimeError(f"no {size} consecutive free ports found below 32768")


def eventually(done, within=60.0):
    """Whether `done()` comes true, polled until `within` seconds pass: a
    bound for what happens soon after (never a measure of how soon)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.01)
    return done()


def hold(port):
    """A listener on 127.0.0.1:port: the port is busy while it lives."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


@pytest.fixture
def block():
    """A block of 16 free ports; returns its first."""
    return free_block(16)


@pytest.fixture
def holder():
    """hold(port) for the test's length."""
    held = []

    def take(port):
        held.append(hold(port))
        return held[-1]

    yield take
    for s in held:
        s.close()


def _repo_target():
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "Cargo.lock").exists():
            return parent / "target"
    return None


@pytest.fixture(scope="session")
def hbutils_python():
    """A Python with the hbutils PyPI package, in a throwaway venv made here
    (cached under the repository's target/ when there is one). Skipped, with
    the reason, when PyPI cannot be reached."""
    where = os.environ.get("HBUTILS_VENV")
    if where:
        path = Path(where)
    else:
        target = _repo_target()
        path = (target / "python" / "hbutils-venv") if target else Path(
            os.environ.get("TMPDIR", "/tmp")
        ) / f"hbutils-venv-{os.getuid()}"
    python = path / "bin" / "python"
    check = [str(python), "-c", "import hbutils.system.network.port"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "hbutils==0.14.2"],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        last = (install.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(
            "hbutils parity NOT checked: `pip install hbutils` failed "
            f"(is PyPI reachable?): {last}"
        )
    return str(python)


def run_python(python, code, *args):
    """Runs `code` in `python`, returns its stdout (stripped); fails loudly."""
    done = subprocess.run(
        [python, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def this_python():
    return sys.executable
