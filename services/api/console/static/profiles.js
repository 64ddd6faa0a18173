"use strict";
TP.page(async () => {
  const { t, api, h, fill, when } = TP;
  const params = new URLSearchParams(location.search);
  let profiles = [];
  let codecNames = new Set();
  let repository = [];

  // The Device Repository's "<vendor>/<codec>" is imported as the codec "<vendor>-<codec>".
  const codecOf = (path) => path.replace("/", "-");

  function showDefinition(name) {
    const p = profiles.find((x) => x.name === name);
    TP.$("#definition").textContent = p ? JSON.stringify(p.definition, null, 2) : "";
  }

  function choose(name) {
    TP.$("#t-profile").value = name;
    showDefinition(name);
    TP.$("#h-try").focus();
  }

  // A profile's codec must be installed before its devices' bytes can be decoded: say so.
  function codecCell(name) {
    if (!name) return "—";
    if (codecNames.has(name)) return name;
    const importable = repository.some((path) => codecOf(path) === name);
    return h("span", {}, name, " ", h("span", { class: "sev-warning" }, importable ? t("(not installed: import it below)") : t("(not installed)")));
  }

  function showProfiles() {
    fill("#profiles", profiles.map((p) => h("tr", { "data-profile": p.name },
      h("td", {}, p.name), h("td", {}, t(p.domain)), h("td", { class: "codec" }, codecCell(p.codec)),
      h("td", {}, p.shipped ? t("yes") : t("no")),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => choose(p.name) }, t("Try it"))))), t("No profile yet."));
    const select = TP.$("#t-profile");
    const chosen = select.value || params.get("profile");
    fill(select, profiles.map((p) => h("option", { value: p.name }, p.name)));
    if (chosen && profiles.some((p) => p.name === chosen)) select.value = chosen;
    showDefinition(select.value);
  }

  function showCodecs(codecs) {
    fill("#codecs", codecs.map((c) => h("tr", { "data-codec": `${c.name}@${c.version}` },
      h("td", {}, c.name), h("td", {}, String(c.version)), h("td", {}, c.source),
      h("td", {}, String(c.examples ?? 0)), h("td", {}, when(c.created_at)))), t("No codec yet."));
    fill("#c-path", repository.map((path) => h("option", { value: path }, codecNames.has(codecOf(path)) ? `${path} (${t("installed")})` : path)));
    if (!repository.length) TP.$("#c-path").append(h("option", { value: "" }, t("The Device Repository is not available here.")));
    // Offered first: the codec a profile needs and nobody installed yet.
    const needed = profiles.map((p) => p.codec).find((c) => c && !codecNames.has(c));
    const path = needed && repository.find((x) => codecOf(x) === needed);
    if (path) TP.$("#c-path").value = path;
  }

  async function load() {
    const [p, codecs, repo] = await Promise.all([api("/v1/profiles"), api("/v1/codecs"), api("/v1/codecs/repository")]);
    profiles = p;
    repository = repo;
    codecNames = new Set(codecs.map((c) => c.name));
    showProfiles();
    showCodecs(codecs);
  }

  function showResult(r) {
    TP.$("#try-result").hidden = false;
    fill("#try-figures", [
      h("dt", {}, "Codec"), h("dd", {}, r.codec ? `${r.codec.name} v${r.codec.version}` : "—"),
    ]);
    TP.$("#try-error").hidden = !r.error;
    TP.$("#try-reason").textContent = r.error ? r.error.reason : "";
    TP.$("#try-detail").textContent = r.error ? r.error.detail : "";
    fill("#try-readings", (r.readings || []).map((x) => h("tr", {},
      h("td", {}, x.metric), h("td", {}, String(x.value)), h("td", {}, x.unit || ""))), t("No reading."));
    fill("#try-warnings", (r.warnings || []).map((w) => h("li", {}, typeof w === "string" ? w : JSON.stringify(w))), t("No warning."));
    TP.$("#try-decoded").textContent = r.decoded === null || r.decoded === undefined ? "—" : JSON.stringify(r.decoded, null, 2);
  }

  TP.$("#try-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target));
    const body = { payload: f.payload.replace(/\s+/g, ""), f_port: Number(f.f_port) };
    if (f.metadata && f.metadata.trim()) {
      try {
        body.metadata = JSON.parse(f.metadata);
      } catch (err) {
        TP.status(t("The metadata is not valid JSON: {why}", { why: err.message }), "error");
        TP.$("#t-metadata").focus();
        return;
      }
      if (body.metadata === null || typeof body.metadata !== "object" || Array.isArray(body.metadata)) {
        TP.status(t("The metadata must be a JSON object."), "error");
        TP.$("#t-metadata").focus();
        return;
      }
    }
    try {
      const r = await api(`/v1/profiles/${encodeURIComponent(f.profile)}/try`, { method: "POST", body });
      showResult(r);
      if (r.error) TP.status(t("Rejected: {reason}", { reason: r.error.reason }), "error");
      else TP.status(t("Readings made: {n}.", { n: (r.readings || []).length }));
    } catch (err) {
      // Refused before decoding (bytes that are neither hex nor base64, a codec not installed):
      // shown where the result goes, with the API's reason.
      if (err instanceof TP.ApiError && (err.status === 422 || err.status === 404)) {
        showResult({ codec: null, decoded: null, warnings: [], readings: [], error: { reason: `HTTP ${err.status}`, detail: err.message } });
      }
      TP.fail(err);
    }
  });
  TP.$("#t-profile").addEventListener("change", () => showDefinition(TP.$("#t-profile").value));

  TP.$("#import-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const path = TP.$("#c-path").value;
    if (!path) return;
    try {
      const c = await api("/v1/codecs/import", { method: "POST", body: { path } });
      await load();
      TP.status(t("Codec {name} version {version} imported.", { name: c.name, version: c.version }));
    } catch (err) {
      TP.fail(err);
    }
  });

  await load();
  if (params.get("profile")) choose(params.get("profile"));
});
