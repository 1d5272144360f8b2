// Rankings: OpenRouter's stacked token chart, market share, the country crossover, apps, leaderboard.
"use strict";

(() => {
  const C = Console;
  const admin = document.body.dataset.admin === "true";

  // Top N keys per period as stacked bars, plus "Others" (the period's total minus the top N).
  function stacked(report, asShare) {
    const periods = report.periods.map((p) => p.period_start);
    const totals = new Map(report.periods.map((p) => [p.period_start, p.total_tokens]));
    const keys = [...new Set(report.rows.map((r) => r.key))];
    const byKey = new Map(keys.map((k) => [k, new Map()]));
    for (const r of report.rows) byKey.get(r.key).set(r.period_start, r.total_tokens);
    const value = (tokens, p) => (asShare ? (totals.get(p) ? (100 * tokens) / totals.get(p) : 0) : tokens);
    const series = keys.map((k) => ({
      name: k, type: "bar", stack: "all", emphasis: { focus: "series" },
      data: periods.map((p) => value(byKey.get(k).get(p) || 0, p)),
    }));
    const others = periods.map((p) => value(totals.get(p) - keys.reduce((n, k) => n + (byKey.get(k).get(p) || 0), 0), p));
    if (others.some((v) => v > 0)) series.push({ name: "Others", type: "bar", stack: "all", data: others, itemStyle: { color: "#bbb" } });
    return { periods, series };
  }

  // The first period in which the leading country of the first period is overtaken.
  function crossover(report) {
    const periods = report.periods.map((p) => p.period_start);
    const leader = (p) => report.rows.filter((r) => r.period_start === p).sort((a, b) => a.rank - b.rank)[0];
    if (periods.length < 2 || !leader(periods[0])) return null;
    const first = leader(periods[0]).key;
    for (const p of periods.slice(1)) {
      const top = leader(p);
      if (top && top.key !== first) return { period: p, from: first, to: top.key };
    }
    return null;
  }

  const axisTokens = { type: "value", axisLabel: { formatter: (v) => (v >= 1e12 ? v / 1e12 + "T" : v >= 1e9 ? v / 1e9 + "B" : v >= 1e6 ? v / 1e6 + "M" : v >= 1e3 ? v / 1e3 + "k" : v) } };
  const legend = { type: "scroll", bottom: 0 };
  const grid = { left: 60, right: 20, top: 20, bottom: 60 };

  // Tokens by app category over the range's last four weeks (OpenRouter's analytics query,
  // scoped by the server to the viewer); absent for the public page and for no traffic.
  function categories(doc) {
    if (!doc) return;
    const rows = doc.data.data.filter((r) => r.category);
    const empty = rows.length ? undefined : { text: "no app declared a category", subtext: "X-OpenRouter-Categories, or tollway apps set-category", left: "center", top: "middle", textStyle: { color: "#888", fontSize: 13 } };
    C.chart("chart-categories", {
      title: empty,
      tooltip: {}, grid: { left: 160, right: 20, top: 10, bottom: 30 }, xAxis: axisTokens,
      yAxis: { type: "category", inverse: true, data: rows.map((r) => r.category) },
      series: [{ type: "bar", data: rows.map((r) => r.tokens_total) }],
    });
  }

  async function draw(form) {
    const period = form.elements.period.value;
    // One call: the server reads the model rollup once for the model, author, country and
    // weights reports (each the document /api/v1/analytics/rankings answers), plus apps and categories.
    const doc = await C.api("/api/v1/console/rankings?" + C.params(form));
    const { model: models, author: authors, origin, app: apps, weights } = doc;

    const m = stacked(models, false);
    C.chart("chart-models", { tooltip: { trigger: "axis" }, legend, grid, xAxis: { type: "category", data: m.periods }, yAxis: axisTokens, series: m.series });

    C.chart("chart-authors", {
      tooltip: { trigger: "item" }, legend,
      series: [{ type: "pie", radius: ["35%", "65%"], data: authors.rows.map((r) => ({ name: r.key, value: r.total_tokens })) }],
    });

    const o = stacked(origin, true);
    const cross = crossover(origin);
    if (cross && o.series.length) {
      o.series[0].markLine = { symbol: "none", label: { formatter: `crossover ${cross.period}` }, lineStyle: { color: "#d33", width: 2 }, data: [{ xAxis: cross.period }] };
    }
    C.chart("chart-origin", { tooltip: { trigger: "axis" }, legend, grid, xAxis: { type: "category", data: o.periods }, yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } }, series: o.series });
    const note = document.getElementById("crossover-note");
    note.hidden = !cross;
    if (cross) {
      note.textContent = `Crossover: in the ${period} of ${cross.period}, models from ${cross.to} overtook models from ${cross.from} in tokens.`;
      note.dataset.period = cross.period;
    }

    const named = apps.rows.filter((r) => r.key);  // traffic without an app (imports, bare SDK calls) is no app
    C.chart("chart-apps", {
      tooltip: {}, grid: { left: 160, right: 20, top: 10, bottom: 30 }, xAxis: axisTokens,
      yAxis: { type: "category", inverse: true, data: named.map((r) => C.short(r.key, 24)) },
      series: [{ type: "bar", data: named.map((r) => r.total_tokens) }],
    });

    if (document.getElementById("chart-categories")) categories(doc.categories);

    const w = stacked(weights, true);
    C.chart("chart-weights", { tooltip: { trigger: "axis" }, legend, grid, xAxis: { type: "category", data: w.periods }, yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } }, series: w.series });

    const last = models.periods.length ? models.periods[models.periods.length - 1].period_start : null;
    document.getElementById("leaderboard-period").textContent = last ? `${period} of ${last}` : "";
    const rows = models.rows.filter((r) => r.period_start === last).sort((a, b) => a.rank - b.rank);
    C.fill("leaderboard", rows, [
      (r) => r.rank, (r) => r.key, (r) => C.int(r.total_tokens), (r) => C.pct(r.share), (r) => C.pct(r.change),
      (r) => (r.rank_change === null ? "new" : r.rank_change > 0 ? `▲ ${r.rank_change}` : r.rank_change < 0 ? `▼ ${-r.rank_change}` : "="),
    ]);
  }

  C.onLoad(async () => {
    const form = document.getElementById("rankings-filters");
    form.addEventListener("submit", (e) => { e.preventDefault(); C.guard(draw)(form); });
    if (!admin && document.body.dataset.public !== "true") document.querySelector("h1").textContent = "Rankings of your traffic";
    await draw(form);
  });
})();
