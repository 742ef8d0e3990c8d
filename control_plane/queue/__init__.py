"""The durable run queue: runs on a Redis Stream, consumed by a group of workers.

``streams`` holds the queue primitives (``RunQueue``: enqueue, receive with a visibility
timeout, heartbeat, ack, dead letters); ``worker`` the loop that runs them (``Worker``).
"""

from control_plane.queue.streams import DeadLetter, Delivery, QueueStats, RunQueue
from control_plane.queue.worker import Fatal, Worker

__all__ = ["DeadLetter", "Delivery", "Fatal", "QueueStats", "RunQueue", "Worker"]
