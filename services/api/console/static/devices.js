"use strict";
TP.page(async () => {
  const { t, api, h, fill, when, ago, num } = TP;
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

  async function detail(id) {
    const since = new Date(Date.now() - 7 * 86400e3).toISOString();
    const [readings, dead] = await Promise.all([
      api(`/v1/devices/${encodeURIComponent(id)}/readings?start=${encodeURIComponent(since)}&bucket=15m&limit=20000`),
      api(`/v1/deadletters?device_id=${encodeURIComponent(id)}&limit=20`),
    ]);
    TP.$("#device-detail").hidden = false;
    TP.$("#h-dev").textContent = id;
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

  function body(fields) {
    const out = { id: fields.id, domain: fields.domain };
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
    return `mosquitto_pub -h ${m.host} -p ${m.port} -q ${m.qos} -u '${m.username}' -P '${m.password}' \\\n  -t '${m.topic}' -m '${payload}'`;
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
        creds.push([c.device.id, c.mqtt.host, c.mqtt.port, c.mqtt.username, c.mqtt.password, c.mqtt.topic].join(","));
      } catch (err) {
        results.push(h("li", { class: "sev-critical" }, `${rec.id || "?"}: ${err.message}`));
      }
    }
    fill("#csv-result", results, t("The file holds no device."));
    if (creds.length > 1) {
      const url = URL.createObjectURL(new Blob([creds.join("\n") + "\n"], { type: "text/csv" }));
      TP.$("#csv-result").append(h("li", {}, h("a", { href: url, download: "townpulse-credentials.csv" }, t("Download the credentials (once)"))));
    }
    TP.status(t("{ok} of {n} devices registered.", { ok: creds.length - 1, n: records.length }));
    await load();
  });

  TP.$("#device-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load().catch(TP.fail);
  });
  TP.$("#more").addEventListener("click", () => load(false).catch(TP.fail));
  await load();
  if (location.hash.length > 1) await detail(decodeURIComponent(location.hash.slice(1)));
});
