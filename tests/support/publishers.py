"""A publisher thread for tests that publish continuously while clients
move, reconnect or lose their server."""

from __future__ import annotations

import threading
from typing import Any

import requests

from tests.support.clients import AUTH
from tests.support.servers import ServerProcess

DEADLINE = 15.0  # the longest a caller waits for a publish or for the thread to end


class ContinuousPublisher:
    """A thread publishing ``{"n": 1}``, ``{"n": 2}`` ... over HTTP through
    one server, one after another with a short pause, until :meth:`stop`.
    Each answer must be ``201 {"id": first_id + n - 1}``: ids continue from
    the channel's first (1 in memory, from Redis's clock under Redis) with
    no gap."""

    def __init__(self, server: ServerProcess, channel: str) -> None:
        self.url = f"{server.url}/push/publish/{channel}"
        self.first_id = 0
        self.last_id = 0
        self.published = 0
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with requests.Session() as session:
                while not self._stopping.is_set():
                    n = self.published + 1
                    response = session.post(
                        self.url, json={"data": {"n": n}}, headers=AUTH, timeout=10
                    )
                    assert response.status_code == 201, response.text
                    message_id = response.json()["id"]
                    assert message_id == (self.first_id or message_id) + n - 1, response.text
                    with self._changed:
                        self.first_id = self.first_id or message_id
                        self.published, self.last_id = n, message_id
                        self._changed.notify_all()
                    self._stopping.wait(0.005)  # a steady stream, not a flood
        except BaseException as error:
            self.error = error
            with self._changed:
                self._changed.notify_all()

    def check(self) -> None:
        """Raise what made the thread stop publishing, if anything did."""
        if self.error is not None:
            raise self.error

    def id_of(self, n: int, timeout: float = DEADLINE) -> int:
        """The id of the ``n``-th message (known once the first is published)."""
        with self._changed:
            self._changed.wait_for(lambda: self.first_id or self.error, timeout)
        self.check()
        assert self.first_id, f"nothing published within {timeout}s"
        return self.first_id + n - 1

    def items(self, last_id: int) -> list[dict[str, Any]]:
        """The messages it published through ``last_id``, as clients receive them."""
        first = self.id_of(1)
        return [
            {"id": message_id, "event": "message", "data": {"n": message_id - first + 1}}
            for message_id in range(first, last_id + 1)
        ]

    def wait_for(self, message_id: int, timeout: float = DEADLINE) -> None:
        """Return once ``message_id`` is published."""
        with self._changed:
            self._changed.wait_for(lambda: self.last_id >= message_id or self.error, timeout)
        self.check()
        assert self.last_id >= message_id, f"id {message_id} not published within {timeout}s"

    def halt(self) -> None:
        """Ask the thread to stop publishing (it ends after its current publish)."""
        self._stopping.set()

    def stop(self) -> int:
        """Stop publishing; the last id published."""
        self.halt()
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the publisher did not stop"
        self.check()
        return self.last_id
