/*
 * wsgi_push browser client: subscribe to one or many channels over one
 * connection (Server-Sent Events, chunked NDJSON streaming or long polling),
 * resume every channel from its last id after any disconnect, report gaps,
 * and optionally share one connection between all the tabs of an origin.
 * No dependencies, no build step.
 *
 *   <script src="/push/client.js"></script>
 *   var sub = WsgiPush.subscribe(["news", "chat"], {
 *     onMessage: function (m) { console.log(m.channel, m.id, m.data); },
 *     onGap: function (gap) { console.warn("missed messages", gap); }
 *   });
 *   sub.add("alerts"); sub.remove("news"); sub.close();
 *
 * The same file is served as an ES module at /push/client.mjs (the server
 * appends an `export` line) and with declarations at /push/client.d.ts.
 *
 * Written in ES5 on purpose: the stream and poll fallbacks exist for
 * browsers that lack EventSource, and those can't parse newer syntax. (The
 * tab sharing uses Promises, but only where Web Locks exist.)
 * The full reference is docs/client.md.
 */
var WsgiPush = (function (root) {
  "use strict";

  var DEFAULTS = {
    transport: "auto", // "auto" | "sse" | "stream" | "poll"
    prefix: "/push",
    since: null, // null = only new; 0 = all retained; N; a cursor "5,0,"; or {channel: N}
    params: null, // extra query parameters, e.g. {name: "ann"}
    pollTimeout: null, // seconds a long poll may be held (null: the server's default)
    minDelay: 1000, // first reconnect delay, ms
    maxDelay: 30000, // reconnect delay cap, ms
    share: false, // one connection for all tabs of this origin (Web Locks + BroadcastChannel)
    onMessage: null, // f({channel, id, event, data}) for event "message"
    onEvent: null, // {name: f({channel, id, event, data})} for named events
    onGap: null, // f({channel, requested, first, last}) when continuity was lost
    onOpen: null, // f(transport) when a connection is established
    onError: null // f({transport, status, message}) on every failed or lost connection
  };

  var CHANNEL_NAME = /^[A-Za-z0-9_.:\-]{1,128}$/;
  // EventSource fires these at its own connection handlers (onopen/onerror):
  // never listened for as message events (the server refuses them as names).
  var CONNECTION_EVENTS = {error: true, open: true};
  var has = Object.prototype.hasOwnProperty;

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
      if (has.call(params, key) && params[key] !== null && params[key] !== undefined) {
        parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
      }
    }
    return parts.length ? base + "?" + parts.join("&") : base;
  }

  function merge(target, source) {
    for (var key in source) {
      if (has.call(source, key)) {
        target[key] = source[key];
      }
    }
    return target;
  }

  function checkChannel(name) {
    if (typeof name !== "string" || !CHANNEL_NAME.test(name) || name === "." || name === "..") {
      throw new Error("wsgi_push: bad channel name " + JSON.stringify(name));
    }
    return name;
  }

  function channelList(channels) {
    var list = typeof channels === "string" ? [channels] : channels;
    if (!list || typeof list.length !== "number") {
      throw new Error("wsgi_push: channels must be a name or an array of names");
    }
    var seen = {};
    var result = [];
    for (var i = 0; i < list.length; i++) {
      if (!has.call(seen, checkChannel(list[i]))) {
        seen[list[i]] = true;
        result.push(list[i]);
      }
    }
    return result;
  }

  /* A resume position: null ("only new") or an id, 0 ≤ id ≤ 2^53 - 1. */
  function checkPosition(value) {
    if (value === null || value === undefined || value === "") {
      return null;
    }
    var number = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof number !== "number" || number < 0 || number % 1 !== 0 || number > 9007199254740991) {
      throw new Error("wsgi_push: bad position " + JSON.stringify(value));
    }
    return number;
  }

  /* `since` as {channel: position}: one number (or a cursor of one entry)
   * for every channel, a cursor "5,0," with one entry per channel in order,
   * or a map (channels it doesn't name start from "only new"). */
  function parsePositions(since, channels) {
    var positions = {};
    var entries = null;
    if (typeof since === "string" && since.indexOf(",") >= 0) {
      entries = since.split(",");
      if (entries.length !== channels.length) {
        throw new Error("wsgi_push: the cursor " + since + " has " + entries.length +
          " entries for " + channels.length + " channels");
      }
    }
    for (var i = 0; i < channels.length; i++) {
      var channel = channels[i];
      if (entries) {
        positions[channel] = checkPosition(entries[i]);
      } else if (since !== null && typeof since === "object") {
        positions[channel] = checkPosition(has.call(since, channel) ? since[channel] : null);
      } else {
        positions[channel] = checkPosition(since);
      }
    }
    return positions;
  }

  /* Where a gap notice moves a position: just before the retained messages
   * (ids first..last, which follow it), or to `last` when none are retained.
   * Never left ahead of the channel: resuming from an id the channel hasn't
   * reached yet would silently skip the messages up to it later. */
  function afterGap(gap) {
    return gap.first > 0 ? gap.first - 1 : gap.last;
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
            if (finished) {
              return null;
            }
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

  /* A long poll's whole answer as JSON: onAnswer(answer) or onFailure(status, message). */
  function getJson(url, onAnswer, onFailure) {
    var body = "";
    return request(url, function (text) { body += text; }, function (status, error) {
      var answer = null;
      if (!error && status === 200) {
        try {
          answer = JSON.parse(body);
        } catch (badJson) {
          error = badJson;
        }
      }
      if (answer) {
        onAnswer(answer);
      } else {
        onFailure(status, error ? String(error) : body);
      }
    });
  }

  /* Run a page's callback with `this` = the subscription. Its exception is
   * rethrown on its own, so that it shows in the console but doesn't break
   * the connection being read. */
  function call(subscription, callback, argument) {
    if (typeof callback !== "function") {
      return;
    }
    try {
      callback.call(subscription, argument);
    } catch (error) {
      setTimeout(function () { throw error; }, 0);
    }
  }

  /* Hand a message to the handler for its event name. */
  function dispatch(subscription, message) {
    var options = subscription.options;
    var named = options.onEvent || {};
    var handler = null;
    if (has.call(CONNECTION_EVENTS, message.event)) {
      handler = null;
    } else if (has.call(named, message.event)) {
      handler = named[message.event];
    } else if (message.event === "message") {
      handler = options.onMessage;
    }
    call(subscription, handler, message);
  }

  function eventNames(options) {
    return ["message"].concat(Object.keys(options.onEvent || {}));
  }

  /* ---------------------------------------------------------------------
   * Connection: one set of channels on one transport, reconnecting until
   * stop(). It keeps each channel's position and tells `sink` what arrives:
   *   sink.message(m, prev)  m has its channel; prev = that channel's position before m
   *   sink.gap(gap, prev)    gap has its channel
   *   sink.positions()       positions moved without a message (a poll's cursor)
   *   sink.open(transport), sink.error({transport, status, message})
   * One channel uses the v1 wire format, several the multiplexed one.
   */
  function Connection(channels, positions, events, options, sink) {
    this.channels = channels.slice(); // in URL order
    this.positions = positions; // {channel: id or null}
    this.events = events; // event names to listen for over SSE
    this.options = options;
    this.sink = sink;
    this.transport = pickTransport(options.transport);
    this.connected = false;
    this.stopped = false;
    this._failures = 0; // consecutive failed connections, for the back-off
    this._timer = null;
    this._restartTimer = null;
    this._stop = null; // ends the current connection
    if (!{sse: 1, stream: 1, poll: 1}[this.transport]) {
      throw new Error("wsgi_push: unknown transport " + this.transport);
    }
    this._connect();
  }

  Connection.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this._restartTimer);
    this._end();
  };

  Connection.prototype._end = function () {
    clearTimeout(this._timer);
    this.connected = false;
    if (this._stop) {
      this._stop();
      this._stop = null;
    }
  };

  /* Change the set of channels: a reconnect with the new set, soon (several
   * changes in one turn make one reconnect). The other channels keep their
   * positions, which only move as messages are handed on, so the reconnect
   * loses and repeats nothing. */
  Connection.prototype.add = function (channel, position) {
    if (!has.call(this.positions, channel)) {
      this.channels.push(channel);
      this.positions[channel] = position;
      this._restartSoon();
    }
  };

  Connection.prototype.remove = function (channel) {
    var index = this.channels.indexOf(channel);
    if (index >= 0) {
      this.channels.splice(index, 1);
      delete this.positions[channel];
      this._restartSoon();
    }
  };

  /* Listen for these event names too (SSE hears only the names it listens for). */
  Connection.prototype.listen = function (events) {
    var added = events.filter(function (name) { return this.events.indexOf(name) < 0; }, this);
    this.events = events;
    if (added.length && this.transport === "sse") {
      // Positions only moved past events heard, so the reconnect brings
      // back the ones nobody listened for until now.
      this._restartSoon();
    }
  };

  Connection.prototype._restartSoon = function () {
    var self = this;
    if (this._restartTimer === null && !this.stopped) {
      this._restartTimer = setTimeout(function () {
        self._restartTimer = null;
        self._end();
        self._connect();
      }, 0);
    }
  };

  /* A subscription "from now" must survive a cut before its first message
   * too: stream and SSE first learn where "now" is (a long poll with timeout
   * 0 answers at once with every position), then connect from there. */
  Connection.prototype._connect = function () {
    if (this.stopped || this.channels.length === 0) {
      return;
    }
    var unresolved = this.channels.some(function (c) { return this.positions[c] === null; }, this);
    if (unresolved && this.transport !== "poll") {
      this._poll(0);
    } else {
      this["_" + this.transport]();
    }
  };

  /* The resume position as sent: one channel's id, or a cursor (one entry
   * per channel, in URL order, empty for "only new"); null for "only new". */
  Connection.prototype._cursor = function () {
    var positions = this.positions;
    var entries = this.channels.map(function (c) { return positions[c]; });
    if (entries.length === 1) {
      return entries[0];
    }
    if (entries.every(function (p) { return p === null; })) {
      return null;
    }
    return entries.map(function (p) { return p === null ? "" : String(p); }).join(",");
  };

  Connection.prototype._url = function (kind, position) {
    var params = merge({}, this.options.params || {});
    merge(params, position);
    var path = this.channels.map(encodeURIComponent).join(",");
    return buildUrl(this.options.prefix + "/" + kind + "/" + path, params);
  };

  Connection.prototype._opened = function () {
    this.connected = true;
    this._failures = 0;
    this.sink.open(this.transport);
  };

  /* Report a lost connection and try again after a bounded exponential
   * back-off with jitter (half to all of the nominal delay), so that many
   * clients cut at once don't all come back at the same moment. */
  Connection.prototype._retry = function (status, message) {
    if (this.stopped) {
      return;
    }
    this._stop = null;
    this.connected = false;
    this.sink.error({transport: this.transport, status: status, message: message});
    var nominal = Math.min(this.options.maxDelay, this.options.minDelay * Math.pow(2, this._failures));
    this._failures += 1;
    var self = this;
    this._timer = setTimeout(function () { self._connect(); }, nominal * (0.5 + Math.random() / 2));
  };

  /* One message: moves its channel's position (a channel no longer in the
   * set, from a connection being replaced, is dropped). */
  Connection.prototype._message = function (message) {
    var channel = message.channel;
    if (this.stopped || !has.call(this.positions, channel)) {
      return;
    }
    var prev = this.positions[channel];
    this.positions[channel] = message.id;
    this.sink.message(message, prev);
  };

  Connection.prototype._gap = function (gap) {
    var channel = gap.channel;
    if (this.stopped || !has.call(this.positions, channel) || typeof gap.first !== "number") {
      return;
    }
    var prev = this.positions[channel];
    this.positions[channel] = afterGap(gap);
    this.sink.gap(gap, prev);
  };

  /* Server-Sent Events. The browser reconnects by itself with the
   * Last-Event-ID header (the stream's `id:` is the id, or with several
   * channels the cursor); when it gives up (readyState CLOSED, e.g. after a
   * 5xx or a wrong Content-Type) we open a new EventSource that names the
   * position in the query. EventSource only hears the event names it
   * listens for: "gap" and this.events, never "error" or "open". */
  Connection.prototype._sse = function () {
    var self = this;
    var multiplexed = this.channels.length > 1;
    var channel = this.channels[0];
    // Where the browser's own reconnect resumes from: its Last-Event-ID,
    // the last id it was sent (the stream opens with `id: <position>`).
    var browserPosition = String(this._cursor());
    var source = new root.EventSource(this._url("sse", {last_event_id: this._cursor()}));
    function onEvent(event) {
      if (typeof event.data !== "string") {
        return; // not a message event
      }
      if (event.lastEventId) {
        browserPosition = event.lastEventId;
      }
      if (multiplexed) {
        // The data is the whole message (or gap) object, channel included.
        var parsed = JSON.parse(event.data);
        return event.type === "gap" ? self._gap(parsed) : self._message(parsed);
      }
      if (event.type === "gap") {
        return self._gap(merge({channel: channel}, parseSseData(event.data)));
      }
      self._message({
        channel: channel,
        id: parseInt(event.lastEventId, 10),
        event: event.type,
        data: parseSseData(event.data)
      });
    }
    var names = ["gap"].concat(this.events);
    var listened = {};
    for (var i = 0; i < names.length; i++) {
      if (!has.call(CONNECTION_EVENTS, names[i]) && !has.call(listened, names[i])) {
        listened[names[i]] = true;
        source.addEventListener(names[i], onEvent);
      }
    }
    // A message event named "open" or "error" (from a server that doesn't
    // refuse those names) reaches these handlers too: it carries data, a
    // connection event doesn't.
    source.onopen = function (event) {
      if (typeof event.data !== "string") {
        self._opened();
      }
    };
    source.onerror = function (event) {
      if (event && typeof event.data === "string") {
        return;
      }
      if (source.readyState === root.EventSource.CLOSED) {
        source.close();
        self._retry(0, "event stream closed by the browser");
      } else if (browserPosition !== String(self._cursor())) {
        // A gap moved a position (a gap notice carries no id), or events
        // nobody listens for moved the browser's: the browser would resume
        // from where we are not. Reconnect ourselves, naming our position.
        source.close();
        self._retry(0, "reconnecting from the position after a gap");
      } else {
        self.connected = false;
        self.sink.error({transport: "sse", status: 0, message: "reconnecting"});
      }
    };
    this._stop = function () { source.close(); };
  };

  /* Chunked NDJSON: one JSON object per line; empty lines are heartbeats.
   * A line is handled only once its newline has arrived. */
  Connection.prototype._stream = function () {
    var self = this;
    var multiplexed = this.channels.length > 1;
    var channel = this.channels[0];
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
      for (var i = 0; i < lines.length && !self.stopped; i++) {
        if (lines[i].trim()) {
          var line = JSON.parse(lines[i]);
          if (line.event === "gap" && line.id === undefined) {
            self._gap(multiplexed ? line.data : merge({channel: channel}, line.data));
          } else {
            self._message(multiplexed ? line : merge({channel: channel}, line));
          }
        }
      }
    }
    function onEnd(status, error) {
      self._retry(status, error ? String(error) : "stream ended (HTTP " + status + ")");
    }
    this._stop = request(this._url("stream", {since: this._cursor()}), onText, onEnd);
  };

  /* Long polling: each answer carries everything after `since` and the
   * position to ask from next (`last_id`, or with several channels the
   * `cursor`), so nothing falls between polls. */
  Connection.prototype._poll = function (timeout) {
    var self = this;
    var channels = this.channels.slice();
    var position = {
      since: this._cursor(),
      timeout: timeout === undefined ? this.options.pollTimeout : timeout
    };
    this._stop = getJson(this._url("poll", position), function (answer) {
      self._stop = null;
      if (!self.connected && self.transport === "poll") {
        self._opened();
      }
      var gaps = channels.length > 1 ? answer.gaps : answer.gap ? [answer.gap] : [];
      var i;
      for (i = 0; i < gaps.length; i++) {
        self._gap(merge({channel: channels[0]}, gaps[i]));
      }
      for (i = 0; i < answer.messages.length; i++) {
        self._message(merge({channel: channels[0]}, answer.messages[i]));
      }
      var next = channels.length > 1 ? String(answer.cursor).split(",") : [answer.last_id];
      for (i = 0; i < channels.length; i++) {
        if (has.call(self.positions, channels[i])) {
          self.positions[channels[i]] = Number(next[i]);
        }
      }
      self.sink.positions();
      self._connect();
    }, function (status, message) { self._retry(status, message); });
  };

  /* ---------------------------------------------------------------------
   * A subscription with a connection of its own.
   */
  function Subscription(channels, options) {
    var self = this;
    var list = channelList(channels);
    this.options = options;
    this.shared = false;
    this.closed = false;
    this._connection = new Connection(list, parsePositions(options.since, list),
      eventNames(options), options, {
        message: function (message) { dispatch(self, message); },
        gap: function (gap) { call(self, self.options.onGap, gap); },
        positions: function () {},
        open: function (transport) { call(self, self.options.onOpen, transport); },
        error: function (error) { call(self, self.options.onError, error); }
      });
  }

  Subscription.prototype = {
    get channels() { return this._connection.channels.slice(); },
    get transport() { return this._connection.transport; },
    get leader() { return true; },
    positions: function () { return merge({}, this._connection.positions); },
    add: function (channel, since) {
      this._connection.add(checkChannel(channel), checkPosition(since));
    },
    remove: function (channel) { this._connection.remove(channel); },
    close: function () {
      this.closed = true;
      this._connection.stop();
    }
  };

  /* `lastId`: the position of a one-channel subscription (null with several). */
  function definePositionGetters(prototype) {
    Object.defineProperty(prototype, "lastId", {get: function () {
      var channels = this.channels;
      return channels.length === 1 ? this.positions()[channels[0]] : null;
    }});
    Object.defineProperty(prototype, "channel", {get: function () {
      var channels = this.channels;
      return channels.length === 1 ? channels[0] : null;
    }});
  }
  definePositionGetters(Subscription.prototype);

  /* ---------------------------------------------------------------------
   * One connection for all the tabs of an origin.
   *
   * The tabs of a share group (same prefix, transport and params) elect a
   * leader with a Web Lock; the leader holds one Connection for the union
   * of every tab's channels and posts each message, gap and position
   * change to the group's BroadcastChannel; every tab (the leader too)
   * hands them to its own subscriptions. Each subscription keeps its own
   * position per channel: it drops what it already has (a leader change
   * can repeat messages), and a subscription behind the leader's stream
   * (it asked for history, or missed the end of a dead leader's posts)
   * catches up with its own short polls before taking the stream again.
   * The leader's positions reach every tab, so when the leader's tab goes
   * (its lock is released as it closes or crashes) the next tab in the
   * lock's queue resumes every channel from them.
   */
  var groups = {}; // share group key -> Tab, in this page

  function canShare() {
    return !!(root.navigator && root.navigator.locks && typeof root.navigator.locks.request === "function" &&
      typeof root.BroadcastChannel === "function" && typeof root.Promise === "function" &&
      typeof root.AbortController === "function");
  }

  function shareKey(options) {
    return "wsgi_push " + JSON.stringify([options.prefix, options.transport, options.params || {}]);
  }

  function Tab(key, options) {
    var self = this;
    this.key = key;
    this.id = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.options = options;
    this.transport = pickTransport(options.transport);
    this.subscriptions = [];
    this.interests = {}; // tab id -> {channels: {channel: position}, events: [...]}, every tab's
    this.positions = {}; // the leader's connection positions, as last heard
    this.epoch = 0; // which leader: newer leaders have larger epochs
    this.connected = false; // the leader's connection
    this.leading = false;
    this.connection = null;
    this.ready = false;
    this.closed = false;
    this._leaving = new root.AbortController();
    this.channel = new root.BroadcastChannel(key);
    this.channel.onmessage = function (event) { self._receive(event.data); };
    // A hidden tab (closing, or frozen in the back-forward cache) keeps
    // quiet until it shows again: were it to answer the leader's next state
    // (which no longer names it) with its interest, the leader would take
    // its channels back and keep them after the tab is gone.
    this.hidden = false;
    this._watches = {}; // tab id -> AbortController: the leader's waits on other tabs' locks
    this._onPageHide = function () {
      self.hidden = true;
      self._post({type: "bye"});
    };
    this._onPageShow = function (event) {
      if (event.persisted) {
        self.hidden = false;
        self._announce();
      }
    };
    root.addEventListener("pagehide", this._onPageHide);
    root.addEventListener("pageshow", this._onPageShow);
    // This tab's own lock, held while it lives: the leader asks which are
    // held to forget the interests of tabs that crashed. Announce only then.
    root.navigator.locks.request(key + " tab " + this.id, function () {
      if (self.closed) {
        return null;
      }
      self.ready = true;
      self._announce();
      root.navigator.locks.request(key + " leader", {signal: self._leaving.signal},
        function () { return self._lead(); }).catch(function () {});
      return new Promise(function (resolve) { self._releaseTabLock = resolve; });
    });
  }

  Tab.prototype.join = function (subscription) {
    this.subscriptions.push(subscription);
    this._announce();
    subscription._sync();
  };

  Tab.prototype.leave = function (subscription) {
    this.subscriptions.splice(this.subscriptions.indexOf(subscription), 1);
    if (this.subscriptions.length) {
      this._announce();
    } else {
      this._close();
    }
  };

  Tab.prototype._close = function () {
    this.closed = true;
    delete groups[this.key];
    this._post({type: "bye"});
    if (this.connection) {
      this.connection.stop();
    }
    this.leading = false;
    this._leaving.abort(); // a leader lock still waited for
    for (var id in this._watches) {
      if (has.call(this._watches, id)) {
        this._watches[id].abort();
      }
    }
    if (this._resign) {
      this._resign();
    }
    if (this._releaseTabLock) {
      this._releaseTabLock();
    }
    root.removeEventListener("pagehide", this._onPageHide);
    root.removeEventListener("pageshow", this._onPageShow);
    this.channel.close();
  };

  /* What this tab follows: every channel of its subscriptions (at the
   * lowest position one asks from) and every event name. */
  Tab.prototype._interest = function () {
    var channels = {};
    var events = {};
    this.subscriptions.forEach(function (subscription) {
      var positions = subscription._positions;
      for (var channel in positions) {
        if (has.call(positions, channel)) {
          var position = positions[channel];
          var known = has.call(channels, channel) ? channels[channel] : undefined;
          channels[channel] = known === undefined || known === null ? position
            : position === null ? known : Math.min(known, position);
        }
      }
      eventNames(subscription.options).forEach(function (name) { events[name] = true; });
    });
    return {channels: channels, events: Object.keys(events).sort()};
  };

  /* Same channels and events (positions only matter to a leader adding a channel). */
  function sameInterest(known, interest) {
    return !!known && known.events.join() === interest.events.join() &&
      Object.keys(known.channels).sort().join() === Object.keys(interest.channels).sort().join();
  }

  Tab.prototype._announce = function () {
    if (!this.ready || this.closed || this.hidden) {
      return;
    }
    this._send({type: "interest", interest: this._interest()});
  };

  Tab.prototype._post = function (envelope) {
    if (!this.closed || envelope.type === "bye") {
      envelope.from = this.id;
      envelope.epoch = this.epoch;
      this.channel.postMessage(envelope);
    }
  };

  /* Post to the other tabs and take it here too. */
  Tab.prototype._send = function (envelope) {
    this._post(envelope);
    this._receive(envelope);
  };

  /* This tab got the leader lock: it holds it (the returned promise) until
   * it has no subscription left, or the tab goes. */
  Tab.prototype._lead = function () {
    var self = this;
    if (this.closed) {
      return null;
    }
    this.leading = true;
    this.epoch = Math.max(Date.now(), this.epoch + 1);
    var released = new Promise(function (resolve) { self._resign = resolve; });
    this._updateUnion();
    return released;
  };

  /* Forget the interests of tabs whose tab lock is no longer held. */
  Tab.prototype._prune = function () {
    var self = this;
    return root.navigator.locks.query().then(function (state) {
      var held = {};
      state.held.forEach(function (lock) { held[lock.name] = true; });
      Object.keys(self.interests).forEach(function (id) {
        if (id !== self.id && !has.call(held, self.key + " tab " + id)) {
          delete self.interests[id];
        }
      });
    });
  };

  /* The leader waits for another tab's lock: it is granted when that tab
   * is gone, goodbye or not (a crash), and its channels
   * leave the union then, not at the next change of some other tab's. */
  Tab.prototype._watch = function (id) {
    var self = this;
    if (id === this.id || has.call(this._watches, id)) {
      return;
    }
    var watch = new root.AbortController();
    this._watches[id] = watch;
    root.navigator.locks.request(this.key + " tab " + id, {signal: watch.signal}, function () {
      delete self._watches[id];
      if (self.leading && !self.closed && has.call(self.interests, id)) {
        delete self.interests[id];
        self._updateUnion();
      }
      return null;
    }).catch(function () {});
  };

  /* The leader: make its connection follow the union of every tab's
   * channels, then tell every tab the state (interests and positions). */
  Tab.prototype._updateUnion = function () {
    var self = this;
    this._prune().then(function () {
      if (!self.leading || self.closed) {
        return;
      }
      Object.keys(self.interests).forEach(function (id) { self._watch(id); });
      var wanted = {};
      var events = {};
      Object.keys(self.interests).forEach(function (id) {
        var interest = self.interests[id];
        for (var channel in interest.channels) {
          if (has.call(interest.channels, channel)) {
            var position = interest.channels[channel];
            var known = wanted[channel];
            wanted[channel] = known === undefined || known === null ? position
              : position === null ? known : Math.min(known, position);
          }
        }
        interest.events.forEach(function (name) { events[name] = true; });
      });
      // A channel the leader's stream already had resumes from its position.
      for (var channel in wanted) {
        if (has.call(wanted, channel) && typeof self.positions[channel] === "number") {
          wanted[channel] = self.positions[channel];
        }
      }
      var names = Object.keys(events).sort();
      var connection = self.connection;
      if (!connection) {
        self.connection = new Connection(Object.keys(wanted), wanted, names, self.options, self._sink());
      } else {
        connection.channels.slice().forEach(function (c) {
          if (!has.call(wanted, c)) {
            connection.remove(c);
          }
        });
        Object.keys(wanted).forEach(function (c) { connection.add(c, wanted[c]); });
        connection.listen(names);
      }
      self._sendState();
    });
  };

  Tab.prototype._sendState = function () {
    this._send({
      type: "state",
      interests: this.interests,
      positions: merge({}, this.connection.positions),
      transport: this.connection.transport,
      connected: this.connection.connected
    });
  };

  /* What the leader's connection tells: posted to every tab, this one included. */
  Tab.prototype._sink = function () {
    var self = this;
    return {
      message: function (message, prev) { self._send({type: "message", message: message, prev: prev}); },
      gap: function (gap, prev) { self._send({type: "gap", gap: gap, prev: prev}); },
      positions: function () {
        self._send({type: "positions", positions: merge({}, self.connection.positions)});
      },
      open: function (transport) { self._send({type: "open", transport: transport}); },
      error: function (error) { self._send({type: "error", error: error}); }
    };
  };

  Tab.prototype._receive = function (envelope) {
    if (this.closed) {
      return;
    }
    var type = envelope.type;
    if (type === "interest" || type === "bye") {
      if (type === "bye") {
        delete this.interests[envelope.from];
      } else {
        this.interests[envelope.from] = envelope.interest;
      }
      if (this.leading) {
        this._updateUnion();
      }
      return;
    }
    var current = envelope.epoch === this.epoch;
    if (type === "state") {
      if (envelope.epoch < this.epoch || this.leading && envelope.from !== this.id) {
        return; // a former leader's, read late
      }
      this.epoch = envelope.epoch;
      this.interests = merge({}, envelope.interests);
      this.positions = merge({}, envelope.positions);
      this.transport = envelope.transport;
      this.connected = envelope.connected;
      if (!sameInterest(this.interests[this.id], this._interest())) {
        this._announce(); // a new leader that hasn't heard of this tab yet
      }
      this._each(function (subscription) { subscription._sync(); });
      return;
    }
    if (type === "message" || type === "gap") {
      var channel = type === "gap" ? envelope.gap.channel : envelope.message.channel;
      if (current) {
        this.positions[channel] = type === "gap" ? afterGap(envelope.gap) : envelope.message.id;
      }
      // Also a former leader's: each subscription drops what it has.
      this._each(function (subscription) { subscription._receive(envelope); });
    } else if (current && type === "positions") {
      this.positions = merge({}, envelope.positions);
      this._each(function (subscription) { subscription._sync(); });
    } else if (current && (type === "open" || type === "error")) {
      this.connected = type === "open";
      this.transport = type === "open" ? envelope.transport : this.transport;
      this._each(function (subscription) { subscription._connectionEvent(envelope); });
    }
  };

  Tab.prototype._each = function (action) {
    this.subscriptions.slice().forEach(action);
  };

  /* A subscription served by its tab's share group. */
  function SharedSubscription(channels, options, tab) {
    var list = channelList(channels);
    this.options = options;
    this.shared = true;
    this.closed = false;
    this._tab = tab;
    this._positions = parsePositions(options.since, list);
    this._order = list; // the channels, in order
    this._catching = {}; // channel -> envelopes from the leader, held while catching up
    this._opened = false;
    tab.join(this);
  }

  SharedSubscription.prototype = {
    get channels() { return this._order.slice(); },
    get transport() { return this._tab.transport; },
    get leader() { return this._tab.leading; },
    positions: function () { return merge({}, this._positions); },
    add: function (channel, since) {
      if (!has.call(this._positions, checkChannel(channel))) {
        this._order.push(channel);
        this._positions[channel] = checkPosition(since);
        this._tab._announce();
        this._sync();
      }
    },
    remove: function (channel) {
      if (has.call(this._positions, channel)) {
        this._order.splice(this._order.indexOf(channel), 1);
        delete this._positions[channel];
        delete this._catching[channel];
        this._tab._announce();
      }
    },
    close: function () {
      if (!this.closed) {
        this.closed = true;
        this._tab.leave(this);
      }
    },

    /* Compare each position with the leader's: take it where this one has
     * none yet ("only new"), catch up where this one is behind. */
    _sync: function () {
      var leader = this._tab.positions;
      for (var channel in this._positions) {
        if (has.call(this._positions, channel) && typeof leader[channel] === "number" &&
            !has.call(this._catching, channel)) {
          if (this._positions[channel] === null) {
            this._positions[channel] = leader[channel];
          } else if (this._positions[channel] < leader[channel]) {
            this._catchUp(channel);
          }
        }
      }
      if (this._tab.connected && !this._opened) {
        this._connectionEvent({type: "open", transport: this._tab.transport});
      }
    },

    _connectionEvent: function (envelope) {
      if (envelope.type === "open") {
        this._opened = true;
        call(this, this.options.onOpen, envelope.transport);
      } else {
        call(this, this.options.onError, envelope.error);
      }
    },

    /* A message or gap from the leader's stream. `prev` is where the
     * leader's stream was on that channel before it: this subscription
     * takes it only when it is there too (or further: a repeat). */
    _receive: function (envelope, afterCatchUp) {
      var channel = envelope.gap ? envelope.gap.channel : envelope.message.channel;
      if (this.closed || !has.call(this._positions, channel)) {
        return;
      }
      if (has.call(this._catching, channel)) {
        this._catching[channel].push(envelope);
        return;
      }
      var position = this._positions[channel];
      if (position === null && envelope.gap) {
        this._positions[channel] = afterGap(envelope.gap);
        return;
      }
      if (position === null) {
        position = envelope.prev; // "only new": from where the leader's stream is
      }
      if (envelope.gap) {
        this._gap(envelope.gap, position);
        return;
      }
      var message = envelope.message;
      if (message.id <= position) {
        this._positions[channel] = position;
        return; // already handed on (a repeat after a leader change)
      }
      if (position < envelope.prev && !afterCatchUp) {
        this._catching[channel] = [envelope];
        this._positions[channel] = position;
        this._catchUp(channel);
        return;
      }
      this._positions[channel] = message.id;
      dispatch(this, message);
    },

    /* The leader's stream lost continuity on a channel: so did this
     * subscription unless its own position is still followed by what the
     * server retains (the same rule the server applies). */
    _gap: function (gap, position) {
      var continuous = gap.first > 0 ? position >= gap.first - 1 && position <= gap.last
        : position === gap.last;
      if (continuous) {
        this._positions[gap.channel] = position;
        return;
      }
      this._positions[gap.channel] = afterGap(gap);
      call(this, this.options.onGap, {
        channel: gap.channel, requested: position, first: gap.first, last: gap.last
      });
    },

    /* Read what this subscription misses on `channel` with its own short
     * polls (timeout 0) until it reaches the leader's stream, holding the
     * leader's envelopes meanwhile; then take those. */
    _catchUp: function (channel) {
      var self = this;
      var tab = this._tab;
      var held = this._catching[channel] || [];
      this._catching[channel] = held;
      var failures = 0;
      function step() {
        if (self.closed || self._catching[channel] !== held) {
          return; // closed, or the channel removed
        }
        var params = merge(merge({}, tab.options.params || {}),
          {since: self._positions[channel], timeout: 0});
        var url = buildUrl(tab.options.prefix + "/poll/" + encodeURIComponent(channel), params);
        getJson(url, function (answer) {
          if (self.closed || self._catching[channel] !== held) {
            return;
          }
          if (answer.gap) {
            self._gap(merge({channel: channel}, answer.gap), self._positions[channel]);
          }
          answer.messages.forEach(function (message) {
            if (message.id > self._positions[channel]) {
              self._positions[channel] = message.id;
              dispatch(self, merge({channel: channel}, message));
            }
          });
          self._positions[channel] = answer.last_id;
          var target = held.length ? held[0].prev : tab.positions[channel];
          if (answer.messages.length && self._positions[channel] < target) {
            return step();
          }
          delete self._catching[channel];
          // When the server had nothing more, what the leader posted follows.
          var caughtUp = answer.messages.length === 0;
          held.forEach(function (envelope) { self._receive(envelope, caughtUp); });
        }, function (status, message) {
          call(self, self.options.onError, {transport: "poll", status: status, message: message});
          var delay = Math.min(tab.options.maxDelay, tab.options.minDelay * Math.pow(2, failures));
          failures += 1;
          setTimeout(step, delay * (0.5 + Math.random() / 2));
        });
      }
      step();
    }
  };
  definePositionGetters(SharedSubscription.prototype);

  /* Subscribe to a channel, or an array of channels over one connection. */
  function subscribe(channels, options) {
    var settings = merge(merge({}, DEFAULTS), options || {});
    if (settings.share && canShare()) {
      var key = shareKey(settings);
      var tab = groups[key] || (groups[key] = new Tab(key, settings));
      return new SharedSubscription(channels, settings, tab);
    }
    return new Subscription(channels, settings);
  }

  return {subscribe: subscribe};
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this);

if (typeof module === "object" && module && module.exports) {
  module.exports = WsgiPush;
}
