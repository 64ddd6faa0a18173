"""TownPulse as a service of the machine: systemd units for every component, a target that
groups them, a daily backup timer (`townpulse service install|status|uninstall`).

`units` renders the unit files from the stack's own description of each component
(`townpulse.stack`'s `launch()`s), so the units start the same command lines as `make up`;
`commands` is the CLI, including the steps the units run before and after a component
(`townpulse service prepare|wait`).
"""
