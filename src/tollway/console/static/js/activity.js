// Activity: the viewer's tokens, cost and requests per day, the generation log, agent tasks.
"use strict";

(() => {
  const C = Console;
  const admin = document.body.dataset.admin === "true";
  let filters = new URLSearchParams();
  let before = null;

  async function series() {
    const doc = await C.api("/api/v1/console/activity");
    const days = doc.days;
    const t = doc.totals;
    document.getElementById("activity-totals").textContent =
      `${doc.from} – ${doc.to}: ${C.int(t.requests)} requests, ${C.int(t.prompt_tokens + t.completion_tokens)} tokens, ${C.usd(t.cost_usd)}`;
    C.chart("chart-activity", {
      tooltip: { trigger: "axis" }, legend: { bottom: 0 }, grid: { left: 70, right: 130, top: 30, bottom: 60 },
      xAxis: { type: "category", data: days.map((d) => d.date) },
      yAxis: [{ type: "value", name: "tokens" }, { type: "value", name: "requests" },
        { type: "value", name: "USD", offset: 60, axisLine: { show: true } }],
      series: [
        { name: "prompt tokens", type: "bar", stack: "tokens", data: days.map((d) => d.prompt_tokens) },
        { name: "completion tokens", type: "bar", stack: "tokens", data: days.map((d) => d.completion_tokens) },
        { name: "cost (USD)", type: "line", yAxisIndex: 2, data: days.map((d) => d.cost_usd) },
        { name: "requests", type: "line", yAxisIndex: 1, data: days.map((d) => d.requests) },
      ],
    });
  }

  function detailRow(dl, label, value) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value === null || value === undefined ? "–" : String(value);
    dl.append(dt, dd);
  }

  async function detail(id) {
    const g = (await C.api("/api/v1/generation?id=" + encodeURIComponent(id))).data;
    const box = document.getElementById("generation-detail");
    box.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = g.id;
    const dl = document.createElement("dl");
    detailRow(dl, "model", g.model);
    detailRow(dl, "provider", g.provider_name);
    detailRow(dl, "status", `${g.tollway.status} (${g.tollway.http_status})`);
    detailRow(dl, "tokens in / out / reasoning / cached", `${g.tokens_prompt} / ${g.tokens_completion} / ${g.native_tokens_reasoning} / ${g.native_tokens_cached}`);
    detailRow(dl, "cost", `${C.usd(g.total_cost)} (${g.tollway.cost_nanousd} nano-USD${g.tollway.estimated ? ", estimated" : ""})`);
    detailRow(dl, "latency (ms)", g.latency);
    detailRow(dl, "time to first token (ms)", g.tollway.time_to_first_token_ms);
    detailRow(dl, "streamed", g.streamed);
    detailRow(dl, "finish reason", g.finish_reason);
    detailRow(dl, "app", g.tollway.app_title || g.http_referer);
    detailRow(dl, "task", g.session_id);
    if (g.tollway.error) detailRow(dl, "error", g.tollway.error);
    const table = document.createElement("table");
    table.className = "data";
    table.id = "attempts";
    const head = table.createTHead().insertRow();
    for (const label of ["#", "provider", "model", "status", "latency (ms)", "message"]) C.cell(head, label);
    const body = table.createTBody();
    (g.provider_responses || []).forEach((a, i) => {
      const tr = body.insertRow();
      [i + 1, a.provider, a.upstream_model || a.model, a.status, a.latency_ms, a.message].forEach((v) => C.cell(tr, v));
    });
    table.dataset.rows = String(body.rows.length);
    const attempts = document.createElement("h4");
    attempts.textContent = `Attempts (${(g.provider_responses || []).length}; fallbacks ${Math.max(0, (g.provider_responses || []).length - 1)})`;
    box.append(h, dl, attempts, table, C.button("Close", () => { box.hidden = true; }));
    box.hidden = false;
    box.dataset.generation = g.id;
  }

  async function log(append) {
    const q = new URLSearchParams(filters);
    if (append && before) q.set("before", before);
    const doc = await C.api("/api/v1/console/generations?" + q);
    const columns = [
      (g) => g.created_at.replace("T", " ").slice(0, 19), (g) => g.model, (g) => g.provider, (g) => C.short(g.app_title || g.app, 20),
    ];
    if (admin) columns.push((g) => C.short(g.key_id, 14));
    columns.push((g) => C.short(g.session_id, 16), (g) => `${C.int(g.prompt_tokens)} / ${C.int(g.completion_tokens)}`,
      (g) => C.usd(g.cost_usd), (g) => g.latency_ms, (g) => g.status, (g) => g.fallbacks);
    const body = document.querySelector("#generations tbody");
    const kept = append ? [...body.children] : [];
    C.fill("generations", doc.data, columns, (tr, g) => {
      tr.dataset.id = g.id;
      tr.addEventListener("click", C.guard(() => detail(g.id)));
    });
    if (kept.length) body.prepend(...kept);
    document.getElementById("generations").dataset.rows = String(body.children.length);
    before = doc.next_before;
    document.getElementById("log-more").hidden = !before;
    const models = new Set(doc.data.map((g) => g.model));
    const list = document.getElementById("model-options");
    for (const m of models) if (![...list.options].some((o) => o.value === m)) list.appendChild(new Option(m, m));
  }

  async function tasks() {
    const doc = await C.api("/api/v1/console/tasks?top=15");
    document.getElementById("tasks-range").textContent = `largest first seen ${doc.from} – ${doc.to} (${C.int(doc.tasks)} tasks)`;
    C.fill("tasks", doc.largest, [
      (t) => C.short(t.session_id, 24), (t) => C.int(t.tokens), (t) => t.requests, (t) => C.usd(t.cost_usd), (t) => t.first_seen.slice(0, 16),
    ], (tr, t) => {
      tr.addEventListener("click", C.guard(async () => {
        const form = document.getElementById("log-filters");
        form.elements.task.value = t.session_id;
        filters = C.params(form);
        await log(false);
      }));
    });
    C.chart("chart-tasks", {
      tooltip: {}, grid: { left: 150, right: 20, top: 10, bottom: 30 }, xAxis: { type: "value", name: "tokens" },
      yAxis: { type: "category", inverse: true, data: doc.largest.map((t) => C.short(t.session_id, 20)) },
      series: [{ type: "bar", name: "tokens", data: doc.largest.map((t) => t.tokens) }],
    });
  }

  C.onLoad(async () => {
    const form = document.getElementById("log-filters");
    form.addEventListener("submit", (e) => { e.preventDefault(); filters = C.params(form); C.guard(log)(false); });
    document.getElementById("log-more").addEventListener("click", C.guard(() => log(true)));
    await Promise.all([series(), log(false), tasks()]);
  });
})();
