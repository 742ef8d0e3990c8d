"""Following a run on its event stream (``GET /v1/runs/{id}/events``) rather than by polling.

``follow`` still reads the run itself (``GET /v1/runs/{id}``, so what it yields is the same
model either way); the stream only says when to read: after each ``run`` event (the server
ends every batch of ``step`` events with one) and at ``end``. A stream that closes before
``end`` (its maximum lifetime) is reopened with ``Last-Event-ID``, so nothing is read twice for
the same news. A server without the stream (404 or 405 from an older version), one that
refuses it (503: its streams are full) or a stream that keeps breaking leaves ``follow``
polling every ``interval_s``, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from control_plane.client.calls import _seg

__all__ = ["BROKEN_LIMIT", "TIMEOUT", "Cursor", "events_path"]

# Longer than the server's keep-alive (15 s): a stream quiet for this long is broken.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
BROKEN_LIMIT = 3  # streams in a row that broke before polling takes over


@dataclass(slots=True)
class Cursor:
    """What a follower has of the stream: the last event's id and whether ``end`` came."""

    last_id: str | None = None
    ended: bool = False
    _event: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_id} if self.last_id else {}

    def feed(self, line: str) -> bool:
        """Take one line of the stream; True when it completes a ``run`` or ``end`` event:
        time to read the run."""
        if line.startswith("event:"):
            self._event = line.removeprefix("event:").strip()
        elif line.startswith("id:"):
            self.last_id = line.removeprefix("id:").strip()
        elif line == "":
            event, self._event = self._event, None
            self.ended = self.ended or event == "end"
            return event in ("run", "end")
        return False


def events_path(run_id: str) -> str:
    return f"/v1/runs/{_seg(run_id)}/events"
