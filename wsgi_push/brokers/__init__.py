"""Message brokers: the numbered queue behind every transport."""

from .base import Batch, Broker
from .memory import MemoryBroker
from .redis import RedisBroker

__all__ = ["Batch", "Broker", "MemoryBroker", "RedisBroker"]
