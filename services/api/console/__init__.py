"""The operator console: pages served by the operator API; their data comes from its JSON API.

Pages are rendered on the server (Jinja2, gettext catalogues) and fill themselves from the same
`/v1/...` endpoints an operator would call with curl, with the API key the user signed in with:
the console has no privilege of its own, so the API's role checks are the console's.

The package imports none of its modules: `services.api.console.routes` imports its siblings
through the package, which importing routes from here would make a cycle. The app mounts the
console with `services.api.console.routes.install`.
"""
