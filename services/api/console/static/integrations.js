"use strict";
TP.page(async () => {
  const { t, api, h, fill, when, ago } = TP;
  const KINDS = { chirpstack: "ChirpStack", tts: "The Things Stack", mqtt_json: t("mapped JSON") };
  const form = TP.$("#integration-form");

  function state(i) {
    const s = i.status || {};
    // Over HTTP the server comes to us: there is no connection to be up or down.
    if (i.transport === "http") return h("span", {}, i.enabled === false ? t("disabled") : t("ready to receive"));
    if (i.enabled === false) return h("span", {}, t("disabled"));
    return h("span", { class: s.connected ? "conn-ok" : "sev-critical" }, s.connected ? t("connected") : t("not connected"));
  }

  function lastError(s) {
    if (!s || !s.last_error) return "—";
    return `${s.last_error} (${ago(s.last_error_at)})`;
  }

  async function load() {
    const items = await api("/v1/integrations");
    fill("#integrations", items.map((i) => {
      const s = i.status || {};
      return h("tr", { "data-integration": i.id },
        h("td", {}, i.name ? `${i.name} (${i.id})` : i.id),
        h("td", {}, KINDS[i.kind] || i.kind),
        h("td", {}, i.transport === "mqtt" ? `MQTT ${i.mqtt_host || ""}${i.mqtt_port ? `:${i.mqtt_port}` : ""}${i.mqtt_tls ? " (TLS)" : ""}` : "HTTP"),
        h("td", { class: "state" }, state(i)),
        h("td", { class: "last-uplink" }, s.last_uplink_at ? `${when(s.last_uplink_at)} (${ago(s.last_uplink_at)})` : t("never")),
        h("td", { class: "uplinks" }, String(s.uplinks_last_hour ?? 0)),
        h("td", { class: "errors" }, String(s.errors_last_hour ?? 0)),
        h("td", { class: "last-error" }, lastError(s)),
        h("td", {},
          TP.actionButton(t("Test the connection"), "admin", () => test(i.id), "secondary test"), " ",
          TP.actionButton(i.enabled === false ? t("Enable") : t("Disable"), "admin", () => toggle(i), "secondary toggle"), " ",
          TP.actionButton(t("Remove"), "admin", () => remove(i.id), "danger remove")));
    }), t("No integration yet."));
  }

  async function test(id) {
    TP.status(t("Testing {id}...", { id }));
    try {
      const r = await api(`/v1/integrations/${encodeURIComponent(id)}/test`, { method: "POST" });
      if (r.ok) TP.status(t("Connection OK: {detail}", { detail: r.detail }));
      else TP.status(t("Connection failed: {detail}", { detail: r.detail }), "error");
    } catch (err) {
      TP.fail(err);
    }
  }

  async function toggle(i) {
    try {
      await api(`/v1/integrations/${encodeURIComponent(i.id)}`, { method: "PATCH", body: { enabled: i.enabled === false } });
      TP.status(i.enabled === false ? t("Integration {id} enabled.", { id: i.id }) : t("Integration {id} disabled.", { id: i.id }));
      await load();
    } catch (err) {
      TP.fail(err);
    }
  }

  async function remove(id) {
    if (!confirm(t("Remove integration {id}? Its uplinks stop arriving at once.", { id }))) return;
    try {
      await api(`/v1/integrations/${encodeURIComponent(id)}`, { method: "DELETE" });
      TP.status(t("Integration {id} removed.", { id }));
      await load();
    } catch (err) {
      TP.fail(err);
    }
  }

  // The URL the network server is given. ChirpStack appends `?event=<type>` to the URL it is
  // given, so it gets the path without the query; a TTS webhook posts to its base URL plus an
  // empty uplink path.
  function endpoint(created) {
    const path = String(created.ingest_path || "").split("?")[0];
    return `${location.origin}${path}`;
  }

  function showHttp(created) {
    TP.$("#http-url").value = endpoint(created);
    TP.$("#http-secret").value = created.http_secret || "";
    TP.$("#http-header").value = `Bearer ${created.http_secret || ""}`;
    TP.$("#http-hint-chirpstack").hidden = created.kind !== "chirpstack";
    TP.$("#http-hint-tts").hidden = created.kind !== "tts";
    TP.$("#http-box").hidden = false;
    TP.$("#h-http").focus();
  }

  function body(f) {
    const out = { id: f.id, kind: f.kind, transport: f.transport };
    if (f.name) out.name = f.name;
    if (f.kind === "mqtt_json") {
      out.topic = f.topic;
      out.profile = f.profile;
    } else if (f.application) {
      out.application = f.application;
    }
    if (f.transport === "mqtt") {
      out.mqtt_host = f.mqtt_host;
      out.mqtt_port = Number(f.mqtt_port || (f.mqtt_tls ? 8883 : 1883));
      out.mqtt_tls = Boolean(f.mqtt_tls);
      if (f.mqtt_username) out.mqtt_username = f.mqtt_username;
      if (f.mqtt_password) out.mqtt_password = f.mqtt_password;
      if (f.ca_certificate && f.ca_certificate.trim()) out.ca_certificate = f.ca_certificate.trim() + "\n";
    }
    return out;
  }

  // The broker's fields only matter over MQTT (hidden, and not required, over HTTP); devices'
  // own JSON comes over MQTT only, with a topic and the profile that maps it.
  function transportChanged() {
    const json = TP.$("#i-kind").value === "mqtt_json";
    const transport = TP.$("#i-transport");
    transport.querySelector("option[value=http]").disabled = json;
    if (json) transport.value = "mqtt";
    const mqtt = transport.value === "mqtt";
    TP.$("#mqtt-fields").hidden = !mqtt;
    TP.$("#i-host").required = mqtt;
    TP.$("#json-fields").hidden = !json;
    TP.$("#i-topic").required = json;
    TP.$("#i-profile").required = json;
    TP.$("#app-fields").hidden = json;
  }
  TP.$("#i-transport").addEventListener("change", transportChanged);
  TP.$("#i-kind").addEventListener("change", transportChanged);
  // The usual port follows the TLS box unless the user typed another.
  TP.$("#i-tls").addEventListener("change", () => {
    const port = TP.$("#i-port");
    if (port.value === "1883" || port.value === "8883" || !port.value) port.value = TP.$("#i-tls").checked ? "8883" : "1883";
  });
  transportChanged();

  async function loadProfiles() {
    const profiles = await api("/v1/profiles");
    fill("#i-profile", profiles.map((p) => h("option", { value: p.name }, `${p.name} (${t(p.domain)})`)));
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    try {
      const created = await api("/v1/integrations", { method: "POST", body: body(f) });
      TP.status(t("Integration {id} added.", { id: created.id }));
      form.reset();
      transportChanged();
      if (created.transport === "http") showHttp(created);
      else TP.$("#http-box").hidden = true;
      await load();
    } catch (err) {
      TP.fail(err);
    }
  });
  TP.$("#copy-url").addEventListener("click", () => TP.copy(TP.$("#http-url").value));
  TP.$("#copy-header").addEventListener("click", () => TP.copy(TP.$("#http-header").value));
  TP.$("#copy-secret").addEventListener("click", () => TP.copy(TP.$("#http-secret").value));
  TP.$("#refresh").addEventListener("click", () => load().catch(TP.fail));
  await TP.settle(load(), loadProfiles());
});
