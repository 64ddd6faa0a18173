"use strict";
TP.page(async () => {
  const form = TP.$("#signin-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = TP.$("#api-key").value.trim();
    sessionStorage.setItem(TP.KEY, key);
    try {
      const r = await fetch("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
      if (!r.ok) throw new Error(TP.t("This key was refused."));
      const next = new URLSearchParams(location.search).get("next") || "/";
      // Only paths of this console: never an open redirect to another site.
      location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } catch (err) {
      sessionStorage.removeItem(TP.KEY);
      TP.status(err.message, "error");
      TP.$("#api-key").focus();
    }
  });
  TP.$("#api-key").focus();
});
