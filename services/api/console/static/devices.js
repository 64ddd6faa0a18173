"use strict";
TP.page(async () => {
  const { t, api, h, fill, when, ago, num } = TP;
  let profiles = [];
  const PAGE = 100;
  let offset = 0;
  let rows = [];

  async function load(reset = true) {
    if (reset) { offset = 0; rows = []; }
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    const text = TP.$("#q").value.trim();
    if (text) q.set("q", text);
    if (TP.$("#d-domain").value) q.set("domain", TP.$("#d-domain").value);
    const page = await api(`/v1/console/devices?${q}`);
    rows = rows.concat(page.items);
    offset += page.items.length;
    TP.$("#devices-total").textContent = `(${rows.length} / ${page.total})`;
    TP.$("#more").hidden = rows.length >= page.total;
    fill("#devices", rows.map((d) => h("tr", { "data-device": d.id },
      h("td", {}, h("a", { href: `#${d.id}`, onclick: (ev) => { ev.preventDefault(); detail(d.id).catch(TP.fail); } }, d.id)),
      h("td", {}, t(d.domain)), h("td", {}, d.name || ""),
      h("td", { class: "last" }, d.last_reading_at ? `${when(d.last_reading_at)} (${ago(d.last_reading_at)})` : t("never")),
      h("td", {}, TP.actionButton(t("Remove"), "admin", () => remove(d.id), "danger")))), t("No device matches."));
  }

  function figures(pairs) {
    return pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
  }

  // What the device's newest uplink said about its radio link (LoRaWAN devices only).
  function showLink(link) {
    TP.$("#device-link").hidden = !link;
    if (!link) return;
    fill("#device-link-figures", figures([
      [t("Last uplink"), link.last_uplink_at ? `${when(link.last_uplink_at)} (${ago(link.last_uplink_at)})` : null],
      ["RSSI", link.rssi === null || link.rssi === undefined ? null : `${num(link.rssi, 0)} dBm`],
      ["SNR", link.snr === null || link.snr === undefined ? null : `${num(link.snr, 1)} dB`],
      [t("Gateways"), link.gateways === null || link.gateways === undefined ? null : String(link.gateways)],
      [t("Frame counter"), link.f_cnt === null || link.f_cnt === undefined ? null : String(link.f_cnt)],
      ["Codec", link.codec ? `${link.codec}${link.codec_version ? ` v${link.codec_version}` : ""}` : t("none (decoded by the network server)")],
    ]));
  }

  // A model still warming up raises no alert where it has not seen enough: say so, and of
  // which part (an energy meter's level watch waits weeks after its band is warm).
  const WARMING = {
    band: (w) => t("day types and hours until about {when}", { when: w }),
    schedule: (w) => t("out-of-hours alerts from about {when}", { when: w }),
    level_watch: (w) => t("level shifts and drifts from about {when}", { when: w }),
  };

  function modelState(model) {
    if (!model) return null;
    if (model.state === "calibrated") return t("calibrated");
    const parts = Object.entries(model.warming || {})
      .filter(([part]) => WARMING[part])
      .sort(([, a], [, b]) => a.localeCompare(b))
      .map(([part, until]) => WARMING[part](when(until)));
    if (parts.length) return `${t("learning")}: ${parts.join("; ")}`;
    if (model.learning_until) return t("learning (until about {when})", { when: when(model.learning_until) });
    return t("learning");
  }

  async function detail(id) {
    const since = new Date(Date.now() - 7 * 86400e3).toISOString();
    const [device, model, readings, dead] = await Promise.all([
      api(`/v1/devices/${encodeURIComponent(id)}`),
      api(`/v1/devices/${encodeURIComponent(id)}/model`).catch(() => null),
      api(`/v1/devices/${encodeURIComponent(id)}/readings?start=${encodeURIComponent(since)}&bucket=15m&limit=20000`),
      api(`/v1/deadletters?device_id=${encodeURIComponent(id)}&limit=20`),
    ]);
    TP.$("#device-detail").hidden = false;
    TP.$("#h-dev").textContent = device.name ? `${id} · ${device.name}` : id;
    fill("#device-figures", figures([
      [t("Domain"), t(device.domain)],
      ["DevEUI", device.dev_eui],
      [t("External id"), device.external_id],
      [t("Profile"), device.profile ? h("a", { href: `/profiles?profile=${encodeURIComponent(device.profile)}` }, device.profile) : null],
      [t("Registered"), when(device.created_at)],
      [t("Model"), modelState(model)],
    ]));
    showLink(device.link);
    // The newest buckets first: what the device said last.
    const last = readings.items.slice(-10).reverse();
    fill("#device-readings", last.map((r) => h("tr", {}, h("td", {}, when(r.bucket)), h("td", {}, r.metric), h("td", {}, num(r.avg, 3)))), t("No reading in the last 7 days."));
    fill("#device-deadletters", dead.map((d) => h("tr", {}, h("td", {}, when(d.received_at)), h("td", {}, d.reason), h("td", {}, d.detail))), t("No dead letter."));
    TP.$("#h-dev").focus();
  }

  async function remove(id) {
    if (!confirm(t("Remove device {id}? Its MQTT access is revoked at once.", { id }))) return;
    try {
      await api(`/v1/devices/${encodeURIComponent(id)}`, { method: "DELETE" });
      TP.status(t("Device {id} removed.", { id }));
      await load();
    } catch (err) {
      TP.fail(err);
    }
  }

  // DevEUIs are written many ways (colons, dashes, capitals); the API takes 16 hex digits.
  function devEui(text) {
    return String(text || "").replace(/[^0-9A-Fa-f]/g, "").toLowerCase();
  }

  function body(fields) {
    const out = { id: fields.id };
    // With a profile the domain is the profile's: sending another would only be refused.
    if (fields.profile) out.profile = fields.profile;
    else out.domain = fields.domain;
    if (fields.dev_eui) out.dev_eui = devEui(fields.dev_eui);
    if (fields.external_id) out.external_id = fields.external_id;
    if (fields.name) out.name = fields.name;
    if (fields.lat !== "" && fields.lat !== undefined && fields.lon !== "" && fields.lon !== undefined) {
      out.location = { lat: Number(fields.lat), lon: Number(fields.lon) };
    }
    return out;
  }

  // The metric each domain's service reads; the example is a reading it will accept.
  const METRIC = { energy: ["energy_kwh", 1.25], waste: ["fill_pct", 42], traffic: ["vehicles", 17] };
  function example(m, domain) {
    const [metric, value] = METRIC[domain] || ["value", 1];
    const payload = `{"ts":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","${metric}":${value}}`;
    return `mosquitto_pub -h ${m.host} -p ${m.port} -q ${m.qos} -i '${m.client_id}' -u '${m.username}' -P '${m.password}' \\\n  -t '${m.topic}' -m '${payload}'`;
  }
  // Devices on the town's network use the TLS listener, verified with the stack's own CA.
  function exampleTls(m, domain) {
    const plain = example(m, domain);
    return plain.replace(`-p ${m.port}`, `-p ${m.tls_port} --cafile ca.crt`);
  }

  TP.$("#register-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fields = Object.fromEntries(new FormData(ev.target));
    try {
      const created = await api("/v1/devices", { method: "POST", body: body(fields) });
      const m = created.mqtt;
      if (!m) {
        // Heard through its network server: there is nothing to configure on the device.
        TP.$("#credentials").hidden = true;
        TP.status(t("Device {id} registered: its uplinks are stored from now on.", { id: created.device.id }));
        ev.target.reset();
        await load();
        return;
      }
      fill("#creds", [
        h("dt", {}, t("Host")), h("dd", {}, `${m.host}:${m.port}`),
        h("dt", {}, t("User name")), h("dd", {}, m.username),
        h("dt", {}, t("Password")), h("dd", { id: "mqtt-password" }, m.password),
        h("dt", {}, t("Topic")), h("dd", {}, m.topic),
      ]);
      TP.$("#mqtt-example").value = example(m, created.device.domain);
      TP.$("#tls").hidden = !(m.tls_port && m.ca_certificate);
      if (m.tls_port && m.ca_certificate) {
        TP.$("#mqtt-ca").value = m.ca_certificate;
        TP.$("#mqtt-example-tls").value = exampleTls(m, created.device.domain);
      }
      TP.$("#credentials").hidden = false;
      TP.$("#h-creds").focus();
      TP.status(t("Device {id} registered.", { id: created.device.id }));
      ev.target.reset();
      await load();
    } catch (err) {
      TP.fail(err);
    }
  });
  TP.$("#copy-example").addEventListener("click", () => TP.copy(TP.$("#mqtt-example").value));
  TP.$("#copy-ca").addEventListener("click", () => TP.copy(TP.$("#mqtt-ca").value));
  TP.$("#copy-example-tls").addEventListener("click", () => TP.copy(TP.$("#mqtt-example-tls").value));

  // CSV: a header line naming the columns (id, domain, name, lat, lon), comma or semicolon.
  function parseCsv(text) {
    const lines = text.split(/\r?\n/).filter((l) => l.trim());
    if (!lines.length) return [];
    const sep = lines[0].includes(";") ? ";" : ",";
    const head = lines[0].split(sep).map((c) => c.trim().toLowerCase());
    return lines.slice(1).map((l) => {
      const cells = l.split(sep).map((c) => c.trim().replace(/^"(.*)"$/, "$1"));
      return Object.fromEntries(head.map((k, i) => [k, cells[i] ?? ""]));
    });
  }

  TP.$("#csv-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = TP.$("#csv-file").files[0];
    if (!file) return;
    if (file.size > 1_000_000) {
      TP.status(t("The CSV file is larger than 1 MB."), "error");
      return;
    }
    const records = parseCsv(await file.text());
    if (records.length > 2000) {
      TP.status(t("At most 2000 devices per file."), "error");
      return;
    }
    const results = [];
    const creds = [["id", "host", "port", "username", "password", "topic"].join(",")];
    for (const rec of records) {
      try {
        const c = await api("/v1/devices", { method: "POST", body: body(rec) });
        results.push(h("li", {}, `${rec.id}: ${t("registered")}`));
        if (c.mqtt) creds.push([c.device.id, c.mqtt.host, c.mqtt.port, c.mqtt.username, c.mqtt.password, c.mqtt.topic].join(","));
      } catch (err) {
        results.push(h("li", { class: "sev-critical" }, `${rec.id || "?"}: ${err.message}`));
      }
    }
    fill("#csv-result", results, t("The file holds no device."));
    if (creds.length > 1) {
      const url = URL.createObjectURL(new Blob([creds.join("\n") + "\n"], { type: "text/csv" }));
      TP.$("#csv-result").append(h("li", {}, h("a", { href: url, download: "townpulse-credentials.csv" }, t("Download the credentials (once)"))));
    }
    const ok = results.filter((li) => !li.classList.contains("sev-critical")).length;
    TP.status(t("{ok} of {n} devices registered.", { ok, n: records.length }));
    await load();
  });

  // ---- heard, not registered ----
  const HEX16 = /^[0-9a-f]{16}$/;
  const registered = new Map(); // device key -> device id, registered from this page

  async function loadHeard() {
    const heard = await api("/v1/heard-devices");
    // Registered from this page but gone from the list: still shown, with the device's link.
    for (const key of registered.keys()) {
      if (!heard.some((d) => d.device_key === key)) heard.push({ device_key: key, source: "", last_heard: null, uplinks: null, last_f_port: null });
    }
    fill("#heard", heard.map((d) => {
      const done = registered.get(d.device_key);
      return h("tr", { "data-heard": d.device_key },
        h("td", {}, h("code", {}, d.device_key)), h("td", {}, d.source || ""),
        h("td", {}, d.last_heard ? `${when(d.last_heard)} (${ago(d.last_heard)})` : "—"), h("td", {}, d.uplinks === null ? "—" : String(d.uplinks)),
        h("td", {}, d.last_f_port === null || d.last_f_port === undefined ? "—" : String(d.last_f_port)),
        h("td", { class: "heard-action" }, done
          ? registeredLink(done)
          : TP.actionButton(t("Register"), "admin", () => openHeard(d), "register")));
    }), t("Every device heard is registered."));
  }

  function registeredLink(id) {
    return h("span", {}, `${t("Registered")}: `, h("a", { href: `#${id}`, class: "device-link", onclick: (ev) => { ev.preventDefault(); detail(id).catch(TP.fail); } }, id));
  }

  // A DevEUI gives `eui-<dev_eui>`, the id the API would choose; another key (an NB-IoT
  // device's or a vendor cloud's own id) is kept as the device id where it is one.
  function suggestedId(key) {
    if (HEX16.test(key)) return `eui-${key}`;
    return key.replace(/[^A-Za-z0-9_.-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 64);
  }

  function openHeard(d) {
    const form = TP.$("#heard-form");
    form.hidden = false;
    TP.$("#hr-key").value = d.device_key;
    TP.$("#hr-id").value = suggestedId(d.device_key);
    TP.$("#hr-name").value = "";
    TP.$("#hr-metadata").value = "";
    profileChanged();
    TP.$("#h-heard-form").textContent = t("Register {key}", { key: d.device_key });
    TP.$("#h-heard-form").focus();
  }

  // The per-device settings a profile's arithmetic reads ({"device": key, "default": x}), such
  // as a bin's depth: named under the settings box, with their defaults.
  function settingsOf(definition, out = new Map()) {
    if (Array.isArray(definition)) definition.forEach((x) => settingsOf(x, out));
    else if (definition && typeof definition === "object") {
      if (typeof definition.device === "string") out.set(definition.device, definition.default);
      else Object.values(definition).forEach((x) => settingsOf(x, out));
    }
    return out;
  }

  function profileChanged() {
    const p = profiles.find((x) => x.name === TP.$("#hr-profile").value);
    const settings = p ? [...settingsOf(p.definition)] : [];
    const named = settings.map(([k, v]) => t("{key} (default {value})", { key: k, value: v })).join(", ");
    TP.$("#hr-metadata-help").textContent = settings.length
      ? t("This profile reads: {settings}.", { settings: named })
      : t("This profile reads no device setting.");
  }

  TP.$("#hr-profile").addEventListener("change", profileChanged);
  TP.$("#hr-cancel").addEventListener("click", () => { TP.$("#heard-form").hidden = true; });
  TP.$("#heard-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target));
    const key = f.key;
    const out = { id: f.id, profile: f.profile };
    if (HEX16.test(key)) out.dev_eui = key;
    else out.external_id = key;
    if (f.name) out.name = f.name;
    if (f.metadata && f.metadata.trim()) {
      try {
        out.metadata = JSON.parse(f.metadata);
      } catch (err) {
        TP.status(t("The settings are not valid JSON: {why}", { why: err.message }), "error");
        TP.$("#hr-metadata").focus();
        return;
      }
    }
    try {
      const created = await api("/v1/devices", { method: "POST", body: out });
      registered.set(key, created.device.id);
      ev.target.hidden = true;
      TP.status(t("Device {id} registered: its uplinks are stored from now on.", { id: created.device.id }));
      await TP.settle(loadHeard(), load());
    } catch (err) {
      TP.fail(err);
    }
  });

  async function loadProfiles() {
    profiles = await api("/v1/profiles");
    const options = () => profiles.map((p) => h("option", { value: p.name }, `${p.name} (${t(p.domain)})`));
    fill("#hr-profile", options());
    TP.$("#r-profile").replaceChildren(TP.$("#r-profile").options[0], ...options());
  }

  TP.$("#device-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch(TP.fail);
  });
  TP.$("#more").addEventListener("click", () => load(false).catch(TP.fail));
  await TP.settle(load(), loadHeard(), loadProfiles());
  if (location.hash.length > 1) await detail(decodeURIComponent(location.hash.slice(1)));
});
