// Live updates of the submission page: while grading runs, fetch the fragment every 2 s and
// swap it in. No inline script (CSP script-src 'self'); stops once the submission is done.
// When the status changes, the page's flash messages (e.g. "Submission #7 is queued") are
// out of date and go, and the new status is announced to screen readers (#live-announcer).
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (region && text) {
      region.textContent = text;
    }
  }

  function dropFlashMessages() {
    var flashes = document.querySelectorAll("ul.messages");
    for (var i = 0; i < flashes.length; i++) {
      flashes[i].remove();
    }
  }

  function poll() {
    var live = document.getElementById("live");
    if (!live || live.getAttribute("data-active") !== "true") {
      return;
    }
    fetch(live.getAttribute("data-poll-url"), {
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      cache: "no-store",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html.trim();
        var fresh = holder.content.getElementById("live");
        if (fresh) {
          var before = live.getAttribute("data-status");
          var after = fresh.getAttribute("data-status");
          live.replaceWith(fresh);
          if (before !== after) {
            dropFlashMessages();
            announce(fresh.getAttribute("data-status-text"));
          }
        }
        window.setTimeout(poll, INTERVAL_MS);
      })
      .catch(function () {
        // A network hiccup: try again later rather than freezing the page.
        window.setTimeout(poll, INTERVAL_MS * 2);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.setTimeout(poll, INTERVAL_MS);
  });
})();
