/* Chat rooms: every ticked room over one connection. Ticking or unticking
 * a room adds it to or removes it from the subscription; the other rooms
 * go on from where they were. */
"use strict";

const NAME_KEY = "wsgi_push.chat.name";
const nameInput = document.getElementById("name");
const roomChoice = document.getElementById("room");
const textInput = document.getElementById("text");
const boxes = [...document.querySelectorAll("input[name=room]")];
const channelOf = (room) => `room.${room}`;
const roomOf = (channel) => channel.slice("room.".length);
const logOf = (room) => document.querySelector(`#room-${room} ol`);

const joined = () => boxes.filter((box) => box.checked).map((box) => box.value);

function showRoomChoice() {
  roomChoice.replaceChildren(...joined().map((room) => new Option(room, room)));
}

const subscription = WsgiPush.subscribe(joined().map(channelOf), {
  since: 0, // each room's retained history first
  ...Demo.statusHandlers(),
  onEvent: {
    chat: (message) => Demo.addLine(
      logOf(roomOf(message.channel)), `${message.data.name}: ${message.data.text}`, "said"),
  },
  onGap: (gap) => Demo.addLine(
    logOf(roomOf(gap.channel)), `(messages before #${gap.first} are no longer kept)`, "gap"),
});

for (const box of boxes) {
  box.addEventListener("change", () => {
    document.getElementById(`room-${box.value}`).hidden = !box.checked;
    if (box.checked) {
      logOf(box.value).replaceChildren();
      subscription.add(channelOf(box.value), 0);
    } else {
      subscription.remove(channelOf(box.value));
    }
    showRoomChoice();
  });
}

async function send(room, text) {
  const name = nameInput.value.trim() || "anonymous";
  localStorage.setItem(NAME_KEY, name);
  try {
    const response = await fetch(`/rooms/${encodeURIComponent(room)}/messages`, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name, text}),
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    textInput.value = "";
  } catch (error) {
    Demo.showStatus(`message not sent: ${error.message}`, true);
  }
}

document.getElementById("message-form").addEventListener("submit", (event) => {
  event.preventDefault();
  send(roomChoice.value, textInput.value);
});
document.getElementById("name-form").addEventListener("submit", (event) => event.preventDefault());
nameInput.value = localStorage.getItem(NAME_KEY) || "";
showRoomChoice();
