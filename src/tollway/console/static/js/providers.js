// Providers: circuit state, uptime, latency and throughput per endpoint.
"use strict";

(() => {
  const C = Console;
  const up = (v) => (v === null || v === undefined ? "–" : v + "%");

  C.onLoad(async () => {
    const rows = (await C.api("/api/v1/console/providers")).data;
    C.fill("providers-table", rows, [
      (r) => r.provider_name, (r) => r.model, (r) => r.breaker, (r) => up(r.uptime_last_5m), (r) => up(r.uptime_last_30m),
      (r) => up(r.uptime_last_1d), (r) => (r.latency_last_30m ? `${r.latency_last_30m.p50} / ${r.latency_last_30m.p90}` : "–"),
      (r) => (r.throughput_last_30m ? r.throughput_last_30m.p50 : "–"),
    ], (tr, r) => { tr.dataset.breaker = r.breaker; });
    const measured = rows.filter((r) => r.measured);
    const names = measured.map((r) => `${r.provider_name} · ${r.model}`);
    const bars = (id, pick, unit) => C.chart(id, {
      tooltip: {}, grid: { left: 220, right: 30, top: 10, bottom: 30 }, xAxis: { type: "value", name: unit },
      yAxis: { type: "category", inverse: true, data: names.map((n) => C.short(n, 34)) },
      series: [{ type: "bar", data: measured.map(pick) }],
    });
    bars("chart-latency", (r) => (r.latency_last_30m ? r.latency_last_30m.p50 : null), "ms");
    bars("chart-throughput", (r) => (r.throughput_last_30m ? r.throughput_last_30m.p50 : null), "tok/s");
  });
})();
