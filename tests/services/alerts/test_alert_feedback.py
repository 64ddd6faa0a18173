"""The technician's feedback on alerts, against the running stack: the round trip through the
operator API, its refusals, the audit log, and the precision figure reconciled with SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from shared.auth import key_id_of
from shared.topics import Domain
from testing.alerts_support import event, produce_events, unique_kind
from tests.support import wait_for

pytestmark = pytest.mark.integration


def _open_alert(api: httpx.Client, stack_env: dict[str, str], *, domain: Domain) -> dict[str, Any]:
    """An episode start on Kafka, as a domain service sends it; the alert it opens."""
    device_id, kind = f"fb-{uuid.uuid4().hex[:10]}", unique_kind("fb")
    start = datetime.now(UTC) - timedelta(minutes=45)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"],
        [event(device_id, kind, "start", episode_start=start, ts=start, domain=domain)],
    )

    def found() -> list[dict[str, Any]]:
        r = api.get("/v1/alerts", params={"device_id": device_id})
        assert r.status_code == 200, r.text
        return list(r.json())

    [alert] = wait_for(found, timeout=30, what=f"the alert of {device_id}")
    return dict(alert)


@pytest.fixture
def operator(stack_env: dict[str, str], role_keys: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_URL"],
        headers={"Authorization": f"Bearer {role_keys['operator']}"},
        timeout=30,
    ) as client:
        yield client


def test_feedback_round_trip_history_and_audit(
    api: httpx.Client,
    operator: httpx.Client,
    stack_env: dict[str, str],
    role_keys: dict[str, str],
) -> None:
    alert = _open_alert(api, stack_env, domain=Domain.ENERGY)
    assert alert["feedback"] is None
    url = f"/v1/alerts/{alert['id']}/feedback"

    r = operator.post(url, json={"verdict": "false_alarm", "note": "boiler test, planned"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["verdict"] == "false_alarm" and first["note"] == "boiler test, planned"
    assert first["given_by"] == f"key:{key_id_of(role_keys['operator'])}"
    # The episode's period: from its first flagged reading, open while the signal is active.
    assert datetime.fromisoformat(first["episode_start"]) <= datetime.fromisoformat(
        alert["first_seen"]
    )
    assert first["episode_end"] is None

    # A change of mind: the latest counts, the history keeps both.
    r = operator.post(url, json={"verdict": "real"})
    assert r.status_code == 201, r.text
    detail = api.get(f"/v1/alerts/{alert['id']}").json()
    assert detail["feedback"]["verdict"] == "real" and detail["feedback"]["note"] == ""
    listed = api.get("/v1/alerts", params={"device_id": alert["device_id"]}).json()
    assert listed[0]["feedback"]["id"] == r.json()["id"]
    history = api.get(url).json()
    assert [h["verdict"] for h in history] == ["real", "false_alarm"]

    # Both are in the audit log, with who gave them and what they said.
    r = api.get("/v1/audit", params={"target": alert["id"], "action": "give_feedback"})
    assert r.status_code == 200, r.text
    entries = r.json()
    assert [e["detail"]["verdict"] for e in entries] == ["real", "false_alarm"]
    assert entries[1]["detail"]["note"] == "boiler test, planned"
    assert {(e["key_id"], e["role"], e["outcome"]) for e in entries} == {
        (key_id_of(role_keys["operator"]), "operator", "ok")
    }


def test_feedback_refuses_bad_input_and_read_only_keys(
    api: httpx.Client, operator: httpx.Client, stack_env: dict[str, str], role_keys: dict[str, str]
) -> None:
    alert = _open_alert(api, stack_env, domain=Domain.WASTE)
    url = f"/v1/alerts/{alert['id']}/feedback"
    missing = f"/v1/alerts/al_{uuid.uuid4().hex[:20]}/feedback"
    assert operator.post(missing, json={"verdict": "real"}).status_code == 404
    assert api.get(missing).status_code == 404
    for body in (
        {"verdict": "maybe"},
        {},
        {"verdict": "real", "note": "x" * 501},
        {"verdict": "real", "note": 5},
    ):
        r = operator.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
    viewer = {"Authorization": f"Bearer {role_keys['viewer']}"}
    r = api.post(url, json={"verdict": "real"}, headers=viewer)
    assert r.status_code == 403, r.text
    # A note at the limit is fine; nothing refused was stored.
    assert operator.post(url, json={"verdict": "expected", "note": "y" * 500}).status_code == 201
    assert [h["verdict"] for h in api.get(url).json()] == ["expected"]
    assert operator.get("/v1/alerts/precision", params={"days": 0}).status_code == 422
    assert operator.get("/v1/alerts/precision", params={"days": 366}).status_code == 422


def _sql_counts(database_url: str, since: datetime) -> dict[str, dict[str, int]]:
    """Per domain, alerts opened since `since` by their latest verdict, counted here directly."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            """
            WITH latest AS (
                SELECT alert_id, max(id) AS id FROM alert_feedback GROUP BY alert_id
            )
            SELECT a.domain, f.verdict FROM alerts a
            LEFT JOIN latest l ON l.alert_id = a.id
            LEFT JOIN alert_feedback f ON f.id = l.id
            WHERE a.opened_at >= %s AND a.state <> 'pending'
            """,
            (since,),
        ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = out.setdefault(r["domain"], {})
        verdict = r["verdict"] or "none"
        counts[verdict] = counts.get(verdict, 0) + 1
    return out


def test_precision_per_domain_matches_a_direct_count(
    api: httpx.Client, operator: httpx.Client, stack_env: dict[str, str]
) -> None:
    alerts = [_open_alert(api, stack_env, domain=Domain.TRAFFIC) for _ in range(4)]
    for alert, verdict in zip(alerts, ("real", "real", "false_alarm"), strict=False):
        r = operator.post(f"/v1/alerts/{alert['id']}/feedback", json={"verdict": verdict})
        assert r.status_code == 201, r.text
    # A false alarm that was real after all: only the latest verdict counts.
    r = operator.post(f"/v1/alerts/{alerts[2]['id']}/feedback", json={"verdict": "real"})
    assert r.status_code == 201
    r = operator.post(f"/v1/alerts/{alerts[2]['id']}/feedback", json={"verdict": "false_alarm"})
    assert r.status_code == 201

    r = api.get("/v1/alerts/precision")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["days"] == 30
    since = datetime.fromisoformat(body["since"])
    assert abs((datetime.now(UTC) - since) - timedelta(days=30)) < timedelta(minutes=5)
    counted = _sql_counts(stack_env["DATABASE_URL"], since)
    by_domain = {d["domain"]: d for d in body["domains"]}
    assert set(by_domain) == set(counted)
    for domain, c in counted.items():
        got = by_domain[domain]
        real, false = c.get("real", 0), c.get("false_alarm", 0)
        assert got["real"] == real and got["false_alarm"] == false
        assert got["expected"] == c.get("expected", 0)
        assert got["without_feedback"] == c.get("none", 0)
        assert got["with_feedback"] == real + false + c.get("expected", 0)
        assert got["precision"] == (
            None if real + false == 0 else pytest.approx(real / (real + false))
        )
    traffic = by_domain["traffic"]
    assert traffic["real"] >= 2 and traffic["false_alarm"] >= 1 and traffic["without_feedback"] >= 1
