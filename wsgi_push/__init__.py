"""wsgi_push: server push (SSE, long polling, chunked streaming) for any WSGI app."""

from .brokers.base import Batch, Broker
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .errors import BrokerUnavailable, PushError
from .message import Gap, Message
from .middleware import PushMiddleware
from .server import make_server, serve

__all__ = [
    "Batch",
    "Broker",
    "BrokerUnavailable",
    "Gap",
    "MemoryBroker",
    "Message",
    "PushError",
    "PushMiddleware",
    "RedisBroker",
    "make_server",
    "serve",
]
