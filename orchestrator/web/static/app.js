// Keeps the page current without a reload: every few seconds the page's changing part is fetched
// again (?partial=1, rendered by the same templates) and swapped in. Nothing runs inline, so the
// Content-Security-Policy can forbid inline scripts; the server escapes every value it renders.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.refreshMs) { return; }
  var every = parseInt(live.dataset.refreshMs, 10) || 2000;

  function busy() {
    // Never swap the content under an operator who is typing into one of its forms.
    var active = document.activeElement;
    return active && live.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function partialUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return url.toString();
  }

  function refresh() {
    if (document.hidden || busy()) { return schedule(); }
    fetch(partialUrl(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && !busy()) {
          live.innerHTML = html;
          live.dataset.refreshedAt = String(Date.now());
        }
      })
      .catch(function () { /* the server may be restarting: try again next time */ })
      .then(schedule);
  }

  function schedule() { window.setTimeout(refresh, every); }
  schedule();
})();
