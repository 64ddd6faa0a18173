"use strict";
TP.page(async () => {
  const { t, api, h, fill, when, ago } = TP;
  const form = TP.$("#alert-filter");
  const params = new URLSearchParams(location.search);
  const VERDICT = { real: t("Real"), false_alarm: t("False alarm"), expected: t("Expected (planned)") };
  const verdictLabel = (f) => (f ? VERDICT[f.verdict] || f.verdict : "—");
  let shown = null;

  async function judge(verdict) {
    if (!shown) return;
    const note = TP.$("#fb-note").value;
    try {
      await api(`/v1/alerts/${encodeURIComponent(shown)}/feedback`, { method: "POST", body: { verdict, note } });
      TP.status(t("Verdict recorded: {verdict}.", { verdict: VERDICT[verdict] }));
      TP.$("#fb-note").value = "";
      await load();
      await detail(shown);
    } catch (err) {
      TP.fail(err);
    }
  }

  async function act(id, action) {
    try {
      await api(`/v1/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body: { note: "" } });
      TP.status(action === "ack" ? t("Alert acknowledged.") : t("Alert resolved."));
      await load();
      await detail(id);
    } catch (err) {
      TP.fail(err);
    }
  }

  async function load() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    q.set("limit", "200");
    const alerts = await api(`/v1/alerts?${q}`);
    fill("#alerts", alerts.map((a) => h("tr", { "data-alert": a.id },
      h("td", {}, h("span", { class: `sev-${a.severity}` }, t(a.severity))),
      h("td", {}, a.device_id),
      h("td", {}, h("a", { href: `?id=${encodeURIComponent(a.id)}`, onclick: (ev) => { ev.preventDefault(); detail(a.id).catch(TP.fail); } }, a.kind)),
      h("td", { class: "state" }, t(a.state)),
      h("td", {}, when(a.first_seen)),
      h("td", {}, ago(a.last_seen)),
      h("td", { class: "verdict" }, verdictLabel(a.feedback)),
      h("td", {},
        a.state === "open" ? TP.actionButton(t("Acknowledge"), "operator", () => act(a.id, "ack"), "ack") : null, " ",
        a.state !== "resolved" ? TP.actionButton(t("Resolve"), "operator", () => act(a.id, "resolve"), "secondary resolve") : null))),
      t("No alert matches."));
  }

  async function detail(id) {
    const [a, history] = await Promise.all([
      api(`/v1/alerts/${encodeURIComponent(id)}`),
      api(`/v1/alerts/${encodeURIComponent(id)}/feedback`),
    ]);
    shown = id;
    TP.$("#detail").hidden = false;
    fill("#detail-figures", [
      h("dt", {}, t("Device")), h("dd", {}, a.device_id),
      h("dt", {}, t("Kind")), h("dd", {}, a.kind),
      h("dt", {}, t("State")), h("dd", {}, t(a.state)),
      h("dt", {}, t("Severity")), h("dd", {}, t(a.severity)),
      h("dt", {}, t("Occurrences")), h("dd", {}, String(a.count)),
      h("dt", {}, t("Acknowledged")), h("dd", {}, a.acknowledged_at ? `${when(a.acknowledged_at)} (${a.acknowledged_by})` : "—"),
      h("dt", {}, t("Resolved")), h("dd", {}, a.resolved_at ? `${when(a.resolved_at)} (${a.resolved_by})` : "—"),
    ]);
    TP.$("#detail-explanation").textContent = JSON.stringify(a.explanation, null, 2);
    fill("#timeline", a.timeline.map((e) => h("li", {}, `${when(e.at)} — ${t(e.type)}`, Object.keys(e.detail || {}).length ? ` ${JSON.stringify(e.detail)}` : "")));
    // Newest first: the first one is the verdict that counts.
    fill("#feedback-history", history.map((f) => h("li", {}, `${when(f.given_at)} — ${verdictLabel(f)} (${f.given_by})`, f.note ? `: ${f.note}` : "")), t("No verdict yet."));
    TP.$("#h-detail").focus();
  }

  for (const b of document.querySelectorAll("#feedback-form button.verdict")) {
    b.addEventListener("click", () => judge(b.dataset.verdict));
  }
  for (const [k, v] of params) if (form.elements[k]) form.elements[k].value = v;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch(TP.fail);
  });
  await load();
  if (params.get("id")) await detail(params.get("id"));
});
