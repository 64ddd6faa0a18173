/* TownPulse console core: the API key (this tab only), API calls, the key's role, dates in the
   town's time zone, translations, DOM helpers. Page scripts call TP.page(init). Data from the API
   is only ever put in the page as text (textContent), never parsed as HTML. */
"use strict";
window.TP = (() => {
  const root = document.documentElement;
  const lang = root.lang || "fr";
  const tz = root.dataset.tz || "Europe/Paris";
  const I18N = JSON.parse(document.getElementById("tp-i18n").textContent || "{}");
  // sessionStorage: the key lives as long as the tab, never on disk beyond the session.
  const KEY = "townpulse.apiKey";
  const RANK = { viewer: 0, operator: 1, admin: 2 };
  let role = null;

  function t(msgid, vars) {
    let out = I18N[msgid] || msgid;
    for (const [k, v] of Object.entries(vars || {})) out = out.split(`{${k}}`).join(String(v));
    return out;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function detailOf(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    return `HTTP ${status}`;
  }

  async function api(path, { method = "GET", body, auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) headers.Authorization = `Bearer ${sessionStorage.getItem(KEY) || ""}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (r.status === 401 && auth) {
      signOut();
      throw new ApiError(401, t("Your key was refused: sign in again."));
    }
    if (!r.ok) throw new ApiError(r.status, detailOf(data, r.status));
    return data;
  }

  function signOut() {
    sessionStorage.removeItem(KEY);
    const next = location.pathname + location.search;
    location.assign(`/signin?next=${encodeURIComponent(next)}`);
  }

  // ---- formatting: the town's clock, the user's language ----
  const dtFormat = new Intl.DateTimeFormat(lang, { timeZone: tz, dateStyle: "short", timeStyle: "short" });
  const timeFormat = new Intl.DateTimeFormat(lang, { timeZone: tz, hour: "2-digit", minute: "2-digit" });
  const tickFormat = new Intl.DateTimeFormat(lang, { timeZone: tz, weekday: "short", hour: "2-digit", minute: "2-digit" });
  const dayTickFormat = new Intl.DateTimeFormat(lang, { timeZone: tz, weekday: "short", day: "numeric", month: "short" });
  const relFormat = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  function when(iso) {
    return iso ? dtFormat.format(new Date(iso)) : "—";
  }
  function clock(iso) {
    return iso ? timeFormat.format(new Date(iso)) : "—";
  }
  function ago(iso) {
    if (!iso) return "—";
    const s = (new Date(iso).getTime() - Date.now()) / 1000;
    const a = Math.abs(s);
    if (a < 90) return relFormat.format(Math.round(s), "second");
    if (a < 5400) return relFormat.format(Math.round(s / 60), "minute");
    if (a < 129600) return relFormat.format(Math.round(s / 3600), "hour");
    return relFormat.format(Math.round(s / 86400), "day");
  }
  function num(x, digits = 1) {
    if (x === null || x === undefined || Number.isNaN(x)) return "—";
    return new Intl.NumberFormat(lang, { maximumFractionDigits: digits }).format(x);
  }
  // The town's calendar date (YYYY-MM-DD) of an instant.
  function townDate(d = new Date()) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
    return parts;
  }

  // ---- DOM ----
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== "string") el[k] = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (sel) => document.querySelector(sel);
  function fill(target, nodes, empty) {
    const el = typeof target === "string" ? $(target) : target;
    el.replaceChildren(...nodes);
    if (!nodes.length && empty) {
      const cols = el.tagName === "TBODY" ? el.closest("table").querySelectorAll("thead th").length : 0;
      el.append(cols ? h("tr", {}, h("td", { colspan: cols, class: "muted" }, empty)) : h("li", { class: "muted" }, empty));
    }
  }
  function status(message, kind = "ok") {
    const el = $("#status");
    el.className = `status ${kind}`;
    el.textContent = message;
  }
  function fail(err) {
    if (err && err.status === 403) status(t("Your key's role does not allow this (the API answered 403)."), "error");
    else status(`${t("Error")}: ${err && err.message ? err.message : err}`, "error");
  }

  // ---- roles: hide nothing the API would allow, offer nothing it would refuse ----
  function can(minRole) {
    return role !== null && (RANK[role] ?? -1) >= RANK[minRole];
  }
  function applyRoles(scope = document) {
    for (const el of scope.querySelectorAll("[data-min-role]")) {
      if (!can(el.dataset.minRole)) {
        el.disabled = true;
        el.title = t("Your key's role cannot do this");
      }
    }
  }
  function actionButton(label, minRole, onclick, cls) {
    const b = h("button", { type: "button", class: cls, "data-min-role": minRole, onclick }, label);
    if (!can(minRole)) {
      b.disabled = true;
      b.title = t("Your key's role cannot do this");
    }
    return b;
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      status(t("Copied."));
    } catch (_) {
      status(t("Select the text and copy it by hand."), "error");
    }
  }

  function chart(el, { x, series, band, bands }) {
    el.replaceChildren();
    if (!window.uPlot) {
      el.append(h("p", { class: "muted" }, t("Charts are unavailable (the chart library is not installed).")));
      return null;
    }
    if (!x.length) {
      el.append(h("p", { class: "muted" }, t("No data yet.")));
      return null;
    }
    const opts = {
      width: Math.max(300, el.clientWidth || 800),
      height: 300,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      series: [{ label: t("Time") }, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: s.width || 2, dash: s.dash, fill: s.fill, points: { show: false } }))],
      bands: bands || (band ? [band] : []),
      // Tick labels in the town's time and the user's language (uPlot's own are US English).
      // Ticks at least a label's width apart (uPlot's default 50 px let "Mon 14:00" labels
      // overlap over three days), and days rather than hours once ticks are a day or more apart.
      axes: [
        {
          space: 90,
          values: (u, splits, axis, space, incr) =>
            splits.map((v) => (incr >= 86400 ? dayTickFormat : tickFormat).format(new Date(v * 1000))),
        },
        { size: 60 },
      ],
      // Room on the right for half the last tick's label (centred on its tick, it was cut off
      // at the canvas's edge); the other sides keep uPlot's own.
      padding: [null, 48, null, null],
      legend: { live: true },
    };
    return new uPlot(opts, [x, ...series.map((s) => s.data)], el);
  }

  // ---- the town plan: devices drawn from their coordinates, no map tiles (nothing fetched from
  // outside) ----
  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }
  // Equirectangular projection of points' coordinates (lat, lon) into a w x hgt box.
  function projector(points, w, hgt, margin = 20) {
    const lats = points.map((p) => p.lat), lons = points.map((p) => p.lon);
    const lat0 = Math.min(...lats), lat1 = Math.max(...lats), lon0 = Math.min(...lons), lon1 = Math.max(...lons);
    const kx = Math.cos((((lat0 + lat1) / 2) * Math.PI) / 180);
    const spanX = Math.max((lon1 - lon0) * kx, 1e-6), spanY = Math.max(lat1 - lat0, 1e-6);
    const scale = Math.min((w - 2 * margin) / spanX, (hgt - 2 * margin) / spanY);
    return (p) => [margin + (p.lon - lon0) * kx * scale, hgt - margin - (p.lat - lat0) * scale];
  }
  const located = (items) => items.filter((d) => d.lat !== null && d.lon !== null && d.lat !== undefined && d.lon !== undefined);

  async function page(init) {
    document.getElementById("signout")?.addEventListener("click", signOut);
    if (root.dataset.page === "public" || root.dataset.page === "signin") {
      await init(null);
      performance.mark("tp-ready");
      root.dataset.ready = "true";
      return;
    }
    if (!sessionStorage.getItem(KEY)) {
      signOut();
      return;
    }
    const ready = () => {
      // What tests and the page-load benchmark wait for: the page's data is on screen.
      performance.mark("tp-ready");
      root.dataset.ready = "true";
    };
    try {
      const me = await api("/v1/me");
      role = me.role;
      const who = document.getElementById("whoami");
      if (who) who.textContent = t("Signed in: {role} key {id}", { role: t(me.role), id: me.key_id });
      applyRoles();
      await init(me);
    } catch (err) {
      fail(err);
    }
    ready();
  }

  // Every part of a page loads even when another fails; the first failure is then reported.
  async function settle(...promises) {
    const results = await Promise.allSettled(promises);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    return results.map((r) => r.value);
  }

  return { t, api, ApiError, settle, when, clock, ago, num, townDate, h, $, fill, status, fail, can, applyRoles, actionButton, copy, chart, svg, projector, located, page, KEY, lang, tz };
})();
