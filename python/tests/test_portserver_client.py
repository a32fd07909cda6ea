"""hbutils_port.portserver_client against a stand-in server that answers as
``port-host portserver`` does (the real server is tested against this module
in host-example/tests/portserver.rs): the request lines, the replies, the
descriptors that come with them, and a close without a reply as refusal."""

import os
import socket
import threading

import pytest

from hbutils_port import (
    PortServerError,
    get_ports_from_server,
    get_sockets_from_server,
    release_ports_to_server,
)


class StandIn:
    """Answers each connection with ``reply(request)``: bytes, or a pair
    (bytes, sockets to pass), or None to close without a word."""

    def __init__(self, reply):
        self.name = "@hbutils-port-test-%d-%d" % (os.getpid(), id(self))
        self.requests = []
        self._reply = reply
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind("\0" + self.name[1:])
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(1024)
                self.requests.append(request)
                answer = self._reply(request)
                if isinstance(answer, tuple):
                    data, sockets = answer
                    socket.send_fds(conn, [data], [s.fileno() for s in sockets])
                elif answer is not None:
                    conn.sendall(answer)

    def close(self):
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


@pytest.fixture
def stand_in():
    servers = []

    def make(reply):
        server = StandIn(reply)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_ports_are_asked_for_this_process_and_read_from_the_reply(stand_in):
    server = stand_in(lambda request: b"15000 15001\n")
    assert get_ports_from_server(2, address=server.name) == [15000, 15001]
    assert server.requests == [b"get %d 2\n" % os.getpid()]


def test_sockets_come_with_the_reply_and_are_the_callers(stand_in):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    server = stand_in(lambda request: (b"%d\n" % port, [listener]))
    [(got, sock)] = get_sockets_from_server(1, pid=4242, address=server.name)
    with sock:
        assert got == port
        assert sock.getsockname()[1] == port
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    listener.close()
    assert server.requests == [b"socket 4242 1\n"]


def test_a_release_names_the_ports(stand_in):
    server = stand_in(lambda request: request.split(b" ", 2)[2])
    release_ports_to_server([15000, 15002], pid=7, address=server.name)
    assert server.requests == [b"release 7 15000 15002\n"]


def test_a_close_without_a_reply_is_a_refusal(stand_in):
    server = stand_in(lambda request: None)
    with pytest.raises(PortServerError, match="refused"):
        get_ports_from_server(address=server.name)
    with pytest.raises(PortServerError):
        get_sockets_from_server(address=server.name)
    assert isinstance(PortServerError("x"), OSError)


def test_sockets_missing_from_the_reply_are_an_error(stand_in):
    server = stand_in(lambda request: b"15000\n")
    with pytest.raises(PortServerError, match="sockets"):
        get_sockets_from_server(1, address=server.name)


def test_an_unreachable_server_and_a_bad_count_are_errors():
    with pytest.raises(PortServerError):
        get_ports_from_server(address="@hbutils-port-test-nobody-%d" % os.getpid())
    for count in (0, 65, -1):
        with pytest.raises(ValueError):
            get_ports_from_server(count, address="@unused")
