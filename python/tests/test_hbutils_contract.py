"""hbutils' documented contract: its examples and rules, on ports this
machine really holds or has free."""

import os
import warnings

import pytest

import hbutils_port
from hbutils_port import NoFreePortError, get_free_port, is_free_port

from conftest import natively_free

HBUTILS_WARNING = "No usable ports provided, so strict mode will be disabled."


def test_a_held_port_is_busy_and_a_free_one_is_free(block, holder):
    holder(block)
    assert is_free_port(block) is False
    assert is_free_port(block + 1) is True


def test_doc_example_range_22_1060_gives_the_first_free_port_from_1024():
    expected = next(p for p in range(1024, 1060) if natively_free(p))
    assert get_free_port(range(22, 1060)) == expected


def test_doc_example_range_1080_2080_10_skips_a_held_1080(holder):
    if not natively_free(1080):
        pytest.skip("1080 is held by something else here")
    holder(1080)
    expected = next(p for p in range(1090, 2080, 10) if natively_free(p))
    assert get_free_port(range(1080, 2080, 10)) == expected


def test_doc_example_range_22_80_warns_and_falls_back_as_hbutils_code_does():
    # hbutils' docstring says OSError; its code (and ours) warns and lets the
    # OS pick, since no port >= 1024 was given.
    with pytest.warns(UserWarning) as caught:
        port = get_free_port(range(22, 80))
    assert [str(w.message) for w in caught] == [HBUTILS_WARNING]
    assert caught[0].filename == __file__
    assert 1024 <= port <= 65535


def test_doc_example_range_22_80_non_strict_gives_an_os_port_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        port = get_free_port(range(22, 80), strict=False)
    assert 1024 <= port <= 65535


def test_ports_below_1024_are_never_used(block):
    assert get_free_port([80, 443, 1023, block]) == block


def test_strict_without_usable_ports_warns_and_falls_back():
    for ports in (None, [], range(0), [1, 2, 3], (p for p in [22])):
        with pytest.warns(UserWarning, match="strict mode will be disabled"):
            assert 1024 <= get_free_port(ports) <= 65535


def test_warnings_as_errors_raise_the_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="No usable ports provided"):
            get_free_port(None)


def test_strict_with_none_free_raises_oserror_with_hbutils_message_shape(block, holder):
    for p in range(block, block + 3):
        holder(p)
    with pytest.raises(OSError) as raised:
        get_free_port(range(block, block + 3))
    assert isinstance(raised.value, NoFreePortError)
    assert raised.value.code == "no-free-port"
    assert str(raised.value) == (
        f"No free port can be allocated within range({block}, {block + 3})"
    )


def test_non_strict_with_none_free_gives_a_port_the_os_picks(block, holder):
    for p in range(block, block + 3):
        holder(p)
    port = get_free_port(range(block, block + 3), strict=False)
    assert port not in range(block, block + 3)
    assert 1024 <= port <= 65535


def test_a_range_is_passed_whole_and_named_as_a_range_in_the_error(block, holder):
    holder(block)
    # The component names the candidates it was given: a range, not a list.
    with pytest.raises(NoFreePortError, match=rf"range\({block}, {block + 7}, 7\)"):
        get_free_port(range(block, block + 7, 7))
    # Every unprivileged port, stepping by 7, in one call.
    assert get_free_port(range(1024, 65536, 7)) % 7 == 1024 % 7


def test_any_iterable_works_in_its_order(block, holder):
    holder(block)
    ports = [block, block + 2, block + 1]
    assert get_free_port(ports) == block + 2
    assert get_free_port(tuple(ports)) == block + 2
    assert get_free_port(iter(ports)) == block + 2
    assert get_free_port(p for p in ports) == block + 2
    assert get_free_port({block + 3: "keys"}) == block + 3
    assert get_free_port({block + 3}) == block + 3
    assert get_free_port(frozenset([block + 3])) == block + 3


def test_a_descending_range_is_walked_downwards(block):
    assert get_free_port(range(block + 5, block - 1, -1)) == block + 5


def test_strict_is_read_by_truth_value_like_hbutils(block, holder):
    holder(block)
    with pytest.raises(NoFreePortError):
        get_free_port([block], strict=1)
    assert get_free_port([block], strict=0) != block
    assert get_free_port([block], strict="") != block


def test_listener_on_ipv6_loopback_only_is_busy(block):
    # hbutils connects to localhost over IPv4 and calls this port free.
    import socket

    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::1", block))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    s.listen()
    try:
        assert is_free_port(block) is False
        status = hbutils_port.probe_port(block)
        assert (status.ipv4, status.ipv6) == ("free", "in-use")
        assert status.is_free is False
    finally:
        s.close()


def test_low_ports_are_access_denied_without_privilege_else_checked(holder):
    port = next((p for p in range(600, 1000) if natively_free(p)), None)
    if os.geteuid() != 0:
        with pytest.raises(PermissionError) as raised:
            is_free_port(1)
        assert raised.value.code == "access-denied"
    elif port is not None:
        assert is_free_port(port) is True
        holder(port)
        assert is_free_port(port) is False


def test_get_free_ports_gives_distinct_free_ports_in_order(block, holder):
    holder(block + 1)
    assert hbutils_port.get_free_ports(3, range(block, block + 10)) == [block, block + 2, block + 3]
    with pytest.raises(NoFreePortError, match="only 3 are free"):
        hbutils_port.get_free_ports(5, [block, block + 1, block + 2, block + 3])
    got = hbutils_port.get_free_ports(5, [block, block + 1, block + 2], strict=False)
    assert got[:2] == [block, block + 2] and len(set(got)) == 5


def test_thousands_of_fallback_warnings_do_not_wear_out_a_session():
    # Each warning is a line in the session's captured stderr, a 64 KiB
    # buffer (about 870 warnings) that loses what does not fit: it is drained
    # after every call, so a session that lives for ever still shows each.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(1200):
            assert 1024 <= get_free_port(None) <= 65535
        for _ in range(1200):
            hbutils_port.reserve_port([]).release()
    assert len(caught) == 2400
    assert {str(w.message) for w in caught} == {HBUTILS_WARNING}


@pytest.mark.parametrize("port", [22, 80, 8080, 35022])
def test_doc_examples_of_is_free_port_answer_what_this_machine_has(port):
    # hbutils' docstring assumes sshd on 22, a web server on 80, and 8080 and
    # 35022 free; the answer is this machine's. Below 1024 an unprivileged
    # process may not bind, and is told so rather than guessed at.
    if port < 1024 and os.geteuid() != 0:
        with pytest.raises(PermissionError):
            is_free_port(port)
    else:
        assert is_free_port(port) is natively_free(port)
