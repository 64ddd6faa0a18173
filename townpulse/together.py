"""Several services in one process: the compact layout of a small town's machine.

    python -m townpulse.together energy waste traffic

Each named service gets its settings from its own environment, given as a JSON object in
`TOWNPULSE_MEMBER_ENV_<NAME>` (its port, its instance name...) over the process's common one, as
if it were a process of its own; then all of them run in one interpreter, each on its own port
(shared.http.serve_together). The domain services each import River, NumPy and SciPy: about
130 MB a process before their first model. Together they pay for those once
(bench.footprint, docs/performance.md). They also share one core and fail together: a task that
dies in one restarts all three (their checkpoints make that lossless, docs/runtime.md).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

from fastapi import FastAPI

from shared.http import serve_together
from shared.settings import ServiceSettings
from townpulse.stack.config import SERVICES, member_env_var


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _factory(name: str) -> tuple[Callable[[ServiceSettings], FastAPI], type[ServiceSettings]]:
    spec = next((s for s in SERVICES if s.name == name), None)
    if spec is None:
        raise SystemExit(f"unknown service {name!r}: one of {', '.join(s.name for s in SERVICES)}")
    create_app = importlib.import_module(f"{spec.module}.app").create_app
    settings_cls = getattr(
        importlib.import_module(f"{spec.module}.settings"), f"{name.capitalize()}Settings"
    )
    return create_app, settings_cls


def build(names: Sequence[str]) -> list[tuple[FastAPI, ServiceSettings, str]]:
    members = []
    for name in names:
        create_app, settings_cls = _factory(name)
        own = json.loads(os.environ.get(member_env_var(name), "{}"))
        # Settings read their environment once, here: each service sees its own.
        with _environ(own):
            settings = settings_cls()
            members.append((create_app(settings), settings, name))
    return members


def main(argv: Sequence[str] | None = None) -> None:
    names = list(sys.argv[1:] if argv is None else argv)
    if len(set(names)) != len(names) or not names:
        raise SystemExit("usage: python -m townpulse.together SERVICE [SERVICE...] (each once)")
    serve_together(build(names))


if __name__ == "__main__":
    main()
