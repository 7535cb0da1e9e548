// fmkit console: polling of running jobs, log following, sortable tables, confirmations.
// No framework and no network beyond this console's own JSON endpoints.
"use strict";
(function () {
  const main = document.querySelector("main");
  const token = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.json();
  }

  // Replace sections (by element id) from a JSON endpoint until it says done.
  function poll(url, ms) {
    let stopped = false;
    async function tick() {
      if (stopped) return;
      try {
        const d = await getJSON(url);
        for (const [id, html] of Object.entries(d.sections || {})) {
          const el = document.getElementById(id);
          if (el) el.innerHTML = html;
        }
        if (d.status) main.dataset.status = d.status;
        if (d.done) { main.dataset.done = "1"; stopped = true; return; }
      } catch (err) { /* the console restarted or the job vanished: try again */ }
      setTimeout(tick, ms);
    }
    setTimeout(tick, ms);
  }

  // Follow a job's log: ask for events from the next token, append them.
  function follow(url, ms) {
    const pre = document.getElementById("job-log");
    const state = document.getElementById("job-log-state");
    if (!pre) return;
    let next = 0;
    async function tick() {
      let done = true;
      try {
        const d = await getJSON(url + "?start=" + next);
        if (d.events.length) {
          const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(document.createTextNode(d.events.map(ev => ev.message).join("\n") + "\n"));
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        next = d.next;
        done = d.done && d.events.length === 0;
        if (state) state.textContent = done ? (pre.textContent ? "" : "no log lines") : "following the log\u2026";
      } catch (err) { done = false; }
      if (!done) setTimeout(tick, ms); else pre.dataset.done = "1";
    }
    tick();
  }

  // Click a header of a sortable table: sort its rows by that column (data-sort or text).
  function sortable(table) {
    table.querySelectorAll("th[data-sortable]").forEach((th, col) => {
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter(r => !r.classList.contains("empty"));
        const asc = !th.classList.contains("sorted-asc");
        table.querySelectorAll("th").forEach(h => h.classList.remove("sorted-asc", "sorted-desc"));
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        const key = r => {
          const c = r.cells[col];
          const v = c ? (c.dataset.sort !== undefined ? c.dataset.sort : c.textContent.trim()) : "";
          const n = parseFloat(v);
          return v !== "" && !isNaN(n) && isFinite(v) ? n : v;
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          if (x === "" && y !== "") return 1;
          if (y === "" && x !== "") return -1;
          const c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(r => body.appendChild(r));
      });
    });
  }

  document.addEventListener("submit", ev => {
    const form = ev.target;
    const text = form.dataset && form.dataset.confirm;
    if (text && !window.confirm(text)) ev.preventDefault();
    if (form.method.toLowerCase() === "post" && !form.querySelector('input[name="csrf_token"]')) {
      const i = document.createElement("input");
      i.type = "hidden"; i.name = "csrf_token"; i.value = token; form.appendChild(i);
    }
  });

  // The training form: show the defaults of the chosen defaults set and predictor type.
  function placeholders() {
    const set = document.getElementById("f-defaults"), kind = document.getElementById("f-predictor_type");
    if (!set || !kind) return;
    document.querySelectorAll("input[data-defaults]").forEach(inp => {
      inp.placeholder = JSON.parse(inp.dataset.defaults)[set.value + "/" + kind.value];
    });
  }
  ["f-defaults", "f-predictor_type"].forEach(id => {
    const el = document.getElementById(id);
    if (el) el.addEventListener("change", placeholders);
  });

  document.querySelectorAll("table.grid").forEach(sortable);
  if (main && main.dataset.poll) poll(main.dataset.poll, 1500);
  if (main && main.dataset.log) follow(main.dataset.log, 1500);
})();
