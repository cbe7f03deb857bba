/* The clock, the feed and the lobby over one connection that every tab of
 * this browser shares (share: true). `shownIds` keeps, per channel, the ids
 * this tab has shown: each exactly once, in order, whichever tab holds the
 * connection. */
"use strict";

const NAME_KEY = "wsgi_push.chat.name";
const byId = (id) => document.getElementById(id);
const shownIds = {"clock": [], "feed": [], "room.lobby": []};

function show(message) {
  shownIds[message.channel].push(message.id);
  if (message.channel === "clock") {
    Demo.addLine(byId("clock"), `#${message.id}  ${message.data.time.slice(11, 23)}`);
  } else if (message.channel === "feed") {
    byId("value").textContent = message.data.value.toFixed(2);
    byId("feed-count").textContent = shownIds.feed.length;
  } else {
    Demo.addLine(byId("lobby"), `${message.data.name}: ${message.data.text}`, "said");
  }
}

const subscription = WsgiPush.subscribe(["clock", "feed", "room.lobby"], {
  share: true,
  since: {"clock": 0, "room.lobby": 0}, // their history; the feed from now on
  onMessage: show,
  onEvent: {chat: show},
  onGap: (gap) => Demo.addLine(
    byId(gap.channel === "clock" ? "clock" : "lobby"),
    `(messages before #${gap.first} are no longer kept)`, "gap"),
  onOpen: (transport) => {
    Demo.showStatus(`connected over ${transport}`);
    showRole();
  },
  onError: (error) => Demo.showStatus(
    `connection lost (${error.message || "HTTP " + error.status}), reconnecting…`, true),
});

function showRole() {
  byId("role").textContent = !subscription.shared
    ? "this tab has a connection of its own (no Web Locks or BroadcastChannel here)"
    : subscription.leader
      ? "this tab holds the connection for every tab"
      : "sharing another tab's connection";
}

/* The server's count of open push connections, every two seconds. */
async function showConnections() {
  try {
    const answer = await (await fetch("/connections")).json();
    const counts = Object.entries(answer.open).map(([transport, n]) => `${n} ${transport}`);
    byId("connections").textContent = `${counts.join(", ") || "no"} push connection(s) open`;
  } catch (error) {
    byId("connections").textContent = `unreachable (${error.message})`;
  }
  showRole();
}
setInterval(showConnections, 2000);
showConnections();

byId("message-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = localStorage.getItem(NAME_KEY) || "dashboard";
  try {
    const response = await fetch("/rooms/lobby/messages", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name, text: byId("text").value}),
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    byId("text").value = "";
  } catch (error) {
    Demo.showStatus(`message not sent: ${error.message}`, true);
  }
});
