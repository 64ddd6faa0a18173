"use strict";
TP.page(async () => {
  const { t, h, fill } = TP;
  // The open-data catalogue is public (no key). Until the town publishes something, or while
  // this API has no catalogue yet, say so rather than show an error.
  let body = null;
  try {
    const r = await fetch("/open-data/", { headers: { Accept: "application/json" } });
    if (r.ok) body = await r.json();
  } catch (_) {
    body = null;
  }
  // The catalogue is DCAT / schema.org JSON-LD (services/api/opendata.py catalog_jsonld).
  const sets = body ? body["dcat:dataset"] || [] : [];
  fill("#datasets", sets.map((d) => {
    const links = (d["dcat:distribution"] || []).map((x) => h("a", { href: x["schema:contentUrl"] }, ` ${x["dcat:mediaType"]}`));
    return h("li", { "data-dataset": d["dct:identifier"] }, h("strong", {}, d["dct:title"]), ` — ${d["dct:description"]}`, ` (${d["schema:license"]})`, ...links);
  }), t("Nothing is published yet."));
});
