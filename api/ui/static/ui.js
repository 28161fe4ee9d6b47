// AINS dashboard: live overview charts and the trust-history chart. No inline scripts (CSP): data comes
// from data- attributes and /ui/overview.json.
(function () {
  "use strict";
  const COLORS = { submitted: "#9aa3af", waiting: "#7c5cd6", succeeded: "#1f9d55", failed: "#d64545", timed_out: "#d98a00", cancelled: "#6b7280" };
  const REFRESH_MS = 5000;

  function formatValue(value, format) {
    if (value === null || value === undefined) return "—";
    if (format === "percent") return (100 * value).toFixed(1) + "%";
    if (format === "usd") return "$" + Number(value).toFixed(4);
    if (format === "seconds") {
      const s = Math.round(value);
      return s >= 3600 ? Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"
        : s >= 60 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : s + " s";
    }
    return String(value);
  }

  function lookup(data, path) {
    return path.split(".").reduce((obj, key) => (obj == null ? undefined : obj[key]), data);
  }

  function throughputDatasets(t) {
    // Each line in a stack of its own: only the finished bars add up.
    const sets = [
      { label: "submitted", data: t.submitted, type: "line", borderColor: COLORS.submitted,
        backgroundColor: COLORS.submitted, pointRadius: 0, tension: 0.25, order: 0, stack: "submitted" },
      { label: "waiting for an agent", data: t.waiting, type: "line", borderColor: COLORS.waiting,
        backgroundColor: COLORS.waiting, borderDash: [5, 3], pointRadius: 0, tension: 0.25, order: 0, stack: "waiting" }];
    for (const status of Object.keys(t.finished)) {
      sets.push({ label: status, data: t.finished[status], backgroundColor: COLORS[status], stack: "finished", order: 1 });
    }
    return sets;
  }

  function setupOverview(root) {
    const url = root.dataset.overview;
    let data = JSON.parse(root.dataset.initial);
    const throughputCanvas = document.getElementById("throughput-chart");
    const capacityCanvas = document.getElementById("capacity-chart");
    let throughput = null, capacity = null;
    if (throughputCanvas && data.throughput) {
      throughput = new Chart(throughputCanvas, {
        type: "bar",
        data: { labels: data.throughput.minutes, datasets: throughputDatasets(data.throughput) },
        options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { position: "bottom" } } },
      });
    }
    if (capacityCanvas && data.capacity) {
      capacity = new Chart(capacityCanvas, {
        type: "bar",
        data: { labels: [], datasets: [
          { label: "running", data: [], backgroundColor: "#2f5bea" },
          { label: "capacity (available agents)", data: [], backgroundColor: "#d5dcf7" }] },
        options: { animation: false, maintainAspectRatio: false, indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
          plugins: { legend: { position: "bottom" } } },
      });
    }
    function draw() {
      root.querySelectorAll("[data-field]").forEach((el) => {
        el.textContent = formatValue(lookup(data, el.dataset.field), el.dataset.format);
      });
      if (throughput && data.throughput) {
        throughput.data.labels = data.throughput.minutes;
        throughput.data.datasets = throughputDatasets(data.throughput);
        throughput.update();
      }
      if (capacity && data.capacity) {
        const top = data.capacity.slice(0, 15);
        capacity.data.labels = top.map((c) => c.tag);
        capacity.data.datasets[0].data = top.map((c) => c.running);
        capacity.data.datasets[1].data = top.map((c) => c.capacity);
        capacity.update();
        const body = document.querySelector("#capacity-table tbody");
        if (body) {
          body.replaceChildren(...data.capacity.map((c) => {
            const tr = document.createElement("tr");
            for (const text of [c.tag, c.running + " / " + c.capacity, c.agents + " (" + c.available_agents + ")"]) {
              const td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
            }
            return tr;
          }));
        }
      }
      root.dataset.updated = data.generated_at;
    }
    draw();
    setInterval(async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status === 401 || response.redirected) { window.location = "/ui/login"; return; }
        if (response.ok) { data = await response.json(); draw(); }
      } catch (err) { /* offline for a moment: keep the last figures */ }
    }, REFRESH_MS);
  }

  function setupTrust(canvas) {
    const points = JSON.parse(canvas.dataset.points);
    new Chart(canvas, {
      type: "line",
      data: { labels: points.map((p) => p.t.replace("T", " ").slice(0, 19)),
        datasets: [{ label: "trust", data: points.map((p) => p.score), borderColor: "#2f5bea", backgroundColor: "#2f5bea",
          pointRadius: 3, stepped: false, tension: 0 }] },
      options: { animation: false, maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1 }, x: { ticks: { maxTicksLimit: 8 } } },
        plugins: { legend: { display: false }, tooltip: { callbacks: {
          title: (items) => points[items[0].dataIndex].t,
          label: (item) => {
            const p = points[item.dataIndex];
            return p.event + " " + (p.delta >= 0 ? "+" : "") + p.delta.toFixed(3) + " → " + p.score.toFixed(3);
          },
          afterLabel: (item) => points[item.dataIndex].reason,
        } } } },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("overview");
    if (root) setupOverview(root);
    const trust = document.getElementById("trust-chart");
    if (trust) setupTrust(trust);
  });
})();
