"""HTTP over plain sockets, for tests that send bytes nothing may normalise
or hold a stream open without reading it."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit


def connect(
    base_url: str, timeout: float = 5.0, receive_buffer: int | None = None
) -> socket.socket:
    """A TCP connection to the server at ``base_url``.

    ``receive_buffer`` shrinks the socket's receive window (set before
    connecting, as it must be), so that the server's writes stall quickly.
    """
    address = urlsplit(base_url)
    sock = socket.socket()
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect((address.hostname, address.port))
    except BaseException:
        sock.close()
        raise
    return sock


def raw_response(base_url: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes; the response byte for byte, read until the server
    closes (``Connection: close``, or a request it can't continue)."""
    with connect(base_url, timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def open_stream_socket(
    base_url: str, path: str, timeout: float = 5.0, receive_buffer: int | None = None
) -> socket.socket:
    """A subscriber that sent ``GET path`` and got a ``200`` response head.

    The socket is returned with the body left to read; whatever arrived in
    the same packets as the head (the stream's opening) is dropped.
    """
    sock = connect(base_url, timeout, receive_buffer)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "server closed the stream"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
    except BaseException:
        sock.close()
        raise
    return sock


def send(
    base_url: str, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (no normalisation)."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
