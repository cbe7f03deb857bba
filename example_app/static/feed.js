/* Scenario 2: last value, count and publish-to-display delay of a feed
 * whose rate is set (for everyone) by the buttons. The delay compares the
 * server's clock with the browser's: exact when both run on one machine. */
"use strict";

const shown = (id) => document.getElementById(id);
const recentDelays = [];
let received = 0;

function describeRate(rate) {
  return rate >= 1 ? `${rate} per second` : `1 per ${Math.round(1 / rate)} seconds`;
}

function show(message) {
  // Sub-millisecond wall-clock time; Date.now() would round to whole ms.
  const delay = Math.max(0, performance.timeOrigin + performance.now() - message.data.sent);
  received += 1;
  recentDelays.push(delay);
  if (recentDelays.length > 100) {
    recentDelays.shift();
  }
  const mean = recentDelays.reduce((sum, d) => sum + d, 0) / recentDelays.length;
  shown("value").textContent = message.data.value.toFixed(2);
  shown("count").textContent = received;
  shown("rate").textContent = describeRate(message.data.rate);
  shown("delay").textContent = `${delay.toFixed(1)} ms`;
  shown("delay-stats").textContent =
    `${mean.toFixed(1)} ms / ${Math.max(...recentDelays).toFixed(1)} ms`;
}

Demo.followTransport(null, (transport, since) => WsgiPush.subscribe("feed", {
  transport, since, ...Demo.statusHandlers(), onMessage: show,
}));

for (const button of document.querySelectorAll("button[data-rate]")) {
  button.addEventListener("click", async () => {
    const rate = button.dataset.rate === "swing" ? null : Number(button.dataset.rate);
    try {
      const response = await fetch("/feed/rate", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({rate}),
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
    } catch (error) {
      Demo.showStatus(`could not change the rate: ${error.message}`, true);
    }
  });
}
