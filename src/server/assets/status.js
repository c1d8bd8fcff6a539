// Progressive enhancement of the status page; without it the page works through links and
// the filter form. Adds: sorting in place, a live text filter, auto-refresh that keeps the
// scroll position (sections are swapped, the document is not reloaded).
"use strict";

(function () {
  const REFRESH_KEY = "feedwire.autoRefresh";
  const NUMERIC = { last_poll: true, next_poll: true, errors: true, rate: true };
  const STATE_ORDER = { failing: 0, gone: 1, new: 2, ok: 3 };

  function rows() {
    return Array.from(document.querySelectorAll("table.feeds tbody tr.feed"));
  }

  // Hides the rows of this page that do not contain the search text.
  function applyFilter() {
    const input = document.getElementById("filter-q");
    if (!input) return;
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    const all = rows();
    for (const row of all) {
      const match = !needle || (row.dataset.search || "").includes(needle);
      row.classList.toggle("hidden", !match);
      if (match) shown += 1;
    }
    const count = document.getElementById("feeds-matching");
    if (count) {
      if (!count.dataset.original) count.dataset.original = count.textContent;
      count.textContent = needle ? shown + " of " + all.length + " shown on this page" : count.dataset.original;
    }
  }

  function sortValue(row, key) {
    if (key === "state") return STATE_ORDER[row.dataset.state] ?? 9;
    if (NUMERIC[key]) return Number(row.dataset[key] || 0);
    return (row.dataset[key] || "").toLowerCase();
  }

  // Sorts the rows in place when they are all on this page; else the link asks the server.
  function sortBy(th) {
    const table = th.closest("table");
    const body = table.querySelector("tbody");
    const key = th.dataset.key;
    const descending = th.getAttribute("aria-sort") === "ascending";
    for (const other of table.querySelectorAll("th[aria-sort]")) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    const sorted = rows().sort((a, b) => {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      const order = x < y ? -1 : x > y ? 1 : a.dataset.name.localeCompare(b.dataset.name);
      return descending ? -order : order;
    });
    for (const row of sorted) body.appendChild(row);
  }

  function bindTable() {
    const table = document.querySelector("table.feeds");
    if (!table || table.dataset.pages !== "1") return;
    for (const th of table.querySelectorAll("th[data-key]")) {
      const link = th.querySelector("a");
      if (!link) continue;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        sortBy(th);
        history.replaceState(null, "", link.getAttribute("href"));
      });
    }
  }

  async function refresh() {
    const box = document.getElementById("auto-refresh");
    if (!box || !box.checked || document.hidden) return;
    let text;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      text = await response.text();
    } catch (_) {
      return; // The daemon restarts or the network is down: try again next time.
    }
    const fresh = new DOMParser().parseFromString(text, "text/html");
    for (const old of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(old.id);
      if (next) old.replaceWith(document.adoptNode(next));
    }
    bindTable();
    applyFilter();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("auto-refresh");
    if (box) {
      box.closest("label").hidden = false;
      box.checked = localStorage.getItem(REFRESH_KEY) !== "off";
      box.addEventListener("change", () => localStorage.setItem(REFRESH_KEY, box.checked ? "on" : "off"));
    }
    const input = document.getElementById("filter-q");
    if (input) input.addEventListener("input", applyFilter);
    for (const id of ["filter-state", "filter-tag"]) {
      const select = document.getElementById(id);
      if (select) select.addEventListener("change", () => select.form.submit());
    }
    bindTable();
    applyFilter();
    const secs = Number(document.body.dataset.refresh || 0);
    if (secs > 0) setInterval(refresh, secs * 1000);
  });
})();
