// Forms with `data-confirm` ask before they submit ("Regrade all 12 submissions ...?").
// No inline script (CSP script-src 'self'); without JavaScript the form submits as before.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
