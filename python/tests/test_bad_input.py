"""No Python value crashes the interpreter: each is a typed exception."""

import itertools

import pytest

import hbutils_port
from hbutils_port import (
    Host,
    InvalidArgumentError,
    PortOutOfRangeError,
    get_free_port,
    get_free_ports,
    is_free_port,
    probe_port,
    reserve_port,
    reserve_ports,
)


@pytest.mark.parametrize("port", [-1, 65536, 2**70, -(2**70), 10**100])
def test_an_integer_that_is_no_port_is_a_value_and_overflow_error(port):
    for call in (is_free_port, probe_port):
        with pytest.raises(ValueError) as raised:
            call(port)
        assert isinstance(raised.value, OverflowError)
        assert isinstance(raised.value, PortOutOfRangeError)
        assert raised.value.code == "invalid-argument"


def test_port_zero_is_the_components_invalid_argument():
    with pytest.raises(InvalidArgumentError, match="0"):
        is_free_port(0)
    with pytest.raises(ValueError):
        probe_port(0)


@pytest.mark.parametrize("port", [True, False])
def test_a_bool_is_not_a_port(port):
    with pytest.raises(ValueError, match="bool"):
        is_free_port(port)
    with pytest.raises(ValueError, match="bool"):
        get_free_port([port])


@pytest.mark.parametrize("port", [1.0, 8080.5, None, "8080", b"80", [8080], object()])
def test_a_non_integer_is_a_type_error_as_in_hbutils(port):
    with pytest.raises(TypeError):
        is_free_port(port)


def test_an_integer_like_object_is_accepted(block):
    class Index:
        def __index__(self):
            return block

    assert is_free_port(Index()) is True


@pytest.mark.parametrize(
    "ports",
    [
        range(-1, 2000),
        range(60000, 70000),
        range(1024, 2**40),
        range(1024, 65536, 2**40),
        range(2**70, 2**71),
        range(65535, -1, -1),
    ],
)
def test_a_range_beyond_the_port_numbers_is_a_value_error(ports):
    with pytest.raises(ValueError):
        get_free_port(ports)
    with pytest.raises(ValueError):
        reserve_port(ports)


def test_a_list_entry_above_65535_is_an_overflow_like_hbutils(block):
    with pytest.raises(OverflowError):
        get_free_port([block, 70000])


def test_negative_list_entries_are_dropped_like_hbutils(block):
    assert get_free_port([-5, -(2**70), block]) == block


@pytest.mark.parametrize("ports", [["8080"], [1.5], [None], 5, "8080", object()])
def test_non_integer_candidates_are_type_errors(ports):
    with pytest.raises(TypeError):
        get_free_port(ports)


def test_an_iterable_that_raises_passes_its_error_through():
    def broken():
        yield 20000
        raise KeyError("from the generator")

    with pytest.raises(KeyError, match="from the generator"):
        get_free_port(broken())


def test_a_huge_list_is_refused_not_fed_to_the_guest():
    with pytest.raises(ValueError, match="pass a range"):
        get_free_port(itertools.islice(itertools.cycle(range(1024, 2048)), (1 << 20) + 1))


def test_a_huge_range_is_one_call():
    assert 1024 <= get_free_port(range(0, 65536)) <= 65535


@pytest.mark.parametrize("count", [0, -1, 64513, 2**70, True])
def test_bad_counts_are_value_errors(count):
    with pytest.raises(ValueError):
        get_free_ports(count)
    with pytest.raises(ValueError):
        reserve_ports(count)


@pytest.mark.parametrize("count", [1.0, None, "3"])
def test_non_integer_counts_are_type_errors(count):
    with pytest.raises(TypeError):
        get_free_ports(count)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"call_timeout": 0},
        {"call_timeout": -1},
        {"call_timeout": float("nan")},
        {"port_block": range(0, 0)},
        {"port_block": range(20000, 70000)},
        {"port_block": range(20000, 20100, 2)},
        {"port_block": (5, 1)},
        {"max_sessions": 0},
        {"max_sockets": 0},
    ],
)
def test_bad_host_settings_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        Host(**kwargs)


@pytest.mark.parametrize("kwargs", [{"port_block": "20000"}, {"port_block": 5}, {"call_timeout": "1"}])
def test_wrong_host_setting_types_are_type_errors(kwargs):
    with pytest.raises(TypeError):
        Host(**kwargs)


def test_the_module_still_works_after_bad_input(block):
    # Every kind of refusal first, in this test, so that it means the same
    # run alone or after the others.
    for port in (True, -1, 2**70, 0, 1.0, None, "8080", object()):
        with pytest.raises((TypeError, ValueError)):
            is_free_port(port)
    for ports in (range(2**70, 2**71), [block, 70000], ["8080"], 5):
        with pytest.raises((TypeError, ValueError)):
            get_free_port(ports)

    def broken():
        yield block
        raise KeyError("from the generator")

    with pytest.raises(KeyError):
        get_free_port(broken())
    for count in (0, 2**70, True, None):
        with pytest.raises((TypeError, ValueError)):
            reserve_ports(count)
    with pytest.raises(ValueError):
        Host(port_block=range(20000, 70000))
    assert is_free_port(block) is True
    assert hbutils_port.get_free_port([block]) == block
    with hbutils_port.reserve_port([block]) as r:
        assert r.port == block
