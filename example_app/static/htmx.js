/* The htmx page's status line, from the SSE extension's events. The
 * fragments themselves are swapped in by htmx alone. */
"use strict";

(() => {
  const live = document.getElementById("live");
  let connections = 0;
  live.addEventListener("htmx:sseOpen", () => {
    connections += 1;
    Demo.showStatus(connections === 1 ? "connected" : `connected again (connection ${connections})`);
  });
  live.addEventListener("htmx:sseError", () => {
    Demo.showStatus("connection lost, the browser reconnects…", true);
  });
})();
