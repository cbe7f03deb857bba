/* Scenario 1: one line per server event, over the chosen transport. */
"use strict";

const events = document.getElementById("events");

Demo.followTransport(0, (transport, since) => WsgiPush.subscribe("clock", {
  transport,
  since,
  ...Demo.statusHandlers(),
  onMessage: (message) => Demo.addLine(events, `#${message.id}  ${message.data.time}`),
  onGap: (gap) => Demo.addLine(events, `(events before #${gap.first} are no longer kept)`, "gap"),
}));
