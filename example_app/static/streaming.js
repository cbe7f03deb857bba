/* Scenario 4: the NDJSON stream, each line parsed into a table row. */
"use strict";

const rows = document.getElementById("rows");
let lines = 0;

function addRow(message) {
  const row = rows.insertRow(0);
  for (const text of [message.id, message.data.message, message.data.createdAt]) {
    row.insertCell().textContent = text;
  }
  while (rows.rows.length > 50) {
    rows.deleteRow(-1);
  }
  lines += 1;
  document.getElementById("count").textContent = lines;
}

WsgiPush.subscribe("hoge", {transport: "stream", since: 0, ...Demo.statusHandlers(), onMessage: addRow});
