"use strict";
TP.page(async () => {
  const { t, api, h, fill, num, when, ago } = TP;
  const ROUTE_COLOURS = ["#0b5cad", "#6a1b9a", "#00695c", "#ad1457", "#4e342e", "#283593"];
  const level = (p) => (p >= 80 ? "high" : p >= 50 ? "mid" : "low");
  const COLOURS = { low: "#2e7d32", mid: "#d08a00", high: "#c62828" };
  const { svg: s, projector } = TP;

  function draw(bins, plan) {
    const svg = TP.$("#plan-map");
    svg.replaceChildren();
    const located = TP.located(bins);
    const points = plan ? [...located, plan.depot] : located;
    if (!points.length) return;
    const proj = projector(points, 600, 450);
    if (plan) {
      plan.routes.forEach((r, i) => {
        if (!r.stops.length) return;
        const pts = [plan.depot, ...r.stops, plan.depot].map((p) => proj(p).join(",")).join(" ");
        svg.append(s("polyline", { points: pts, fill: "none", stroke: ROUTE_COLOURS[i % ROUTE_COLOURS.length], "stroke-width": 2, "stroke-opacity": 0.8, class: "route" }));
        r.stops.forEach((b, k) => {
          const [x, y] = proj(b);
          svg.append(s("text", { x: x + 5, y: y - 5, "font-size": 10, fill: "#1a1a1a" }, String(k + 1)));
        });
      });
    }
    for (const b of located) {
      const [x, y] = proj(b);
      const c = s("circle", { cx: x, cy: y, r: 4, fill: COLOURS[level(b.level_pct)], stroke: "#fff", "stroke-width": 0.8 });
      c.append(s("title", {}, `${b.name || b.id}: ${num(b.level_pct, 0)} %`));
      svg.append(c);
    }
    if (plan) {
      const [x, y] = proj(plan.depot);
      const d = s("rect", { x: x - 7, y: y - 7, width: 14, height: 14, fill: "#12324f" });
      d.append(s("title", {}, t("Depot")));
      svg.append(d);
    }
  }

  const bins = await api("/v1/waste/bins?limit=10000");
  fill("#bins", bins.items.map((b) => h("tr", {},
    h("td", {}, b.name ? `${b.name} (${b.id})` : b.id),
    h("td", {}, h("span", { class: `fill fill-${level(b.level_pct)}` }, `${num(b.level_pct, 0)} %`)),
    h("td", {}, num(b.rate_pct_h, 2)),
    h("td", {}, b.full_at ? `${when(b.full_at)} (${ago(b.full_at)})` : "—"),
    h("td", {}, when(b.last_collection)))), t("No bin has reported yet."));
  draw(bins.items, null);

  const dateInput = TP.$("#plan-date");
  dateInput.value = TP.townDate();
  // ?depot=lat,lon plans from another depot than the configured one (or when none is).
  const query = new URLSearchParams(location.search);
  const depot = query.get("depot");
  if (query.get("vehicles")) TP.$("#vehicles").value = query.get("vehicles");
  if (query.get("shift_h")) TP.$("#shift-h").value = query.get("shift_h");
  // Why the plan uses fewer trucks than asked, in the page's language (the API says it in
  // English in trucks.text).
  function trucksNote(note) {
    if (!note.reason) return "";
    // Hours in the page's language ("0,41 h" in French).
    const n = { ...note, shift_h: num(note.shift_h, 2), longest_h: num(note.longest_h, 2) };
    if (n.reason === "too_short") return t("{used} of {asked} trucks: no bin to collect fits in one truck's shift or load.", n);
    if (n.reason === "none") return t("{used} of {asked} trucks: no bin to collect in this round.", n);
    let text = n.shift_h
      ? t("{used} of {asked} trucks: the {bins} bins to collect fit in {used} shift(s) of {shift_h} h (the longest route takes {longest_h} h).", n)
      : t("{used} of {asked} trucks: the {bins} bins to collect fit in {used} truck(s).", n);
    if (n.capacity_bins) text += ` ${t("At most {capacity_bins} bins per truck.", n)}`;
    return text;
  }
  async function plan() {
    const vehicles = Number(TP.$("#vehicles").value) || 1;
    TP.status(t("Planning the round…"));
    let p;
    try {
      const q = new URLSearchParams({ date: dateInput.value, vehicles: String(vehicles) });
      if (depot) q.set("depot", depot);
      if (TP.$("#shift-h").value) q.set("shift_h", TP.$("#shift-h").value);
      p = await api(`/v1/waste/plan?${q}`);
    } catch (err) {
      if (err.status === 422) {
        TP.status(`${t("No plan")}: ${err.message}`, "error");
        return;
      }
      throw err;
    }
    TP.status(t("Round planned."));
    fill("#plan-figures", [
      h("dt", {}, t("Round")), h("dd", {}, when(p.round_at)),
      h("dt", {}, t("Bins to collect")), h("dd", {}, `${p.bins.length} / ${p.every_bin.bins}`),
      h("dt", {}, t("Distance")), h("dd", {}, `${num(p.km, 1)} km`),
      h("dt", {}, t("Saved against visiting every bin")), h("dd", {}, `${num(p.saved_km, 1)} km, ${num(p.saved_co2_kg, 1)} kg CO2`),
      h("dt", {}, t("Not served (capacity)")), h("dd", {}, String(p.unserved.length)),
      h("dt", {}, t("Trucks")), h("dd", {}, `${p.trucks.used} / ${p.trucks.asked}`),
    ]);
    TP.$("#trucks-note").textContent = trucksNote(p.trucks);
    fill("#routes", p.routes.filter((r) => r.stops.length).map((r) => h("li", { class: "route-item" },
      h("strong", {}, t("Truck {n}", { n: r.vehicle })), ` — ${num(r.km, 1)} km, ${num(r.hours, 1)} h, ${r.stops.length} ${t("stops")}: `,
      r.stops.map((b) => b.id).join(" → "))), t("No bin needs collecting in this round."));
    draw(bins.items, p);
  }
  TP.$("#plan-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    plan().catch(TP.fail);
  });
  await plan();
});
