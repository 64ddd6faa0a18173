"use strict";
TP.page(async () => {
  const { t, api, h, fill, when } = TP;
  let current = null;

  function showSecret(secret) {
    TP.$("#secret").value = secret;
    TP.$("#secret-box").hidden = false;
    TP.$("#h-secret").focus();
  }

  async function load() {
    if (!TP.can("admin")) {
      TP.$("#admin-only").hidden = false;
      fill("#webhooks", [], t("Administrators only."));
      return;
    }
    const hooks = await api("/v1/webhooks");
    fill("#webhooks", hooks.map((w) => h("tr", { "data-webhook": w.id },
      h("td", {}, w.url), h("td", {}, w.description), h("td", {}, t(w.min_severity)),
      h("td", {}, w.enabled ? t("yes") : `${t("no")}${w.disabled_reason ? ` (${w.disabled_reason})` : ""}`),
      h("td", {},
        TP.actionButton(t("Send a test"), "admin", () => test(w.id), "secondary"), " ",
        TP.actionButton(t("Delivery log"), "admin", () => log(w.id), "secondary"), " ",
        TP.actionButton(t("Rotate secret"), "admin", () => rotate(w.id), "secondary"), " ",
        TP.actionButton(t("Delete"), "admin", () => remove(w.id), "danger")))), t("No subscription yet."));
  }

  async function test(id) {
    try {
      const r = await api(`/v1/webhooks/${encodeURIComponent(id)}/test`, { method: "POST" });
      if (r.status_code !== null && r.status_code < 300) TP.status(t("Test delivered: HTTP {code} in {ms} ms.", { code: r.status_code, ms: Math.round(r.latency_ms) }));
      else TP.status(t("Test failed: {why}", { why: r.error || `HTTP ${r.status_code}` }), "error");
    } catch (err) {
      TP.fail(err);
    }
  }

  async function log(id) {
    current = id;
    const deliveries = await api(`/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`);
    TP.$("#log").hidden = false;
    fill("#deliveries", deliveries.map((d) => h("tr", {},
      h("td", {}, when(d.created_at)), h("td", {}, t(d.event_type)), h("td", {}, h("a", { href: `/alerts?id=${encodeURIComponent(d.alert_id)}` }, d.alert_id)),
      h("td", {}, t(d.status)), h("td", {}, String(d.attempts)),
      h("td", {}, d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error || "—"),
      h("td", {}, TP.actionButton(t("Redeliver"), "admin", () => redeliver(id, d.id), "secondary")))), t("Nothing delivered yet."));
    TP.$("#h-log").focus();
  }

  async function redeliver(id, deliveryId) {
    try {
      await api(`/v1/webhooks/${encodeURIComponent(id)}/deliveries/${deliveryId}/redeliver`, { method: "POST" });
      TP.status(t("Delivery queued again."));
      await log(id);
    } catch (err) {
      TP.fail(err);
    }
  }

  async function rotate(id) {
    if (!confirm(t("Rotate the secret? The old one keeps signing for a while, then stops."))) return;
    try {
      const r = await api(`/v1/webhooks/${encodeURIComponent(id)}/rotate-secret`, { method: "POST" });
      showSecret(r.secret);
      TP.status(t("New secret; the old one signs until {at}.", { at: when(r.previous_secret_expires_at) }));
    } catch (err) {
      TP.fail(err);
    }
  }

  async function remove(id) {
    if (!confirm(t("Delete this subscription and its pending deliveries?"))) return;
    try {
      await api(`/v1/webhooks/${encodeURIComponent(id)}`, { method: "DELETE" });
      if (current === id) TP.$("#log").hidden = true;
      await load();
    } catch (err) {
      TP.fail(err);
    }
  }

  TP.$("#webhook-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target));
    try {
      const created = await api("/v1/webhooks", { method: "POST", body: { url: f.url, description: f.description, min_severity: f.min_severity } });
      showSecret(created.secret);
      TP.status(t("Subscription created."));
      ev.target.reset();
      await load();
    } catch (err) {
      TP.fail(err);
    }
  });
  TP.$("#copy-secret").addEventListener("click", () => TP.copy(TP.$("#secret").value));
  await load();
});
