"""Python `websockets` (a client nobody here wrote) against switchboard-ws's echo_server."""

import os
from urllib.parse import urlsplit

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.sync.client import connect

TIMEOUT = 10
MIB = 1024 * 1024

COMPRESSION = pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "deflate"])


def open_ws(url, **kwargs):
    kwargs.setdefault("compression", None)
    return connect(
        url,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        max_size=16 * MIB,
        **kwargs,
    )


def deflate_of(ws):
    """The negotiated permessage-deflate extension, or None."""
    found = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


@COMPRESSION
def test_text_messages(echo_url, compression):
    with open_ws(echo_url, compression=compression) as ws:
        for msg in ["", "hello", "héllo wörld ✓ 😀", "x" * 125, "y" * 126, "z" * 65536]:
            ws.send(msg)
            assert ws.recv(TIMEOUT) == msg


@COMPRESSION
def test_binary_messages(echo_url, compression):
    with open_ws(echo_url, compression=compression) as ws:
        for msg in [b"", b"\x00", bytes(range(256)), os.urandom(70000)]:
            ws.send(msg)
            assert ws.recv(TIMEOUT) == msg


@COMPRESSION
def test_fragmented_messages(echo_url, compression):
    with open_ws(echo_url, compression=compression) as ws:
        ws.send(["hel", "lo ", "", "wörld ✓"])
        assert ws.recv(TIMEOUT) == "hello wörld ✓"
        chunks = [os.urandom(1000) for _ in range(50)]
        ws.send(chunks)
        assert ws.recv(TIMEOUT) == b"".join(chunks)
        # A normal message after fragmented ones still works.
        ws.send("after")
        assert ws.recv(TIMEOUT) == "after"


@COMPRESSION
def test_one_mebibyte_messages(echo_url, compression):
    with open_ws(echo_url, compression=compression) as ws:
        binary = os.urandom(MIB)
        ws.send(binary)
        assert ws.recv(TIMEOUT) == binary
        text = ("lorem ipsum dolor sit amet " * 40000)[:MIB]
        ws.send(text)
        assert ws.recv(TIMEOUT) == text


def test_deflate_negotiated_and_used_on_the_wire(echo_url, counting_proxy):
    port = urlsplit(echo_url).port
    text = "all work and no play makes jack a dull boy\n" * 24000  # ~1 MiB, compressible

    proxy = counting_proxy(port)
    with open_ws(f"ws://127.0.0.1:{proxy.port}", compression="deflate") as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert header.startswith("permessage-deflate"), header
        assert deflate_of(ws) is not None
        ws.send(text)
        assert ws.recv(TIMEOUT) == text
    assert proxy.up < len(text) // 10, f"client->server bytes {proxy.up}: not compressed"
    assert proxy.down < len(text) // 10, f"server->client bytes {proxy.down}: not compressed"

    plain = counting_proxy(port)
    with open_ws(f"ws://127.0.0.1:{plain.port}", compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert deflate_of(ws) is None
        ws.send(text)
        assert ws.recv(TIMEOUT) == text
    assert plain.up > len(text) and plain.down > len(text)


def test_deflate_parameters(echo_url):
    """All four RFC 7692 parameters offered: the server accepts and honours them."""
    offer = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=10,
    )
    with open_ws(echo_url, extensions=[offer]) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in header, header
        assert "server_no_context_takeover" in header, header
        ext = deflate_of(ws)
        assert ext is not None
        assert ext.remote_no_context_takeover
        assert ext.remote_max_window_bits <= 10
        for i in range(20):
            msg = f"message {i} " + "abc" * 1000
            ws.send(msg)
            assert ws.recv(TIMEOUT) == msg


@pytest.mark.parametrize("code", [1000, 4000])
def test_close_code_is_echoed(echo_url, code):
    ws = open_ws(echo_url)
    ws.send("before close")
    assert ws.recv(TIMEOUT) == "before close"
    ws.close(code, "bye")
    assert ws.close_code == code


def test_ping_pong(echo_url):
    with open_ws(echo_url) as ws:
        assert ws.ping(b"are you there?").wait(TIMEOUT)
        assert ws.ping(b"").wait(TIMEOUT)
        ws.send("still echoing")
        assert ws.recv(TIMEOUT) == "still echoing"
