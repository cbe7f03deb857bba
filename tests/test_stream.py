"""Chunked NDJSON streaming: the encoder byte for byte, and the live endpoint."""

from __future__ import annotations

import json
import time
from itertools import pairwise

import requests

from tests.support.clients import ndjson_objects, publish
from tests.support.servers import ServerProcess
from wsgi_push import Gap, Message
from wsgi_push.transports.stream import HEARTBEAT, encode_gap, encode_message


def test_encode_message_is_one_json_line() -> None:
    message = Message("c", 3, "message", "a\nb")
    assert encode_message(message) == b'{"id":3,"event":"message","data":"a\\nb"}\n'


def test_encode_gap_has_no_id() -> None:
    assert encode_gap(Gap(1, 4, 6)) == (
        b'{"event":"gap","data":{"requested":1,"first":4,"last":6}}\n'
    )


def test_heartbeat_is_an_empty_line() -> None:
    assert HEARTBEAT == b"\n"


def test_live_stream_is_chunked_ndjson(server: ServerProcess) -> None:
    url = f"{server.url}/push/stream/ndjson"
    with requests.get(url, stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        assert response.headers["Transfer-Encoding"] == "chunked"
        objects = ndjson_objects(response)
        message_id = publish(server.url, "ndjson", {"text": "caf\u00e9"}, event="e")
        assert next(objects) == {"id": message_id, "event": "e", "data": {"text": "caf\u00e9"}}


def test_empty_line_heartbeats_while_idle(server: ServerProcess) -> None:
    arrivals = []
    with requests.get(f"{server.url}/push/stream/quiet", stream=True, timeout=5) as response:
        for chunk in response.iter_content(chunk_size=None):
            assert chunk.strip() == b""
            arrivals.append(time.monotonic())
            if len(arrivals) == 4:  # the opening line plus three heartbeats
                break
    gaps = [later - earlier for earlier, later in pairwise(arrivals[1:])]
    assert all(0.35 < gap < 1.5 for gap in gaps), gaps


def test_resume_with_since(server: ServerProcess) -> None:
    for n in range(4):
        publish(server.url, "since", n)
    url = f"{server.url}/push/stream/since?since=2"
    with requests.get(url, stream=True, timeout=5) as response:
        objects = ndjson_objects(response)
        assert [json.dumps(next(objects)["data"]) for _ in range(2)] == ["2", "3"]
