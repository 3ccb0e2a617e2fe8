// Live updates: the server pushes the ledger head (server-sent events); a page whose live
// region may have changed fetches that region again (?fragment=live) and swaps it in.
// Everything fetched is this server's own escaped HTML; no inline script is ever run.
"use strict";
(function () {
  function region() { return document.getElementById("live"); }

  function wanted(change, live) {
    if (live.dataset.live === "all" || change.tasks === null) return true;
    if (live.dataset.live === "task") return change.tasks.indexOf(live.dataset.task) >= 0;
    return false;
  }

  var busy = false, again = false, deferred = false;

  function typing(live) {
    var a = document.activeElement;
    return !!a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA");
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "live");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var old = region();
        if (html === null || !old) return;
        var t = document.createElement("template");
        t.innerHTML = html;
        var fresh = t.content.getElementById("live");
        if (fresh) {
          keepOpen(old, fresh);
          old.replaceWith(fresh);
          document.dispatchEvent(new CustomEvent("phasegate:updated"));
        }
      })
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  // An evidence panel a reader opened stays open when the region is replaced.
  function keepOpen(old, fresh) {
    var open = {};
    old.querySelectorAll("details[data-key]").forEach(function (d) { open[d.dataset.key] = d.open; });
    fresh.querySelectorAll("details[data-key]").forEach(function (d) {
      if (d.dataset.key in open) d.open = open[d.dataset.key];
    });
  }

  function start() {
    var live = region();
    if (live && window.EventSource) {
      var source = new EventSource("/events?after=" + encodeURIComponent(live.dataset.head || ""));
      source.addEventListener("ledger", function (ev) {
        var change = JSON.parse(ev.data);
        var now = region();
        if (!now || !wanted(change, now) || String(change.seq) === now.dataset.head) return;
        if (typing(now)) deferred = true;  // never wipe a note being written: after it
        else refresh();
      });
      document.addEventListener("focusout", function () {
        if (deferred) { deferred = false; setTimeout(refresh, 0); }
      });
      document.documentElement.dataset.live = "on";
    }
    if (!document.getElementById("diff")) {  // the diff viewer marks itself when drawn
      performance.mark("pg-interactive");
      document.documentElement.dataset.ready = "1";
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
