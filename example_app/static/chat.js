/* Scenario 3: a chat over SSE. The name travels in the SSE URL
 * (/push/sse/chat?name=…) so the server can announce who is online. */
"use strict";

const NAME_KEY = "wsgi_push.chat.name";
const nameForm = document.getElementById("name-form");
const nameInput = document.getElementById("name");
const messageForm = document.getElementById("message-form");
const textInput = document.getElementById("text");
const log = document.getElementById("log");
let subscription = null;
let myName = null;

function showPresence(message) {
  const {name, status, online} = message.data;
  Demo.addLine(log, `${name} ${status}`, "presence").title = `${online} online`;
  if (status === "online") {
    Demo.addLine(log, `Hello, ${name}! Online ${online}`, "greeting");
  }
}

function join(name) {
  myName = name.trim().slice(0, nameInput.maxLength);
  if (!myName) {
    return;
  }
  localStorage.setItem(NAME_KEY, myName);
  nameInput.value = myName;
  if (subscription) {
    subscription.close();
  }
  subscription = WsgiPush.subscribe("chat", {
    transport: "sse",
    params: {name: myName},
    onOpen: () => Demo.showStatus(`connected as ${myName}`),
    onError: () => Demo.showStatus("connection error: lost the server, reconnecting…", true),
    onEvent: {
      chat: (message) => Demo.addLine(log, `${message.data.name}: ${message.data.text}`, "said"),
      presence: showPresence,
    },
  });
  messageForm.hidden = false;
  textInput.focus();
}

async function send(text) {
  try {
    const response = await fetch("/chat/messages", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: myName, text}),
    });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    textInput.value = "";
  } catch (error) {
    Demo.showStatus(`message not sent: ${error.message}`, true);
  }
}

nameForm.addEventListener("submit", (event) => {
  event.preventDefault();
  join(nameInput.value);
});
messageForm.addEventListener("submit", (event) => {
  event.preventDefault();
  send(textInput.value);
});

nameInput.value = localStorage.getItem(NAME_KEY) || "";
if (nameInput.value) {
  join(nameInput.value);
}
