"""Redis: one numbered queue per channel shared by every process and host.

::

    from wsgi_push import PushMiddleware, RedisBroker

    broker = RedisBroker.from_url("redis://127.0.0.1:6379/0", max_messages=1000)
    app.wsgi_app = PushMiddleware(app.wsgi_app, broker=broker)

    # from a script, a cron job or another service: same ids, same subscribers
    RedisBroker.from_url("redis://127.0.0.1:6379/0").publish("news", {"title": "hi"})

One job per module:

``scripts``   the Lua scripts (shipped as ``lua/*.lua``): assign ids,
              store, trim and notify atomically; read after an id in one
              round trip; presence.
``cache``     this process's read-through cache of each channel's newest
              messages, shared by all local subscribers.
``listener``  one pub/sub connection per process relaying notifications.
``presence``  subscriber counts summed over live processes.
``background`` the jobs that outlive requests (greenlets or threads).
``broker``    :class:`RedisBroker`, tying them together.

See ``docs/redis.md`` for the keys and the guarantees.
"""

from .broker import RedisBroker, import_redis

__all__ = ["RedisBroker", "import_redis"]
