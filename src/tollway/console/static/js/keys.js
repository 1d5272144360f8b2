// Keys (admin): create (the plain key shown once), limits and resets, revoke, top up; spend vs limit.
"use strict";

(() => {
  const C = Console;

  async function load() {
    const keys = (await C.api("/api/v1/keys?include_disabled=true")).data;
    C.fill("keys-table", keys, [
      (k) => k.name, (k) => k.tollway.key_prefix + "…", (k) => C.usd(k.usage), (k) => (k.limit === null ? "none" : C.usd(k.limit)),
      (k) => (k.limit_remaining === null ? "–" : C.usd(k.limit_remaining)), (k) => k.limit_reset || "never",
      (k) => (k.disabled ? "revoked" : "active"), () => "",
    ], (tr, k) => {
      tr.dataset.hash = k.hash;
      tr.dataset.name = k.name;
      if (k.disabled) return;
      const actions = tr.lastChild;
      const amount = document.createElement("input");
      amount.type = "number"; amount.min = "0"; amount.step = "0.01"; amount.placeholder = "USD"; amount.className = "amount";
      const reset = document.createElement("select");
      reset.className = "reset";
      for (const value of ["", "daily", "weekly", "monthly"]) reset.appendChild(new Option(value || "never", value, false, (k.limit_reset || "") === value));
      const setLimit = async () => {
        const body = { limit: amount.value === "" ? null : Number(amount.value), limit_reset: reset.value || null };
        await C.api(`/api/v1/keys/${k.hash}`, { method: "PATCH", body });
        await load();
      };
      actions.append(amount, reset,
        C.button("Top up", C.guard(async () => { await C.api(`/api/v1/keys/${k.hash}/credits`, { method: "POST", body: { amount: Number(amount.value) } }); await load(); }), "top-up"),
        C.button("Set limit", C.guard(setLimit), "set-limit"),
        C.button("Revoke", C.guard(async () => { await C.api(`/api/v1/keys/${k.hash}`, { method: "DELETE" }); await load(); }), "revoke"));
    });
    const active = keys.filter((k) => !k.disabled);
    C.chart("chart-spend", {
      tooltip: { trigger: "axis" }, legend: { bottom: 0 }, grid: { left: 60, right: 20, top: 20, bottom: 60 },
      xAxis: { type: "category", data: active.map((k) => k.name) }, yAxis: { type: "value", name: "USD" },
      series: [
        { name: "spend", type: "bar", data: active.map((k) => k.usage) },
        { name: "limit", type: "bar", data: active.map((k) => k.limit) },
      ],
    });
  }

  async function create(form) {
    const f = form.elements;
    const body = { name: f.name.value };
    if (f.limit.value !== "") body.limit = Number(f.limit.value);
    if (f.limit_reset.value) body.limit_reset = f.limit_reset.value;
    if (f.rpm.value !== "") body.rpm = Number(f.rpm.value);
    const doc = await C.api("/api/v1/keys", { method: "POST", body });
    document.getElementById("new-key-value").textContent = doc.key;
    document.getElementById("new-key").hidden = false;
    form.reset();
    await load();
  }

  C.onLoad(async () => {
    const form = document.getElementById("create-key");
    form.addEventListener("submit", (e) => { e.preventDefault(); C.guard(create)(form); });
    await load();
  });
})();
