"""Early warnings: the platform watches itself and raises ordinary alerts before it fails a town.

A filling disk under a data directory (with the days left at the current growth rate), a backup
older than expected, a certificate of the stack nearing its end, a service that keeps
restarting. Each condition is an episode on the `alerts` topic (domain "platform"): a `start`
when it begins, an `end` when it clears, so the alerts service opens one alert per condition,
resolves it, and sends the same webhooks as for a device. `checks` holds the pure rules,
`observe` reads the machine, `runner` is the loop (`python -m townpulse.watch`), started by the
local stack under a keeper and by the `townpulse-watch` systemd unit.
"""
