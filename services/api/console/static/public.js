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
  const sets = body ? (Array.isArray(body) ? body : body.datasets || body.dataset || body.items || []) : [];
  fill("#datasets", sets.map((d) => {
    const links = (d.distribution || d.downloads || []).map((x) => h("a", { href: x.downloadURL || x.url || x.href }, ` ${x.format || x.mediaType || t("download")}`));
    return h("li", {}, h("strong", {}, d.title || d.name || d.id), d.description ? ` — ${d.description}` : "", d.license ? ` (${d.license})` : "", ...links);
  }), t("Nothing is published yet."));
});
