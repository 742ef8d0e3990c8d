"""The durable run queue: runs on a Redis Stream, consumed by a group of ``rollgraph worker``
processes.

``streams`` holds the queue primitives (``RunQueue``: enqueue, receive with a visibility
timeout, heartbeat, ack, dead letters); ``consumer`` the loop that takes and runs them
(``Consumer``), one per worker process.
"""

from control_plane.queue.consumer import Consumer, Fatal
from control_plane.queue.streams import DeadLetter, Delivery, QueueStats, RunQueue

__all__ = ["Consumer", "DeadLetter", "Delivery", "Fatal", "QueueStats", "RunQueue"]
