// Live updates of the submission page: while grading runs, fetch the fragment every 2 s and
// swap it in. No inline script (CSP script-src 'self'); stops once the submission is done.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

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
          live.replaceWith(fresh);
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
