/* Helpers shared by the demo pages. Text always goes in with textContent,
 * so nothing a user or the server sends is ever parsed as HTML. */
"use strict";

const Demo = {
  /* Append one line of text to a list, dropping the oldest beyond `limit`;
   * returns the new line. */
  addLine(list, text, className = "", limit = 500) {
    const item = document.createElement("li");
    item.textContent = text;
    item.className = className;
    list.append(item);
    while (list.children.length > limit) {
      list.firstElementChild.remove();
    }
    item.scrollIntoView({block: "nearest"});
    return item;
  },

  showStatus(text, isError = false) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("error", isError);
  },

  /* onOpen/onError callbacks that keep the page's status line current. */
  statusHandlers() {
    return {
      onOpen: (transport) => Demo.showStatus(`connected over ${transport}`),
      onError: (error) => Demo.showStatus(
        `connection lost (${error.message || "HTTP " + error.status}), reconnecting…`, true),
    };
  },

  /* Subscribe with the transport picked in the page's #transport switch, and
   * again whenever it changes, resuming from the positions reached.
   * `subscribe(transport, since)` returns a WsgiPush subscription. */
  followTransport(initialSince, subscribe) {
    const form = document.getElementById("transport");
    const connect = (since) => {
      if (Demo.subscription) {
        Demo.subscription.close();
      }
      Demo.subscription = subscribe(form.elements.transport.value, since);
    };
    form.addEventListener("change", () => connect(Demo.subscription.positions()));
    connect(initialSince);
  },
};
