/*
 * wsgi_push browser client: subscribe to a channel over Server-Sent Events,
 * chunked NDJSON streaming or long polling, resume from the last id after
 * any disconnect, and report gaps. No dependencies, no build step.
 *
 *   <script src="/push/client.js"></script>
 *   var sub = WsgiPush.subscribe("news", {
 *     onMessage: function (m) { console.log(m.id, m.data); },
 *     onGap: function (gap) { console.warn("missed messages", gap); }
 *   });
 *   sub.close();
 *
 * Written in ES5 on purpose: the stream and poll fallbacks exist for
 * browsers that lack EventSource, and those can't parse newer syntax.
 * The full reference is docs/client.md.
 */
(function (root) {
  "use strict";

  var DEFAULTS = {
    transport: "auto", // "auto" | "sse" | "stream" | "poll"
    prefix: "/push",
    since: null, // resume position: null = only new messages, 0 = all retained
    params: null, // extra query parameters, e.g. {name: "ann"}
    pollTimeout: null, // seconds a long poll may be held (null: the server's default)
    minDelay: 1000, // first reconnect delay, ms
    maxDelay: 30000, // reconnect delay cap, ms
    onMessage: null, // f({id, event, data}) for event "message"
    onEvent: null, // {name: f({id, event, data})} for named events
    onGap: null, // f({requested, first, last}) when continuity was lost
    onOpen: null, // f(transport) when a connection is established
    onError: null // f({transport, status, message}) on every failed or lost connection
  };

  function pickTransport(wanted) {
    if (wanted !== "auto") {
      return wanted;
    }
    if (typeof root.EventSource === "function") {
      return "sse";
    }
    // Reading a growing XHR response is less dependable than fetch streams
    // (older browsers, buffering proxies); plain long polling always works.
    return canFetchStreams() ? "stream" : "poll";
  }

  function canFetchStreams() {
    return typeof root.fetch === "function" && typeof root.ReadableStream === "function" &&
      typeof root.TextDecoder === "function" && typeof root.AbortController === "function";
  }

  function buildUrl(base, params) {
    var parts = [];
    for (var key in params) {
      if (Object.prototype.hasOwnProperty.call(params, key) && params[key] !== null &&
          params[key] !== undefined) {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
      }
    }
    return parts.length ? base + "?" + parts.join("&") : base;
  }

  function merge(target, source) {
    for (var key in source) {
      if (Object.prototype.hasOwnProperty.call(source, key)) {
        target[key] = source[key];
      }
    }
    return target;
  }

  /* SSE sends a str payload as its bare text and anything else as JSON;
   * text that isn't JSON is therefore a string payload. */
  function parseSseData(text) {
    try {
      return JSON.parse(text);
    } catch (notJson) {
      return text;
    }
  }

  /* One GET whose body arrives piece by piece: fetch + ReadableStream where
   * available, else XHR progress events (responseText grows, readyState 3).
   * Calls onText(chunk, status) as text arrives and onEnd(status, error)
   * once. Returns a function that aborts the request without calling onEnd. */
  function request(url, onText, onEnd) {
    return canFetchStreams() ? fetchRequest(url, onText, onEnd) : xhrRequest(url, onText, onEnd);
  }

  function fetchRequest(url, onText, onEnd) {
    var controller = new AbortController();
    var finished = false;
    var status = 0;
    function finish(error) {
      if (!finished) {
        finished = true;
        onEnd(status, error);
      }
    }
    root.fetch(url, {cache: "no-store", signal: controller.signal})
      .then(function (response) {
        status = response.status;
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        function pump() {
          return reader.read().then(function (step) {
            if (step.done) {
              onText(decoder.decode(), status);
              return finish(null);
            }
            onText(decoder.decode(step.value, {stream: true}), status);
            return pump();
          });
        }
        return pump();
      })
      .catch(finish);
    return function () {
      finished = true;
      controller.abort();
    };
  }

  /* responseText keeps everything received, so a long XHR stream is ended
   * (and resumed by the caller) once it holds this many characters. */
  var XHR_TEXT_LIMIT = 4 * 1024 * 1024;

  function xhrRequest(url, onText, onEnd) {
    var xhr = new XMLHttpRequest();
    var seen = 0;
    var finished = false;
    function finish(status, error) {
      finished = true;
      onEnd(status, error);
    }
    xhr.onreadystatechange = function () {
      if (finished || xhr.readyState < 3) {
        return;
      }
      var text = xhr.responseText || "";
      if (text.length > seen) {
        onText(text.slice(seen), xhr.status);
        seen = text.length;
      }
      if (xhr.readyState === 4) {
        finish(xhr.status, xhr.status === 0 ? new Error("network error") : null);
      } else if (seen > XHR_TEXT_LIMIT) {
        var status = xhr.status; // abort() resets it to 0
        finished = true;
        xhr.abort();
        finish(status, null);
      }
    };
    xhr.open("GET", url, true);
    xhr.send();
    return function () {
      finished = true;
      xhr.abort();
    };
  }

  /* A subscription: one channel, one transport, reconnecting until close(). */
  function Subscription(channel, options) {
    this.channel = channel;
    this.options = merge(merge({}, DEFAULTS), options || {});
    this.transport = pickTransport(this.options.transport);
    this.lastId = this.options.since;
    this.closed = false;
    this._failures = 0; // consecutive failed connections, for the back-off
    this._connected = false;
    this._timer = null;
    this._stop = null; // ends the current connection
    if (!{sse: 1, stream: 1, poll: 1}[this.transport]) {
      throw new Error("wsgi_push: unknown transport " + this.transport);
    }
    this._connect();
  }

  Subscription.prototype.close = function () {
    this.closed = true;
    clearTimeout(this._timer);
    if (this._stop) {
      this._stop();
      this._stop = null;
    }
  };

  /* A subscription "from now" must survive a cut before its first message
   * too: stream and SSE first learn where "now" is (a long poll with timeout
   * 0 answers at once with last_id), then connect from there. */
  Subscription.prototype._connect = function () {
    if (this.closed) {
      return;
    }
    if (this.lastId === null && this.transport !== "poll") {
      this._poll(0);
    } else {
      this["_" + this.transport]();
    }
  };

  Subscription.prototype._url = function (kind, position) {
    var params = merge({}, this.options.params || {});
    merge(params, position);
    var base = this.options.prefix + "/" + kind + "/" + encodeURIComponent(this.channel);
    return buildUrl(base, params);
  };

  Subscription.prototype._opened = function () {
    this._connected = true;
    this._failures = 0;
    this._call(this.options.onOpen, this.transport);
  };

  /* Report a lost connection and try again after a bounded exponential
   * back-off with jitter (half to all of the nominal delay), so that many
   * clients cut at once don't all come back at the same moment. */
  Subscription.prototype._retry = function (status, message) {
    if (this.closed) {
      return;
    }
    this._stop = null;
    this._connected = false;
    this._call(this.options.onError, {transport: this.transport, status: status, message: message});
    var nominal = Math.min(this.options.maxDelay, this.options.minDelay * Math.pow(2, this._failures));
    this._failures += 1;
    var self = this;
    this._timer = setTimeout(function () { self._connect(); }, nominal * (0.5 + Math.random() / 2));
  };

  /* Hand one message or gap notice to the page; remembers the id to resume from. */
  Subscription.prototype._deliver = function (message) {
    if (this.closed) {
      return;
    }
    if (message.event === "gap" && message.id === undefined) {
      this._skipGap(message.data);
      this._call(this.options.onGap, message.data);
      return;
    }
    this.lastId = message.id;
    var named = this.options.onEvent || {};
    var handler = Object.prototype.hasOwnProperty.call(named, message.event)
      ? named[message.event]
      : message.event === "message" ? this.options.onMessage : null;
    this._call(handler, message);
  };

  /* Move the resume position past a gap notice. The retained messages
   * (ids first..last) follow it and move the position as they arrive, so
   * the position becomes the id just before them; with nothing retained
   * (first 0) it is `last`. Either way it never stays ahead of the channel:
   * resuming from an id the channel hasn't reached yet would silently skip
   * the messages up to it once the channel gets there. */
  Subscription.prototype._skipGap = function (gap) {
    if (gap && typeof gap.first === "number" && typeof gap.last === "number") {
      this.lastId = gap.first > 0 ? gap.first - 1 : gap.last;
    }
  };

  /* Run a page's callback. Its exception is rethrown on its own, so that it
   * shows in the console but doesn't break the connection being read. */
  Subscription.prototype._call = function (callback, argument) {
    if (typeof callback !== "function") {
      return;
    }
    try {
      callback.call(this, argument);
    } catch (error) {
      setTimeout(function () { throw error; }, 0);
    }
  };

  /* Server-Sent Events. The browser reconnects by itself with the
   * Last-Event-ID header; when it gives up (readyState CLOSED, e.g. after a
   * 5xx or a wrong Content-Type) we open a new EventSource that names the
   * last id in the query. EventSource only hears the event names it listens
   * for: "message", "gap" and the keys of onEvent but "open" and "error". */
  Subscription.prototype._sse = function () {
    var self = this;
    // Where the browser's own reconnect resumes from: its Last-Event-ID, the
    // last id it was sent (the stream opens with `id: <position>`).
    var browserId = this.lastId;
    var source = new root.EventSource(this._url("sse", {last_event_id: this.lastId}));
    function onEvent(event) {
      if (event.lastEventId) {
        browserId = parseInt(event.lastEventId, 10);
      }
      var message = {event: event.type, data: parseSseData(event.data)};
      if (event.type !== "gap") {
        message.id = parseInt(event.lastEventId, 10);
      }
      self._deliver(message);
    }
    var names = ["message", "gap"].concat(Object.keys(this.options.onEvent || {}));
    for (var i = 0; i < names.length; i++) {
      // EventSource's own connection events, never published ones (the
      // server refuses those names): onOpen and onError report them.
      if (names[i] !== "open" && names[i] !== "error") {
        source.addEventListener(names[i], onEvent);
      }
    }
    source.onopen = function () { self._opened(); };
    source.onerror = function () {
      if (source.readyState === root.EventSource.CLOSED) {
        source.close();
        self._retry(0, "event stream closed by the browser");
      } else if (browserId !== self.lastId) {
        // A gap moved the position, and a gap notice carries no id: the
        // browser would resume from its old, possibly ahead-of-the-channel
        // id (unless an `id:` record we can't see followed). Reconnect
        // ourselves, naming the position in the query.
        source.close();
        self._retry(0, "reconnecting from the position after a gap");
      } else {
        self._call(self.options.onError, {transport: "sse", status: 0, message: "reconnecting"});
      }
    };
    this._stop = function () { source.close(); };
  };

  /* Chunked NDJSON: one JSON object per line; empty lines are heartbeats.
   * A line is handled only once its newline has arrived. */
  Subscription.prototype._stream = function () {
    var self = this;
    var buffer = "";
    var opened = false;
    function onText(text, status) {
      if (status !== 200) {
        return; // an error answer: reported by onEnd
      }
      if (!opened) {
        opened = true;
        self._opened();
      }
      buffer += text;
      var lines = buffer.split("\n");
      buffer = lines.pop();
      for (var i = 0; i < lines.length && !self.closed; i++) {
        if (lines[i].trim()) {
          self._deliver(JSON.parse(lines[i]));
        }
      }
    }
    function onEnd(status, error) {
      self._retry(status, error ? String(error) : "stream ended (HTTP " + status + ")");
    }
    this._stop = request(this._url("stream", {since: this.lastId}), onText, onEnd);
  };

  /* Long polling: each answer carries everything after `since` and the
   * position to ask from next (`last_id`), so nothing falls between polls. */
  Subscription.prototype._poll = function (timeout) {
    var self = this;
    var body = "";
    var position = {
      since: this.lastId,
      timeout: timeout === undefined ? this.options.pollTimeout : timeout
    };
    this._stop = request(this._url("poll", position), function (text) { body += text; },
      function (status, error) {
        var answer = null;
        if (!error && status === 200) {
          try {
            answer = JSON.parse(body);
          } catch (badJson) {
            error = badJson;
          }
        }
        if (!answer) {
          self._retry(status, error ? String(error) : body);
          return;
        }
        if (!self._connected && self.transport === "poll") {
          self._opened();
        }
        if (answer.gap) {
          self._deliver({event: "gap", data: answer.gap});
        }
        for (var i = 0; i < answer.messages.length && !self.closed; i++) {
          self._deliver(answer.messages[i]);
        }
        self.lastId = answer.last_id;
        self._connect();
      });
  };

  root.WsgiPush = {
    subscribe: function (channel, options) {
      return new Subscription(channel, options);
    }
  };
})(typeof self !== "undefined" ? self : this);
