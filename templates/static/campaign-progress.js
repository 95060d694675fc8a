// The campaign page while its campaign runs: every few seconds, read the same page
// again and put its progress and report in place (no reload, no focus lost). When the
// run is no longer running, load the page once so its buttons match the new state.
// Only GETs this page; it decides nothing. Served from our origin under the page's CSP.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var status = document.getElementById("progress-status");
  if (!live || live.getAttribute("data-running") !== "true" || !window.fetch) {
    return;
  }
  var every = 1000 * (parseInt(live.getAttribute("data-refresh"), 10) || 5);
  function text(root, id) {
    var node = root.getElementById(id);
    return node ? node.textContent : "";
  }
  function tick() {
    window.fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("live");
        if (!fresh) { throw new Error("no progress on the page"); }
        if (fresh.getAttribute("data-running") !== "true") {
          window.location.reload();
          return;
        }
        if (fresh.innerHTML !== live.innerHTML) {
          live.innerHTML = fresh.innerHTML;
          if (status) { status.textContent = text(page, "progress-text"); }
        }
        window.setTimeout(tick, every);
      })
      .catch(function () { window.setTimeout(tick, every * 3); });
  }
  window.setTimeout(tick, every);
})();
