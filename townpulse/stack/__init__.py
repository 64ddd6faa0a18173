"""The local stack: real PostgreSQL, Apache Kafka (KRaft) and Mosquitto, then the services.

Everything lives under one run directory (`.run/` by default): data, logs, pid files, generated
secrets and `stack.env`. One module per component (`postgres`, `kafka`, `mosquitto`,
`services`), the processes' plumbing (`processes`), what the stack is made of (`config`), and
`Stack` (`runner`), which puts them together.
"""

from townpulse.stack.config import (
    DEPLOY,
    INFRA,
    REPO,
    SERVICES,
    ServiceSpec,
    StackError,
    StackSettings,
)
from townpulse.stack.processes import read_env_file
from townpulse.stack.runner import Stack

__all__ = [
    "DEPLOY",
    "INFRA",
    "REPO",
    "SERVICES",
    "ServiceSpec",
    "Stack",
    "StackError",
    "StackSettings",
    "read_env_file",
]
