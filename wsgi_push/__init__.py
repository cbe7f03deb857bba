"""wsgi_push: server push (SSE, long polling, chunked streaming) for any WSGI app."""

from ._version import __version__
from .brokers.base import Batch, Broker, WaitResult
from .brokers.memory import MemoryBroker
from .brokers.redis import RedisBroker
from .cors import CorsPolicy
from .errors import (
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PushError,
    ServiceUnavailable,
    TooManyChannels,
    Unauthorized,
)
from .message import Gap, Message
from .middleware import PushMiddleware
from .server import make_server, run_until_signalled, serve

__all__ = [
    "BadRequest",
    "Batch",
    "Broker",
    "BrokerUnavailable",
    "CorsPolicy",
    "Forbidden",
    "Gap",
    "MemoryBroker",
    "Message",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PushError",
    "PushMiddleware",
    "RedisBroker",
    "ServiceUnavailable",
    "TooManyChannels",
    "Unauthorized",
    "WaitResult",
    "__version__",
    "make_server",
    "run_until_signalled",
    "serve",
]
