// Shared helpers: JSON calls to tollway's APIs with the session cookie, charts, tables.
// No chart drawing here: ECharts draws; these functions only build its options.
"use strict";

const Console = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  function showError(message) {
    const box = document.getElementById("error");
    box.textContent = message;
    box.hidden = false;
  }

  async function api(path, options = {}) {
    const init = { method: options.method || "GET", credentials: "same-origin", headers: { accept: "application/json" } };
    if (init.method !== "GET") {
      init.headers["x-csrf-token"] = csrf();
      if (options.body !== undefined) {
        init.headers["content-type"] = "application/json";
        init.body = JSON.stringify(options.body);
      }
    }
    const response = await fetch(path, init);
    const text = await response.text();
    const doc = text ? JSON.parse(text) : {};
    if (!response.ok) {
      const message = (doc.error && doc.error.message) || `${response.status} from ${path}`;
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return doc;
  }

  const charts = new Map();
  function chart(id, option) {
    const el = document.getElementById(id);
    let instance = charts.get(id);
    if (!instance) {
      instance = echarts.init(el, null, { renderer: "canvas" });
      charts.set(id, instance);
    }
    instance.setOption(Object.assign({ animation: false }, option), true);
    el.dataset.rendered = "true";
    el.dataset.points = String(countPoints(option));
    return instance;
  }
  function countPoints(option) {
    return (option.series || []).reduce((n, s) => n + (s.data || []).filter((v) => v !== null && v !== 0).length, 0);
  }
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

  function cell(row, value, cls) {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value); else td.textContent = value === null || value === undefined ? "–" : String(value);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function fill(tableId, items, columns, onRow) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren();
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const column of columns) cell(tr, column(item));
      if (onRow) onRow(tr, item);
      body.appendChild(tr);
    }
    document.getElementById(tableId).dataset.rows = String(items.length);
  }

  const int = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const usd = (n) => (n === null || n === undefined ? "–" : "$" + Number(n).toFixed(Math.abs(n) < 1 ? 6 : 2));
  const pct = (r) => (r === null || r === undefined ? "–" : (100 * r).toFixed(1) + "%");
  const short = (s, n = 28) => (s && s.length > n ? s.slice(0, n - 1) + "…" : s || "–");
  const button = (label, handler, cls) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", handler);
    return b;
  };
  const params = (form) => {
    const out = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== "") out.append(k, v);
    return out;
  };
  const guard = (fn) => (...args) => fn(...args).catch((e) => showError(e.message));
  const onLoad = (fn) => document.addEventListener("DOMContentLoaded", guard(fn));

  return { api, chart, fill, cell, int, usd, pct, short, button, params, guard, onLoad, showError };
})();
