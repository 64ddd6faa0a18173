"use strict";
TP.page(async () => {
  const { t, api, h, fill, num, when, ago, clock } = TP;
  const settle = (p) => p.then((v) => ({ ok: true, v }), (e) => ({ ok: false, e }));
  const dayAgo = new Date(Date.now() - 86400e3).toISOString();
  const [energy, bins, incidents, alerts, fresh, precision] = await Promise.all([
    settle(api("/v1/energy/summary")),
    settle(api("/v1/waste/bins?limit=10000")),
    settle(api(`/v1/traffic/incidents?start=${encodeURIComponent(dayAgo)}`)),
    settle(api("/v1/alerts?state=open&limit=500")),
    settle(api("/v1/console/freshness")),
    settle(api("/v1/alerts/precision?days=30")),
  ]);
  const unavailable = (r) => h("li", { class: "muted" }, `${t("Unavailable")}: ${r.e.message}`);

  if (energy.ok) {
    const s = energy.v;
    const diff = s.expected_kwh ? (100 * (s.total_kwh - s.expected_kwh)) / s.expected_kwh : null;
    fill("#energy-today", [
      h("dt", {}, t("Consumed")), h("dd", {}, `${num(s.total_kwh, 0)} kWh`),
      h("dt", {}, t("Expected")), h("dd", {}, `${num(s.expected_kwh, 0)} kWh`),
      h("dt", {}, t("Difference")), h("dd", {}, diff === null ? "—" : `${diff > 0 ? "+" : ""}${num(diff, 1)} %`),
      h("dt", {}, t("Wasted by anomalies")), h("dd", {}, `${num(s.wasted_kwh, 1)} kWh`),
      h("dt", {}, t("Meters")), h("dd", {}, num(s.meters, 0)),
    ]);
    fill("#energy-anomalies", s.top_anomalies.slice(0, 5).map((a) =>
      h("li", {}, h("a", { href: `/energy?meter=${encodeURIComponent(a.device_id)}` }, a.device_id),
        ` — ${t(a.kind)}, ${t("since")} ${clock(a.started_at)}, ${num(a.wasted_kwh, 1)} kWh`)), t("No anomaly today."));
  } else fill("#energy-today", [h("dt", {}, t("Unavailable")), h("dd", {}, energy.e.message)]);

  if (bins.ok) {
    // Due: full now, or full before tomorrow's round (the waste service's own criterion).
    const horizon = Date.now() + 86400e3;
    const due = bins.v.items.filter((b) => b.level_pct >= bins.v.full_pct || (b.full_at && new Date(b.full_at).getTime() <= horizon));
    TP.$("#bins-due").textContent = t("{n} of {total}", { n: due.length, total: bins.v.items.length });
    fill("#bins-due-list", due.slice(0, 5).map((b) =>
      h("li", {}, `${b.name || b.id}: ${num(b.level_pct, 0)} %`, b.full_at ? ` (${t("full")} ${ago(b.full_at)})` : "")), t("No bin due."));
  } else fill("#bins-due-list", [unavailable(bins)]);

  if (incidents.ok) {
    const items = incidents.v.items;
    TP.$("#incidents-count").textContent = num(items.length, 0);
    fill("#incidents-list", items.slice(0, 5).map((i) =>
      h("li", {}, `${i.device_id}: ${t(i.kind)} — ${when(i.started_at)}`)), t("No incident."));
  } else fill("#incidents-list", [unavailable(incidents)]);

  if (alerts.ok) {
    TP.$("#alerts-count").textContent = num(alerts.v.length, 0);
    fill("#alerts-list", alerts.v.slice(0, 5).map((a) =>
      h("li", {}, h("span", { class: `sev-${a.severity}` }, t(a.severity)), " ",
        h("a", { href: `/alerts?id=${encodeURIComponent(a.id)}` }, `${a.device_id} · ${a.kind}`),
        ` — ${ago(a.last_seen)}`)), t("No open alert."));
  } else fill("#alerts-list", [unavailable(alerts)]);

  // The platform's own early warnings (townpulse/watch/): for the admin, who looks after the
  // machine. The watch's message is English; the console says the same from its figures.
  if (TP.can("admin")) {
    TP.$("#platform-card").hidden = false;
    const label = {
      "platform.disk_high": t("Disk filling up"),
      "platform.backup_stale": t("Backup too old"),
      "platform.certificate_expiring": t("Certificate expiring"),
      "platform.restarts_high": t("Service restarting often"),
    };
    const detail = (a) => {
      const x = a.explanation || {};
      if (a.kind === "platform.disk_high") {
        const used = t("{pct} % used", { pct: num(x.observed, 1) });
        return x.days_left == null ? used : `${used}, ${t("full in {n} days", { n: num(x.days_left, 1) })}`;
      }
      if (a.kind === "platform.backup_stale") return t("last successful backup {n} h ago", { n: num(x.observed, 0) });
      if (a.kind === "platform.certificate_expiring") return t("{n} days left", { n: num(x.observed, 1) });
      if (a.kind === "platform.restarts_high") return t("{n} restarts in the last hour", { n: num(x.observed, 0) });
      return x.message || "";
    };
    const platform = await settle(api("/v1/alerts?domain=platform&limit=200"));
    if (platform.ok) {
      const current = platform.v.filter((a) => a.state !== "resolved");
      fill("#platform-list", current.map((a) =>
        h("li", {}, h("span", { class: `sev-${a.severity}` }, t(a.severity)), " ",
          h("a", { href: `/alerts?id=${encodeURIComponent(a.id)}` }, `${label[a.kind] || a.kind} · ${a.device_id}`),
          ` — ${detail(a)}, ${t("since")} ${ago(a.first_seen)}`)), t("No warning: disks, backups, certificates and restarts are fine."));
    } else fill("#platform-list", [unavailable(platform)]);
  }

  if (precision.ok) {
    // Never a precision computed over nothing: without a real or false-alarm verdict, say so.
    fill("#precision", precision.v.domains.map((d) => h("tr", { "data-domain": d.domain },
      h("td", {}, t(d.domain)),
      h("td", { class: "precision" }, d.precision === null ? t("no feedback yet") : `${num(100 * d.precision, 0)} %`),
      h("td", {}, num(d.real, 0)), h("td", {}, num(d.false_alarm, 0)), h("td", {}, num(d.expected, 0)),
      h("td", { class: "without" }, num(d.without_feedback, 0)))), t("No alert in the last 30 days."));
  } else fill("#precision", [h("tr", {}, h("td", { colspan: 6, class: "muted" }, `${t("Unavailable")}: ${precision.e.message}`))]);

  if (fresh.ok) {
    fill("#freshness", fresh.v.items.map((f) => h("tr", {},
      h("td", {}, t(f.domain)), h("td", {}, num(f.devices, 0)), h("td", {}, num(f.reporting, 0)),
      h("td", {}, f.last_reading_at ? `${when(f.last_reading_at)} (${ago(f.last_reading_at)})` : t("never")))), t("No device registered yet."));
  }
});
