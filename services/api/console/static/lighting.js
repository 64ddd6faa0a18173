"use strict";
TP.page(async () => {
  const { t, api, h, fill, num, when, clock, ago } = TP;
  const COLOURS = { lit: "#e0a800", dark: "#455a64", fault: "#c62828", quiet: "#b0bec5" };
  // The service's alert kinds (docs/lighting.md), in the page's language.
  const KINDS = {
    "lighting.lamp_failure": t("Lamp failure"),
    "lighting.daylight": t("Lit in daylight"),
    "lighting.schedule": t("Schedule not followed"),
    "lighting.drift": t("Power drift"),
    "lighting.controller_silent": t("Controller silent"),
  };
  const span = (from, to) => (from ? `${from} – ${to}` : t("none"));

  const [devices, circuits, open, acknowledged, schedule, savings] = await Promise.all([
    api("/v1/devices?domain=lighting&limit=1000"),
    api("/v1/lighting/circuits?limit=10000"),
    api("/v1/alerts?domain=lighting&state=open&limit=500"),
    api("/v1/alerts?domain=lighting&state=acknowledged&limit=500"),
    api("/v1/lighting/schedule"),
    api("/v1/lighting/savings"),
  ]);

  // Tonight: the first night of the schedule (the one running, after midnight).
  const night = schedule.items[0];
  fill("#tonight", night ? [
    h("dt", {}, t("Sunset")), h("dd", { "data-field": "sunset" }, `${clock(night.sunset)} (${when(night.sunset)})`),
    h("dt", {}, t("Sunrise")), h("dd", { "data-field": "sunrise" }, `${clock(night.sunrise)} (${when(night.sunrise)})`),
    h("dt", {}, t("Switched off")), h("dd", { "data-field": "off" }, span(night.off_from, night.off_to)),
    h("dt", {}, t("Dimmed")), h("dd", { "data-field": "dim" }, night.dim_from ? `${span(night.dim_from, night.dim_to)}, ${num(night.dim_pct, 0)} %` : t("none")),
    h("dt", {}, t("Hours lit at full power, dimmed, off")),
    h("dd", { "data-field": "hours" }, `${num(night.full_h, 1)} h, ${num(night.dim_h, 1)} h, ${num(night.off_h, 1)} h`),
  ] : [h("dt", {}, t("No night")), h("dd", {}, t("The sun neither sets nor rises at the town's coordinates tonight."))]);

  const faults = [...open, ...acknowledged].sort((a, b) => (a.first_seen < b.first_seen ? 1 : -1));
  const faultsOf = new Map();
  for (const a of faults) faultsOf.set(a.device_id, (faultsOf.get(a.device_id) || 0) + 1);
  const state = new Map(circuits.items.map((c) => [c.device_id, c]));
  const status = (d) => {
    if (faultsOf.get(d.id)) return "fault";
    const c = state.get(d.id);
    return !c ? "quiet" : c.on ? "lit" : "dark";
  };
  const label = (c) => (!c ? t("no report yet") : c.on ? (c.dimming_pct !== null && c.dimming_pct < 100 ? `${t("lit")}, ${num(c.dimming_pct, 0)} %` : t("lit")) : t("off"));

  fill("#cabinets", devices.items.map((d) => {
    const c = state.get(d.id);
    return h("tr", { "data-device": d.id },
      h("td", {}, d.name ? `${d.name} (${d.id})` : d.id),
      h("td", { class: "state" }, label(c)),
      h("td", {}, c ? num(c.power_w, 0) : "—"),
      h("td", {}, c ? ago(c.ts) : "—"),
      h("td", { class: "faults" }, String(faultsOf.get(d.id) || 0)));
  }), t("No lighting cabinet is registered yet."));

  const svg = TP.$("#cabinet-map");
  svg.replaceChildren();
  const located = TP.located(devices.items.map((d) => ({ ...d, lat: d.location?.lat, lon: d.location?.lon })));
  if (located.length) {
    const proj = TP.projector(located, 600, 450);
    for (const d of located) {
      const [x, y] = proj(d);
      const st = status(d);
      const mark = TP.svg("circle", { cx: x, cy: y, r: 6, fill: COLOURS[st], stroke: "#fff", "stroke-width": 1, class: `cabinet ${st}`, "data-device": d.id });
      mark.append(TP.svg("title", {}, `${d.name || d.id}: ${st === "fault" ? t("open fault") : label(state.get(d.id))}`));
      svg.append(mark);
    }
  }

  fill("#faults", faults.map((a) => h("tr", { "data-alert": a.id },
    h("td", {}, a.device_id),
    h("td", {}, h("a", { href: `/alerts?id=${encodeURIComponent(a.id)}` }, KINDS[a.kind] || a.kind)),
    h("td", {}, when(a.first_seen)),
    h("td", {}, h("span", { class: `sev-${a.severity}` }, t(a.severity))),
    h("td", {}, t(a.state)))), t("No open fault."));

  fill("#savings", [
    h("dt", {}, t("Lit all night, it would have used")), h("dd", { "data-field": "all_night_kwh" }, `${num(savings.all_night_kwh, 1)} kWh`),
    h("dt", {}, t("Used")), h("dd", { "data-field": "used_kwh" }, `${num(savings.used_kwh, 1)} kWh`),
    h("dt", {}, t("Saved")), h("dd", { "data-field": "saved_kwh" }, `${num(savings.saved_kwh, 1)} kWh`),
    h("dt", {}, t("Saved (euros)")), h("dd", { "data-field": "saved_eur" }, `${num(savings.saved_eur, 2)} €`),
    h("dt", {}, t("Saved (CO2e)")), h("dd", { "data-field": "saved_kg_co2e" }, `${num(savings.saved_kg_co2e, 1)} kg`),
    h("dt", {}, t("Circuits counted")), h("dd", {}, num(savings.circuits, 0)),
  ]);
});
