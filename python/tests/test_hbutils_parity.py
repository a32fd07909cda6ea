"""The same questions to the hbutils PyPI package (in a throwaway venv, in a
subprocess) and to hbutils_port, on the same held ports."""

import json

import pytest

import hbutils_port

from conftest import run_python

HBUTILS = """
import json, sys, warnings
from hbutils.system.network.port import get_free_port, is_free_port
answers = []
for kind, ports, strict in json.loads(sys.argv[1]):
    if kind == "range":
        ports = range(*ports)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if kind == "is":
                got = ["ok", is_free_port(ports)]
            else:
                got = ["ok", get_free_port(ports, strict=strict)]
        except Exception as error:
            got = ["error", type(error).__name__, str(error)]
    answers.append([got, [str(w.message) for w in caught], [w.category.__name__ for w in caught]])
print(json.dumps(answers))
"""


def ours(questions):
    import warnings

    answers = []
    for kind, ports, strict in questions:
        if kind == "range":
            ports = range(*ports)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if kind == "is":
                    got = ["ok", hbutils_port.is_free_port(ports)]
                else:
                    got = ["ok", hbutils_port.get_free_port(ports, strict=strict)]
            except Exception as error:  # noqa: BLE001 - compared below
                got = ["error", type(error).__name__, str(error)]
        answers.append([got, [str(w.message) for w in caught], [w.category.__name__ for w in caught]])
    return answers


def test_same_answers_as_hbutils_on_the_same_held_ports(hbutils_python, block, holder):
    for p in (block, block + 2, block + 3):
        holder(p)
    questions = [
        ["is", block, True],
        ["is", block + 1, True],
        ["range", [block, block + 8], True],
        ["range", [block + 2, block + 8], True],
        ["range", [block, block + 8, 3], True],
        ["list", [block, block + 2, block + 4], True],
        ["list", [22, 80, block + 1], True],
        ["list", [-3, block + 1], True],
        ["range", [22, 80], False],
        ["list", [block, block + 2], False],
    ]
    theirs = json.loads(run_python(hbutils_python, HBUTILS, json.dumps(questions)))
    mine = ours(questions)
    for question, a, b in zip(questions, theirs, mine):
        got_a, got_b = a[0], b[0]
        if question[2] is False and got_a[0] == "ok" and got_a[1] not in range(block, block + 8):
            # Both let the OS pick: any port, never one that is held.
            assert got_b[0] == "ok" and got_b[1] not in (block, block + 2, block + 3), question
            continue
        assert got_a == got_b, (question, a, b)
        assert a[1:] == b[1:], (question, a, b)


def test_same_warning_and_fallback_as_hbutils_without_usable_ports(hbutils_python):
    questions = [["range", [22, 80], True], ["list", [], True], ["none", None, True]]
    theirs = json.loads(run_python(hbutils_python, HBUTILS, json.dumps(questions)))
    mine = ours(questions)
    for a, b in zip(theirs, mine):
        assert a[0][0] == b[0][0] == "ok"
        assert a[1:] == b[1:] == [
            ["No usable ports provided, so strict mode will be disabled."],
            ["UserWarning"],
        ]


def test_strict_with_none_free_is_oserror_in_both_with_the_same_shape(hbutils_python, block, holder):
    for p in range(block, block + 3):
        holder(p)
    question = [["range", [block, block + 3], True]]
    theirs = json.loads(run_python(hbutils_python, HBUTILS, json.dumps(question)))[0][0]
    mine = ours(question)[0][0]
    assert theirs[:2] == ["error", "OSError"] and mine[:2] == ["error", "NoFreePortError"]
    assert isinstance(hbutils_port.NoFreePortError(), OSError)
    # hbutils: "... with in range(a, b)." (its spelling); ours: "within".
    assert theirs[2] == f"No free port can be allocated with in range({block}, {block + 3})."
    assert mine[2] == f"No free port can be allocated within range({block}, {block + 3})"


def test_where_hbutils_misreads_a_port_we_differ_as_the_readme_says(hbutils_python, block):
    import socket

    # Bound without SO_REUSEADDR and not listening: a connect is answered
    # with a reset, which hbutils reads as free; the bind fails.
    bound = socket.socket()
    bound.bind(("127.0.0.1", block))
    questions = [["is", block, True]]
    six = None
    try:
        six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        six.bind(("::1", block + 1))
        six.listen()
        # A listener on ::1 only: hbutils asks IPv4 alone.
        questions.append(["is", block + 1, True])
    except OSError:
        pass  # no IPv6 loopback here
    try:
        theirs = json.loads(run_python(hbutils_python, HBUTILS, json.dumps(questions)))
        mine = ours(questions)
    finally:
        bound.close()
        if six:
            six.close()
    assert [a[0] for a in theirs] == [["ok", True]] * len(questions)
    assert [b[0] for b in mine] == [["ok", False]] * len(questions)
