// The diff viewer: unified or side by side, per-file folding, search; virtualised, so only the
// rows in view (plus a margin) exist in the DOM and a 10,000-line diff stays responsive.
// Lines are set with textContent only: the diff is agent-written and never parsed as HTML.
"use strict";
(function () {
  var ROW = 18, MARGIN = 40;
  var data, view, spacer, win, rows = [], folded = {}, mode = "unified";
  var hits = [], hit = -1, query = "", drawn = [-1, -1];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // rows: {f: file index} headers, then per line {f, l: line} (unified) or {f, a, b} (split)
  function build() {
    rows = [];
    data.files.forEach(function (file, fi) {
      rows.push({ f: fi, head: true });
      if (folded[fi]) return;
      (file.meta || []).forEach(function (m) { rows.push({ f: fi, l: ["\\", 0, 0, m] }); });
      var lines = file.lines;
      if (mode === "unified") {
        for (var i = 0; i < lines.length; i++) rows.push({ f: fi, l: lines[i] });
        return;
      }
      var i = 0;
      while (i < lines.length) {
        var k = lines[i][0];
        if (k === "-" || k === "+") {
          var dels = [], adds = [];
          while (i < lines.length && lines[i][0] === "-") dels.push(lines[i++]);
          while (i < lines.length && lines[i][0] === "+") adds.push(lines[i++]);
          for (var j = 0; j < Math.max(dels.length, adds.length); j++)
            rows.push({ f: fi, a: dels[j] || null, b: adds[j] || null });
        } else {
          rows.push({ f: fi, a: lines[i], b: lines[i], same: true });
          i++;
        }
      }
    });
    spacer.style.height = rows.length * ROW + "px";
    var most = Math.max(0, rows.length * ROW - view.clientHeight);
    if (view.scrollTop > most) view.scrollTop = most;  // folding shrank the view under us
    findHits();
    drawn = [-1, -1];
    draw();
  }

  function text(cell, s) {
    if (!query) { cell.textContent = s; return; }
    var low = s.toLowerCase(), at = 0, n;
    while ((n = low.indexOf(query, at)) >= 0) {
      if (n > at) cell.appendChild(document.createTextNode(s.slice(at, n)));
      cell.appendChild(el("mark", null, s.slice(n, n + query.length)));
      at = n + query.length;
    }
    if (at < s.length) cell.appendChild(document.createTextNode(s.slice(at)));
  }

  function kindClass(k) {
    return k === "+" ? " r-add" : k === "-" ? " r-del" : k === "@" ? " hunk" : k === "\\" ? " note" : "";
  }

  function line(r, l) {
    var row = el("div", "row" + kindClass(l[0]));
    row.appendChild(el("span", "no", l[1] ? String(l[1]) : ""));
    row.appendChild(el("span", "no", l[2] ? String(l[2]) : ""));
    var tx = el("span", "tx");
    text(tx, (l[0] === "@" || l[0] === "\\") ? l[3] : l[0] + l[3]);
    row.appendChild(tx);
    return row;
  }

  function half(l, side) {
    var h = el("div", "half" + (l ? kindClass(l[0]) : ""));
    h.appendChild(el("span", "no", l ? String(side === "a" ? l[1] || "" : l[2] || "") : ""));
    var tx = el("span", "tx");
    if (l) text(tx, (l[0] === "@" || l[0] === "\\") ? l[3] : l[3]);
    h.appendChild(tx);
    return h;
  }

  function render(i) {
    var r = rows[i], row;
    if (r.head) {
      var f = data.files[r.f];
      row = el("div", "row file");
      text(row, (folded[r.f] ? "▸ " : "▾ ") + f.path + "  +" + f.added + " −" + f.removed);
      row.dataset.file = r.f;
    } else if (r.l) {
      row = line(r, r.l);
    } else {
      row = el("div", "row");
      row.appendChild(half(r.a, "a"));
      row.appendChild(half(r.b, "b"));
    }
    if (hit >= 0 && hits[hit] === i) row.classList.add("current");
    return row;
  }

  function draw() {
    var first = Math.max(0, Math.floor(view.scrollTop / ROW) - MARGIN);
    var last = Math.min(rows.length, Math.ceil((view.scrollTop + view.clientHeight) / ROW) + MARGIN);
    if (first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    var frag = document.createDocumentFragment();
    for (var i = first; i < last; i++) frag.appendChild(render(i));
    win.style.transform = "translateY(" + first * ROW + "px)";
    win.replaceChildren(frag);
  }

  function rowText(r) {
    if (r.head) return data.files[r.f].path;
    if (r.l) return r.l[3];
    return (r.a ? r.a[3] : "") + "\n" + (r.b && !r.same ? r.b[3] : "");
  }

  function findHits() {
    hits = [];
    if (query) for (var i = 0; i < rows.length; i++)
      if (rowText(rows[i]).toLowerCase().indexOf(query) >= 0) hits.push(i);
    if (hit >= hits.length) hit = hits.length - 1;
    document.getElementById("search-count").textContent =
      query ? (hits.length ? (hit + 1) + " of " + hits.length : "no match") : "";
  }

  function go(step) {
    if (!hits.length) return;
    hit = (hit + step + hits.length) % hits.length;
    findHits();
    view.scrollTop = Math.max(0, hits[hit] * ROW - view.clientHeight / 3);
    drawn = [-1, -1];
    draw();
  }

  function search(q) {
    query = q.toLowerCase();
    if (query) {  // a match in a folded file must be findable: unfold files that match
      data.files.forEach(function (f, fi) {
        if (folded[fi] && f.lines.some(function (l) { return l[3].toLowerCase().indexOf(query) >= 0; }))
          delete folded[fi];
      });
    }
    hit = -1;
    build();
    if (query) go(1);
  }

  function setMode(m) {
    mode = m;
    document.getElementById("mode-unified").classList.toggle("on", m === "unified");
    document.getElementById("mode-split").classList.toggle("on", m === "split");
    build();
  }

  // The page paints at once; the diff itself is the page's JSON twin, fetched and drawn after.
  function start() {
    view = document.getElementById("diff");
    fetch(view.dataset.src, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (page) { data = page.diff; wire(); })
      .catch(function (err) { win.textContent = "The diff could not be loaded: " + err.message; });
    spacer = view.querySelector(".spacer");
    win = view.querySelector(".window");
  }

  function wire() {
    spacer = view.querySelector(".spacer");
    win = view.querySelector(".window");
    var pending = false;
    view.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    });
    view.addEventListener("click", function (ev) {
      var head = ev.target.closest(".file");
      if (!head) return;
      var fi = Number(head.dataset.file);
      if (folded[fi]) delete folded[fi]; else folded[fi] = true;
      build();
    });
    document.getElementById("mode-unified").addEventListener("click", function () { setMode("unified"); });
    document.getElementById("mode-split").addEventListener("click", function () { setMode("split"); });
    document.getElementById("fold-all").addEventListener("click", function () {
      data.files.forEach(function (_, fi) { folded[fi] = true; });
      build();
    });
    document.getElementById("unfold-all").addEventListener("click", function () { folded = {}; build(); });
    var box = document.getElementById("diff-search"), timer = null;
    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { search(box.value); }, 150);
    });
    box.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(timer);
        if (box.value.toLowerCase() !== query) search(box.value); else go(ev.shiftKey ? -1 : 1); }
    });
    document.getElementById("search-next").addEventListener("click", function () { go(1); });
    document.getElementById("search-prev").addEventListener("click", function () { go(-1); });
    document.querySelectorAll(".difffiles a[data-file]").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        ev.preventDefault();
        var fi = Number(a.dataset.file);
        delete folded[fi];
        build();
        for (var i = 0; i < rows.length; i++) if (rows[i].head && rows[i].f === fi) {
          view.scrollTop = i * ROW; break;
        }
      });
    });
    build();
    performance.mark("pg-interactive");
    document.documentElement.dataset.ready = "1";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
