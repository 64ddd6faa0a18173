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
      // Where to go was checked by the server (one of the console's own pages, else "/"):
      // the page's own query string is never followed, so no open redirect to another site.
      const next = form.dataset.next || "/";
      location.assign(next.startsWith("/") && !/^\/[\/\\]/.test(next) ? next : "/");
    } catch (err) {
      sessionStorage.removeItem(TP.KEY);
      TP.status(err.message, "error");
      TP.$("#api-key").focus();
    }
  });
  TP.$("#api-key").focus();
});
