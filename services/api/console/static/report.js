"use strict";
TP.page(async () => {
  const { t, api, h, fill, when, num } = TP;
  const form = TP.$("#report-form");
  // Last month, in the town's calendar, by default.
  const today = TP.townDate();
  const first = `${today.slice(0, 7)}-01`;
  const prev = new Date(`${first}T00:00:00Z`);
  prev.setUTCMonth(prev.getUTCMonth() - 1);
  form.start.value = prev.toISOString().slice(0, 10);
  form.end.value = first;
  form.lang.value = TP.lang === "en" ? "en" : "fr";

  function rows(f) {
    const e = f.energy, w = f.waste, tr = f.traffic, q = f.quality, b = f.balance;
    const line = (label, value) => h("tr", {}, h("td", {}, label), h("td", {}, value));
    return [
      line(t("Energy consumed"), `${num(e.consumed_kwh)} kWh`),
      line(t("Energy expected"), `${num(e.expected_kwh)} kWh`),
      line(t("Anomalies"), String(e.anomalies)),
      line(t("Excess during anomalies"), `${num(e.excess_kwh)} kWh (${num(e.excess_cost_eur, 2)} EUR)`),
      line(t("Distance saved by the plans"), `${num(w.saved_km)} km (${w.plan_days} ${t("days")})`),
      line(t("CO2e avoided by the collection"), `${num(w.saved_co2e_kg)} kg`),
      line(t("Bins overflowing before collection"), String(w.overflows)),
      line(t("Incidents (previous period)"), `${tr.incidents} (${tr.incidents_previous})`),
      line(t("Rejected messages"), String(q.deadletters)),
      line(t("Silent sensors"), `${q.silent} / ${q.devices}`),
      line(t("Platform's CO2e"), b.platform_kg === null ? t("not available") : `${num(b.platform_kg, 3)} kg`),
      line(t("Net CO2e (avoided minus emitted)"), b.net_kg === null ? t("not available") : `${num(b.net_kg, 3)} kg`),
    ];
  }

  async function show(id) {
    const r = await api(`/v1/reports/${encodeURIComponent(id)}`);
    TP.$("#figures-period").textContent = `(${r.period_start} – ${r.period_end}, ${r.lang})`;
    fill("#figures", rows(r.figures), t("No report yet."));
  }

  async function download(r) {
    // The PDF needs the key: fetched here, then saved from memory.
    const res = await fetch(r.pdf_url, { headers: { Authorization: `Bearer ${sessionStorage.getItem(TP.KEY) || ""}` } });
    if (!res.ok) throw new TP.ApiError(res.status, `HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `townpulse-${r.id}.pdf` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  async function load() {
    const reports = await api("/v1/reports");
    fill("#reports", reports.map((r) => h("tr", { "data-report": r.id },
      h("td", {}, `${r.period_start} – ${r.period_end}`), h("td", {}, r.lang), h("td", {}, when(r.generated_at)),
      h("td", {}, `${num(r.size_bytes / 1024, 0)} kB`),
      h("td", {},
        TP.actionButton(t("Figures"), "viewer", () => show(r.id).catch(TP.fail), "secondary"), " ",
        TP.actionButton(t("Download the PDF"), "viewer", () => download(r).catch(TP.fail), "secondary")))),
    t("No report yet."));
    if (reports.length) await show(reports[0].id);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      TP.status(t("Making the report…"));
      const r = await api("/v1/reports", { method: "POST", body: { start: form.start.value, end: form.end.value, lang: form.lang.value } });
      TP.status(t("Report ready."));
      await load();
      await show(r.id);
    } catch (err) {
      TP.fail(err);
    }
  });
  await load();
});
