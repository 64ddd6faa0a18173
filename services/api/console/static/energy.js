"use strict";
TP.page(async () => {
  const { t, api, h, fill, num, when } = TP;
  const select = TP.$("#meter");
  const meters = await api("/v1/devices?domain=energy&limit=1000");
  select.replaceChildren(...meters.items.map((m) => h("option", { value: m.id }, `${m.id} — ${m.name || ""}`)));
  const wanted = new URLSearchParams(location.search).get("meter");
  if (wanted) select.value = wanted;

  const summary = await api("/v1/energy/summary").catch(() => null);
  if (summary) {
    // Rank buildings by wasted kWh over today's anomaly episodes.
    const wasted = new Map();
    for (const a of summary.top_anomalies) wasted.set(a.device_id, (wasted.get(a.device_id) || 0) + a.wasted_kwh);
    const names = new Map(meters.items.map((m) => [m.id, m.name]));
    const ranked = [...wasted.entries()].sort((a, b) => b[1] - a[1]);
    fill("#ranking", ranked.map(([id, kwh]) => h("li", {}, h("a", { href: `?meter=${encodeURIComponent(id)}` }, names.get(id) || id), ` — ${num(kwh, 1)} kWh`)), t("No anomaly today."));
  }

  async function show() {
    const id = select.value;
    if (!id) return;
    const days = Number(TP.$("#days").value);
    const start = new Date(Date.now() - days * 86400e3).toISOString();
    const q = `start=${encodeURIComponent(start)}`;
    const base = `/v1/energy/meters/${encodeURIComponent(id)}`;
    const [cons, anomalies, forecast] = await Promise.all([
      api(`${base}/consumption?bucket=1h&${q}`),
      api(`${base}/anomalies?${q}`),
      api(`${base}/forecast`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    ]);
    const x = cons.items.map((r) => new Date(r.bucket).getTime() / 1000);
    const observed = cons.items.map((r) => r.observed_kwh);
    const expected = cons.items.map((r) => r.expected_kwh);
    // A meter cannot use less than nothing: the model's band is drawn from 0 kWh up.
    const floor0 = (v) => (v == null ? null : Math.max(0, v));
    const lower = cons.items.map((r) => floor0(r.lower_kwh));
    const upper = cons.items.map((r) => floor0(r.upper_kwh));
    const fc = forecast ? forecast.hours : [];
    const fx = fc.map((r) => new Date(r.target_ts).getTime() / 1000);
    const pad = (arr, n) => [...arr, ...Array(n).fill(null)];
    const before = (n) => Array(n).fill(null);
    TP.chart(TP.$("#consumption-chart"), {
      x: [...x, ...fx],
      series: [
        { label: t("Observed"), stroke: "#0b5cad", data: pad(observed, fx.length) },
        { label: t("Expected"), stroke: "#6b6b6b", dash: [6, 4], data: pad(expected, fx.length) },
        { label: t("Forecast"), stroke: "#8a5300", data: [...before(x.length), ...fc.map((r) => r.expected)] },
        { label: t("Forecast upper"), stroke: "rgba(138,83,0,.35)", width: 1, data: [...before(x.length), ...fc.map((r) => floor0(r.upper))] },
        { label: t("Forecast lower"), stroke: "rgba(138,83,0,.35)", width: 1, data: [...before(x.length), ...fc.map((r) => floor0(r.lower))] },
        { label: t("Expected upper"), stroke: "rgba(107,107,107,.45)", width: 1, data: pad(upper, fx.length) },
        { label: t("Expected lower"), stroke: "rgba(107,107,107,.45)", width: 1, data: pad(lower, fx.length) },
      ],
      // Grey: the expected band (what the model considers normal); brown: the forecast's interval.
      bands: [
        { series: [6, 7], fill: "rgba(107,107,107,.15)" },
        { series: [4, 5], fill: "rgba(208,138,0,.15)" },
      ],
    });
    fill("#anomalies", anomalies.episodes.map((e) => h("tr", {},
      h("td", {}, t(e.kind)), h("td", {}, when(e.started_at)), h("td", {}, e.ended_at ? when(e.ended_at) : t("ongoing")),
      h("td", {}, num(e.observed_kwh, 1)), h("td", {}, num(e.expected_kwh, 1)), h("td", {}, num(e.wasted_kwh, 1)))), t("No anomaly in this period."));
  }
  select.addEventListener("change", () => show().catch(TP.fail));
  TP.$("#days").addEventListener("change", () => show().catch(TP.fail));
  await show();
});
