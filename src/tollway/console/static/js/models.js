// Models: the catalog, a model's endpoints with live health, and the what-if re-pricing.
"use strict";

(() => {
  const C = Console;
  const perMillion = (p) => (p === null || p === undefined ? "–" : "$" + (Number(p) * 1e6).toFixed(2));
  const arch = (a) => {
    if (!a || a.kind === "unknown") return "–";
    const total = a.total_params_b ? `${a.total_params_b}B` : "?";
    return a.kind === "moe" ? `MoE ${total} (${a.active_params_b || "?"}B active)` : `dense ${total}`;
  };

  async function showEndpoints(model) {
    const doc = await C.api(`/api/v1/models/${model.id}/endpoints`);
    const endpoints = doc.data.endpoints;
    document.getElementById("endpoints").hidden = false;
    document.getElementById("endpoints-model").textContent = model.id;
    C.fill("endpoints-table", endpoints, [
      (e) => e.provider_name, (e) => e.tollway.hosting_country, (e) => perMillion(e.pricing.prompt),
      (e) => perMillion(e.pricing.completion), (e) => (e.uptime_last_30m === null ? "–" : e.uptime_last_30m + "%"),
      (e) => (e.latency_last_30m ? e.latency_last_30m.p50 : "–"), (e) => (e.throughput_last_30m ? e.throughput_last_30m.p50 : "–"),
    ]);
    C.chart("chart-endpoints", {
      tooltip: { trigger: "axis" }, legend: { bottom: 0 }, grid: { left: 60, right: 60, top: 20, bottom: 50 },
      xAxis: { type: "category", data: endpoints.map((e) => e.provider_name) },
      yAxis: [{ type: "value", name: "ms" }, { type: "value", name: "tok/s" }],
      series: [
        { name: "latency p50 (ms)", type: "bar", data: endpoints.map((e) => (e.latency_last_30m ? e.latency_last_30m.p50 : null)) },
        { name: "throughput p50 (tok/s)", type: "bar", yAxisIndex: 1, data: endpoints.map((e) => (e.throughput_last_30m ? e.throughput_last_30m.p50 : null)) },
      ],
    });
  }

  async function whatIf(form) {
    const q = C.params(form);
    if (!q.getAll("what_if").length) throw new Error("choose at least one model to re-price at");
    const doc = await C.api("/api/v1/analytics/cost?" + q);
    const targets = doc.scenarios;
    const rows = [{ name: "actual", usd: doc.actual_cost_usd }];
    if (doc.list_cost_nanousd !== null && doc.list_cost_nanousd !== doc.actual_cost_nanousd) {
      rows.push({ name: "its own list prices", usd: doc.list_cost_nanousd / 1e9 });  // traffic imported without costs
    }
    rows.push(...targets.map((t) => ({ name: t.model, usd: t.cost_usd })));
    const actual = rows[0].usd;
    C.chart("chart-whatif", {
      tooltip: {}, grid: { left: 200, right: 30, top: 10, bottom: 30 }, xAxis: { type: "value", name: "USD" },
      yAxis: { type: "category", inverse: true, data: rows.map((r) => r.name) },
      series: [{ type: "bar", data: rows.map((r) => r.usd), label: { show: true, position: "right", formatter: (p) => C.usd(p.value) } }],
    });
    C.fill("whatif-table", rows, [(r) => r.name, (r) => C.usd(r.usd), (r) => (actual ? C.pct(r.usd / actual - 1) : "–")]);
  }

  C.onLoad(async () => {
    const doc = await C.api("/api/v1/models");
    const models = doc.data;
    C.fill("models-table", models, [
      (m) => m.id, (m) => m.tollway.author, (m) => m.tollway.author_country,
      (m) => (m.tollway.open_weights === null ? "–" : m.tollway.open_weights ? "open" : "closed"),
      (m) => arch(m.tollway.architecture), (m) => C.int(m.context_length),
      (m) => perMillion(m.pricing.prompt), (m) => perMillion(m.pricing.completion), (m) => m.tollway.active_endpoints,
    ], (tr, m) => {
      tr.classList.add("link");
      tr.addEventListener("click", C.guard(() => showEndpoints(m)));
    });
    const form = document.getElementById("whatif-form");
    if (form) {
      for (const m of models) {
        document.getElementById("whatif-from").appendChild(new Option(m.id, m.id));
        document.getElementById("whatif-to").appendChild(new Option(m.id, m.id));
      }
      form.addEventListener("submit", (e) => { e.preventDefault(); C.guard(whatIf)(form); });
    }
    if (models.length) await showEndpoints(models[0]);
  });
})();
