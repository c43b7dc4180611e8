// The admin page's live per-arm counts: re-read from GET /v1/ab every 5 seconds.
// Plain JavaScript, served from the package: nothing is fetched from elsewhere.
"use strict";
(function () {
  const table = document.getElementById("ab-live");
  const updated = document.getElementById("ab-updated");
  if (!table) return;
  const formats = {
    acceptance: (v) => (v === null ? "–" : (v * 100).toFixed(1) + "%"),
    mean_reward: (v) => (v === null ? "–" : v.toFixed(3)),
  };
  async function refresh() {
    try {
      const headers = { Accept: "application/json" };
      const token = sessionStorage.getItem("marquee-token"); // saved by a card action, if any
      if (token) headers.Authorization = "Bearer " + token; // for MARQUEE_PROTECT_READS
      const res = await fetch("/v1/ab", { headers });
      if (!res.ok) throw new Error(`GET /v1/ab answered ${res.status}`);
      const body = await res.json();
      for (const arm of body.arms) {
        const row = table.querySelector(`tr[data-arm="${CSS.escape(arm.name)}"]`);
        if (!row) continue;
        row.querySelectorAll("td[data-field]").forEach((cell) => {
          const key = cell.dataset.field;
          const fmt = formats[key] || String;
          cell.textContent = fmt(arm[key]);
        });
      }
      table.dataset.refreshed = String(Date.now());
      if (updated) updated.textContent = "";
    } catch (err) {
      if (updated) updated.textContent = "Could not refresh: " + err.message;
    }
  }
  setInterval(refresh, Number(table.dataset.every || 5000));
})();
