"""docker-compose.yml cannot run here (no Docker engine): check it parses and matches the stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from townpulse.stack import INFRA, SERVICES

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
# The local stack's PostgreSQL is TimescaleDB in compose.
INFRA_IN_COMPOSE = {"postgres": "timescaledb", "kafka": "kafka", "mosquitto": "mosquitto"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_component_of_the_local_stack_is_in_compose(compose: dict) -> None:
    services = compose["services"]
    for name in INFRA:
        assert INFRA_IN_COMPOSE[name] in services, name
    for spec in SERVICES:
        assert spec.name in services, spec.name
        assert services[spec.name]["command"] == ["python", "-m", spec.module]


def test_compose_uses_timescaledb_and_real_kafka(compose: dict) -> None:
    assert compose["services"]["timescaledb"]["image"].startswith("timescale/timescaledb")
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4")


def test_compose_has_no_default_secrets() -> None:
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "MQTT_ADMIN_PASSWORD", "MQTT_GATEWAY_PASSWORD"):
        assert f"${{{var}:?" in text, f"{var} must be required, not defaulted"
        assert f"${{{var}:-" not in text


def test_service_commands_exist_as_modules() -> None:
    root = COMPOSE.parent
    for spec in SERVICES:
        assert (root / spec.module.replace(".", "/") / "__main__.py").exists()
    assert (root / "deploy" / "Dockerfile").exists()


def test_the_api_forwards_every_service_route(compose: dict) -> None:
    import json

    upstreams = json.loads(compose["services"]["api"]["environment"]["TOWNPULSE_UPSTREAMS"])
    for spec in SERVICES:
        for route in spec.routes:
            assert upstreams.get(route) == f"http://{spec.name}:8000", route


def test_compose_pins_the_timescaledb_that_ci_builds(compose: dict) -> None:
    import re

    ci = (COMPOSE.parent / ".ci" / "run").read_text()
    version = re.search(r"timescaledb-([0-9.]+)\.tar\.gz", ci)
    assert version, ".ci/run names no TimescaleDB tarball"
    image = compose["services"]["timescaledb"]["image"]
    assert image == f"timescale/timescaledb:{version.group(1)}-pg15"


def test_compose_pins_the_mosquitto_that_the_local_stack_builds(compose: dict) -> None:
    import re

    build = (COMPOSE.parent / "deploy" / "build-mosquitto.sh").read_text()
    version = re.search(r"^version=([0-9.]+)$", build, re.MULTILINE)
    assert version, "deploy/build-mosquitto.sh names no version"
    for name in ("mosquitto", "mosquitto-init"):
        assert compose["services"][name]["image"] == f"eclipse-mosquitto:{version.group(1)}-alpine"


def test_devices_reach_mosquitto_over_tls_only(compose: dict) -> None:
    mosquitto = compose["services"]["mosquitto"]
    assert mosquitto["ports"] == ["8883:8883"]
    conf = (COMPOSE.parent / "deploy" / "mosquitto" / "docker.conf").read_text()
    tls_listener = conf.split("listener 8883", 1)[1]
    for option in ("cafile", "certfile", "keyfile"):
        assert f"\n{option} " in tls_listener
    api_env = compose["services"]["api"]["environment"]
    assert api_env["TOWNPULSE_MQTT_CA_FILE"] == "/tls/ca.crt"


def test_operators_reach_the_api_over_https_with_the_stacks_ca(compose: dict) -> None:
    """As the local stack: HTTPS for everyone, plain HTTP on the host's loopback only."""
    import re

    services = compose["services"]
    api = services["api"]
    assert api["ports"] == ["127.0.0.1:8000:8000", "8443:8443"]
    env = api["environment"]
    assert (env["TOWNPULSE_HTTPS_HOST"], env["TOWNPULSE_HTTPS_PORT"]) == ("0.0.0.0", "8443")  # noqa: S104
    assert "tls:/tls:ro" in api["volumes"]
    init = services["api-tls-init"]
    command = init["command"]
    out_dir = command[command.index("tls") + 1]
    assert env["TOWNPULSE_TLS_CERTFILE"] == f"{out_dir}/server.crt"
    assert env["TOWNPULSE_TLS_KEYFILE"] == f"{out_dir}/server.key"
    # Signed by the broker's CA (the one devices and operators already have), not a new one.
    broker = services["tls-init"]["command"]
    assert command[command.index("--ca-cert") + 1] == f"{broker[broker.index('tls') + 1]}/ca.crt"
    assert command[command.index("--ca-key") + 1] == broker[broker.index("--ca-key") + 1]
    # The key belongs to the image's user, which the API runs as.
    dockerfile = (COMPOSE.parent / "deploy" / "Dockerfile").read_text()
    uid = re.search(r"useradd --system --uid (\d+) townpulse", dockerfile)
    assert uid and command[command.index("--owner-uid") + 1] == uid.group(1)
    assert api["depends_on"]["api-tls-init"] == {"condition": "service_completed_successfully"}
    assert init["depends_on"]["tls-init"] == {"condition": "service_completed_successfully"}


def test_every_long_running_component_is_restarted(compose: dict) -> None:
    """The keeper's part in compose: a process that exits (a task died) starts again."""
    services = compose["services"]
    for name in [*INFRA_IN_COMPOSE.values(), *(spec.name for spec in SERVICES)]:
        assert services[name].get("restart") in ("unless-stopped", "always"), name


def test_the_image_serves_the_consoles_chart_library() -> None:
    """The image installs it from the same pinned lockfile as deploy/install.sh."""
    dockerfile = (COMPOSE.parent / "deploy" / "Dockerfile").read_text()
    assert "deploy/console/package-lock.json" in dockerfile
    assert "npm ci" in dockerfile
    assert "console/static/vendor" in dockerfile


def test_compose_kafka_is_configured_as_the_local_one(compose: dict) -> None:
    """Every fixed setting of the local broker, as the image's KAFKA_* variables."""
    from townpulse.stack import DEPLOY, StackSettings

    template = (DEPLOY / "kafka" / "server.properties.tmpl").read_text()
    env = compose["services"]["kafka"]["environment"]
    for line in template.splitlines():
        if not line.strip() or line.startswith("#") or "{" in line:
            continue  # ports and paths differ by design
        key, _, value = line.partition("=")
        var = "KAFKA_" + key.upper().replace(".", "_")
        assert str(env.get(var)) == value, f"{var} should be {value!r} as in the local stack"
    local = StackSettings()
    assert env["KAFKA_HEAP_OPTS"] == f"-Xmx{local.kafka_heap}"
    jvm = env["KAFKA_JVM_PERFORMANCE_OPTS"].split()
    assert jvm == [*local.kafka_jvm_options.split(), "-Djava.awt.headless=true"]


def test_the_compact_override_runs_the_domain_services_in_one_container(compose: dict) -> None:
    import json

    from townpulse.stack.config import COMPACT_MEMBERS, member_env_var

    services = yaml.safe_load(COMPOSE.with_name("docker-compose.compact.yml").read_text())[
        "services"
    ]
    for name in COMPACT_MEMBERS:
        assert services[name] == {"scale": 0}, name
    domains = services["domains"]
    assert domains["extends"] == {"file": "docker-compose.yml", "service": "energy"}
    assert domains["command"] == ["python", "-m", "townpulse.together", *COMPACT_MEMBERS]
    ports = {
        name: json.loads(domains["environment"][member_env_var(name)])["TOWNPULSE_HTTP_PORT"]
        for name in COMPACT_MEMBERS
    }
    assert len(set(ports.values())) == len(ports)
    upstreams = json.loads(services["api"]["environment"]["TOWNPULSE_UPSTREAMS"])
    separate = json.loads(compose["services"]["api"]["environment"]["TOWNPULSE_UPSTREAMS"])
    for spec in SERVICES:
        for route in spec.routes:
            want = (
                f"http://domains:{ports[spec.name]}"
                if spec.name in COMPACT_MEMBERS
                else separate[route]
            )
            assert upstreams[route] == want, route


def test_each_service_connects_with_its_own_database_role(compose: dict) -> None:
    """As the local stack (townpulse/stack/services.py): its own role, never the owner; the
    keys outside the database only where the local stack gives them."""
    import json

    from sqlalchemy.engine import make_url

    from townpulse.stack.config import DATABASE_ROLES, KEYS, MAINTENANCE_ROLE

    services = compose["services"]
    for spec in SERVICES:
        env = services[spec.name]["environment"]
        assert make_url(env["TOWNPULSE_DATABASE_URL"]).username == f"townpulse_{spec.name}"
        for var, users in KEYS.values():
            assert (var in env) == (spec.name in users), (spec.name, var)
    storage = services["storage"]["environment"]
    assert make_url(storage["TOWNPULSE_MAINTENANCE_DATABASE_URL"]).username == MAINTENANCE_ROLE
    passwords = json.loads(services["bootstrap"]["environment"]["TOWNPULSE_ROLE_PASSWORDS"])
    assert sorted(passwords) == sorted(DATABASE_ROLES)


def test_the_compact_members_keep_their_own_database_roles() -> None:
    import json

    from sqlalchemy.engine import make_url

    from townpulse.stack.config import COMPACT_MEMBERS, member_env_var

    compact = yaml.safe_load(COMPOSE.with_name("docker-compose.compact.yml").read_text())
    env = compact["services"]["domains"]["environment"]
    for name in COMPACT_MEMBERS:
        member = json.loads(env[member_env_var(name)])
        assert make_url(member["TOWNPULSE_DATABASE_URL"]).username == f"townpulse_{name}"


def test_every_registered_domain_is_a_compose_service_in_both_layouts(compose: dict) -> None:
    """docker-compose.yml is written by hand: a registered domain missing from it, or from the
    compact override, fails here. In compose every service listens on port 8000 of its own
    container (the manifest's port is the local stack's, where they share one host)."""
    import json

    from shared import domains

    services = compose["services"]
    compact = yaml.safe_load(COMPOSE.with_name("docker-compose.compact.yml").read_text())
    together = compact["services"]["domains"]
    upstreams = json.loads(services["api"]["environment"]["TOWNPULSE_UPSTREAMS"])
    for m in domains.registered():
        service = services[m.name]
        assert service["command"] == ["python", "-m", m.service.module], m.name
        assert service["environment"]["TOWNPULSE_HTTP_PORT"] == "8000", m.name
        assert (
            f"POSTGRES_{m.name.upper()}_PASSWORD:?"
            in service["environment"]["TOWNPULSE_DATABASE_URL"]
        )
        for route in m.routes:
            assert upstreams[route] == f"http://{m.name}:8000", route
        assert compact["services"][m.name] == {"scale": 0}, m.name
        assert m.name in together["command"]
        member = json.loads(together["environment"][f"TOWNPULSE_MEMBER_ENV_{m.name.upper()}"])
        assert member["TOWNPULSE_DATABASE_URL"].startswith(f"postgresql://townpulse_{m.name}:")
