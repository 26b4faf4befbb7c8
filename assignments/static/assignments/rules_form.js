// Rule editor: picking another rule id in a row shows that rule's parameters at once, by pressing
// the "Update rule rows" button (which works without JavaScript too). No inline script (CSP
// script-src 'self').
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("assignment-form");
    var refresh = document.getElementById("rules-refresh");
    if (!form || !refresh || typeof form.requestSubmit !== "function") {
      return;
    }
    form.addEventListener("change", function (event) {
      var target = event.target;
      if (target instanceof HTMLSelectElement && target.hasAttribute("data-rule-select")) {
        form.requestSubmit(refresh);
      }
    });
  });
})();
