"use strict";
TP.page(async () => {
  const { t, api, h, fill, when } = TP;
  const select = TP.$("#counter");
  const counters = await api("/v1/devices?domain=traffic&limit=1000");
  select.replaceChildren(...counters.items.map((c) => h("option", { value: c.id }, `${c.id} — ${c.name || ""}`)));
  const wanted = new URLSearchParams(location.search).get("counter");
  if (wanted) select.value = wanted;

  const weekAgo = new Date(Date.now() - 7 * 86400e3).toISOString();
  const incidents = await api(`/v1/traffic/incidents?start=${encodeURIComponent(weekAgo)}&limit=200`);
  fill("#incidents", incidents.items.map((i) => h("tr", {},
    h("td", {}, h("a", { href: `?counter=${encodeURIComponent(i.device_id)}` }, i.device_id)), h("td", {}, t(i.kind)),
    h("td", {}, when(i.started_at)), h("td", {}, i.ended_at ? when(i.ended_at) : t("ongoing")), h("td", {}, t(i.severity)))), t("No incident."));

  async function show() {
    const id = select.value;
    if (!id) return;
    const base = `/v1/traffic/counters/${encodeURIComponent(id)}`;
    const [flow, forecast] = await Promise.all([
      api(`${base}/flow?bucket=15m`),
      api(`${base}/forecast`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    ]);
    const x = flow.items.map((r) => new Date(r.bucket).getTime() / 1000);
    const fc = forecast ? forecast.steps : [];
    const fx = fc.map((r) => new Date(r.target_ts).getTime() / 1000);
    const pad = (arr, n) => [...arr, ...Array(n).fill(null)];
    const before = Array(x.length).fill(null);
    TP.chart(TP.$("#flow-chart"), {
      x: [...x, ...fx],
      series: [
        { label: t("Observed"), stroke: "#0b5cad", data: pad(flow.items.map((r) => r.vehicles), fx.length) },
        { label: t("Expected"), stroke: "#6b6b6b", dash: [6, 4], data: pad(flow.items.map((r) => r.expected_vehicles), fx.length) },
        { label: t("Forecast"), stroke: "#8a5300", data: [...before, ...fc.map((r) => r.expected)] },
        { label: t("Forecast upper"), stroke: "rgba(138,83,0,.35)", width: 1, data: [...before, ...fc.map((r) => r.upper)] },
        { label: t("Forecast lower"), stroke: "rgba(138,83,0,.35)", width: 1, data: [...before, ...fc.map((r) => r.lower)] },
      ],
      band: { series: [4, 5], fill: "rgba(208,138,0,.15)" },
    });
  }
  select.addEventListener("change", () => show().catch(TP.fail));
  await show();
});
