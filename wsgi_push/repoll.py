"""Long-poll clients come straight back: under load, their next request
waits its turn behind the others ready.

Every long-poll answer is followed at once by the client's next poll. When
a publish answers a thousand parked polls, a thousand re-polls arrive
together, and a server that takes ready connections as they come reads
them all before anything else: a publisher's next request waited behind a
whole round of them (150 ms at 1,000 clients), and each round carried only
as many messages as publishers got one turn each. The servers of this
package (``wsgi_push.serve``, ``python -m wsgi_push``) put a hook in each
request's environ::

    environ["wsgi_push.repoll"]()  # this connection's next request is a re-poll

A connection so marked that has to wait for its next request takes it
through the hub's queue of callbacks instead of straight from the poll for
readiness. gevent looks for ready sockets again every few milliseconds
while that queue runs, so publishers and the app's other requests are
served within milliseconds, and each re-poll, when its turn comes, answers
with everything published meanwhile. An idle server admits it at once, the
same way.
"""

from __future__ import annotations

REPOLL = "wsgi_push.repoll"
"""The environ key of the hook, absent under servers that don't provide it."""
