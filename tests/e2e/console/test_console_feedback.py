"""The technician's verdict in the console (Chromium against the running stack): the alerts
page's buttons and note, the verdict history, and the overview's precision per domain, which
must show what the API computed (itself reconciled with SQL in tests/services/alerts)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from shared.topics import Domain
from testing.alerts_support import event, produce_events, unique_kind
from tests.e2e.console.conftest import Console
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def _alert(stack_env: dict[str, str], api: httpx.Client) -> tuple[str, str]:
    device_id = f"con-fb-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            event(
                device_id,
                unique_kind("console"),
                "start",
                episode_start=now,
                ts=now,
                domain=Domain.WASTE,
            )
        ],
    )
    alerts = wait_for(
        lambda: api.get("/v1/alerts", params={"device_id": device_id}).json(), what="the alert"
    )
    return device_id, str(alerts[0]["id"])


def test_an_operator_marks_a_false_alarm_with_a_note(
    console: Console,
    api: httpx.Client,
    stack_env: dict[str, str],
    key_factory: Callable[[str], str | None],
) -> None:
    key = key_factory("operator")
    assert key is not None
    device_id, alert_id = _alert(stack_env, api)
    console.sign_in(key, f"/alerts?id={alert_id}&state=&device_id={device_id}")
    row = f"tr[data-alert='{alert_id}']"
    assert console.text(f"{row} td.verdict") == "—"
    assert console.text("#feedback-history") == "Aucun avis pour l'instant."
    buttons = console.all("#feedback-form button.verdict")
    assert [b.text for b in buttons] == ["Réelle", "Fausse alerte", "Prévue"]
    assert all(b.is_enabled() for b in buttons)

    console.one("#fb-note").send_keys("benne vidée à la main")
    console.one("#feedback-form button[data-verdict='false_alarm']").click()
    wait_for(
        lambda: console.status() == "Avis enregistré : Fausse alerte.", what="the verdict saved"
    )
    wait_for(lambda: console.text(f"{row} td.verdict") == "Fausse alerte", what="the list")
    assert "benne vidée à la main" in console.text("#feedback-history")
    [given] = api.get(f"/v1/alerts/{alert_id}/feedback").json()
    assert (given["verdict"], given["note"]) == ("false_alarm", "benne vidée à la main")

    # A change of mind: the latest verdict shows, the history keeps both.
    console.one("#feedback-form button[data-verdict='real']").click()
    wait_for(lambda: console.text(f"{row} td.verdict") == "Réelle", what="the new verdict")
    wait_for(lambda: len(console.all("#feedback-history li")) == 2, what="the history")
    # The new controls keep the page accessible (the overview's table: the last test).
    assert [v for v in console.axe() if v["impact"] in ("serious", "critical")] == []


def test_a_viewer_cannot_give_a_verdict(
    console: Console,
    api: httpx.Client,
    stack_env: dict[str, str],
    key_factory: Callable[[str], str | None],
) -> None:
    key = key_factory("viewer")
    assert key is not None
    _, alert_id = _alert(stack_env, api)
    console.sign_in(key, f"/alerts?id={alert_id}&state=")
    assert not any(b.is_enabled() for b in console.all("#feedback-form button.verdict"))
    status = console.fetch_status("POST", f"/v1/alerts/{alert_id}/feedback")
    assert status == 403


def test_the_overview_shows_the_api_precision_per_domain(
    console: Console, admin_key: str, api: httpx.Client
) -> None:
    console.sign_in(admin_key, "/")
    figures = api.get("/v1/alerts/precision").json()["domains"]
    assert figures, "the stack has alerts of the last 30 days (the tests above made some)"
    for d in figures:
        row = f"#precision tr[data-domain='{d['domain']}']"
        # Intl rounds halves away from zero; thousands are grouped with a narrow space.
        percent = None if d["precision"] is None else math.floor(100 * d["precision"] + 0.5)
        expected = "pas encore d'avis" if percent is None else f"{percent} %"
        assert _plain(console.text(f"{row} td.precision")) == _plain(expected)
        assert _plain(console.text(f"{row} td.without")) == str(d["without_feedback"])
    assert [v for v in console.axe() if v["impact"] in ("serious", "critical")] == []


def _plain(text: str) -> str:
    return "".join(text.split())
