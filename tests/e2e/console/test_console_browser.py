"""The operator console in Chromium against the running stack and the simulator's town."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from shared.schemas import AlertEvent, Severity
from shared.topics import Domain
from testing.alerts_support import event, produce_events, unique_kind
from testing.webhook_receiver import WebhookReceiver
from tests.e2e.console.conftest import Console, mosquitto_pub
from tests.support import wait_for
from tests.waste_support import add_full_bins

pytestmark = pytest.mark.e2e

PAGES = ["/", "/energy", "/waste", "/traffic", "/alerts", "/devices", "/webhooks", "/public"]


def _open_alert(stack_env: dict[str, str], api: httpx.Client) -> tuple[str, str]:
    """An open alert on a device of its own: (device id, alert id)."""
    device_id = f"con-{uuid.uuid4().hex[:8]}"
    kind = unique_kind("console")
    now = datetime.now(UTC)
    produce_events(
        stack_env["KAFKA_BOOTSTRAP"],
        [
            event(
                device_id,
                kind,
                "start",
                episode_start=now,
                ts=now,
                severity=Severity.WARNING,
                domain=Domain.WASTE,
            )
        ],
    )
    alerts = wait_for(
        lambda: api.get("/v1/alerts", params={"device_id": device_id}).json(),
        what="the alert",
    )
    return device_id, alerts[0]["id"]


def test_sign_in_keeps_the_key_in_the_tab_only_and_language_switches(
    console: Console, admin_key: str
) -> None:
    console.driver.get(console.base + "/alerts")
    # No key: to the sign-in page, which will come back here.
    wait_for(lambda: "/signin?next=%2Falerts" in console.driver.current_url, what="redirect")
    console.sign_in(admin_key, "/")
    assert console.js("return document.documentElement.lang") == "fr"
    assert console.text("h1") == "Vue d'ensemble"
    assert admin_key.split("_")[1] in console.text("#whoami")
    # The key is in sessionStorage (gone with the tab), not in localStorage or a cookie.
    assert console.js(f"return sessionStorage.getItem('{'townpulse.apiKey'}')") == admin_key
    assert console.js("return localStorage.length") == 0
    assert admin_key not in console.js("return document.cookie")

    console.one("#lang-switch").click()
    console.wait_ready()
    assert console.js("return document.documentElement.lang") == "en"
    assert console.text("h1") == "Overview"
    # The choice follows to the next page.
    console.open("/waste")
    assert console.text("h1") == "Waste"
    console.one("#lang-switch").click()
    console.wait_ready()
    assert console.text("h1") == "Déchets"

    console.one("#signout").click()
    wait_for(lambda: "/signin" in console.driver.current_url, what="sign-out")
    assert console.js("return sessionStorage.getItem('townpulse.apiKey')") is None


def test_a_refused_key_stays_on_the_sign_in_page(console: Console) -> None:
    console.driver.get(console.base + "/signin")
    console.one("#api-key").send_keys("tp_000000000000_not-a-key")
    console.one("#signin-form button[type=submit]").click()
    wait_for(lambda: "refusée" in console.status(), what="the refusal")
    assert "/signin" in console.driver.current_url
    assert console.js("return sessionStorage.getItem('townpulse.apiKey')") is None


def test_register_a_device_publish_with_mosquitto_pub_and_see_the_reading(
    console: Console, admin_key: str, api: httpx.Client
) -> None:
    device_id = f"con-{uuid.uuid4().hex[:8]}"
    console.sign_in(admin_key, "/devices")
    try:
        console.one("#r-id").send_keys(device_id)
        console.one("#r-domain").send_keys("déchets")
        console.one("#r-name").send_keys("Conteneur d'essai")
        console.one("#register-form button[type=submit]").click()
        wait_for(lambda: console.one("#credentials").is_displayed(), what="the credentials")
        example = console.one("#mqtt-example").get_attribute("value") or ""
        password = console.text("#mqtt-password")
        assert password and f"-P '{password}'" in example
        assert f"sensors/waste/{device_id}" in example
        # The page's own example, run as a technician would paste it in a shell.
        assert example.startswith("mosquitto_pub ")
        cmd = example.replace("mosquitto_pub", mosquitto_pub(), 1)
        subprocess.run(["bash", "-c", cmd], check=True, timeout=30, capture_output=True)
        # The TLS example, with the CA the page showed saved where the example expects it.
        ca = console.one("#mqtt-ca").get_attribute("value") or ""
        assert ca.startswith("-----BEGIN CERTIFICATE-----")
        tls_example = console.one("#mqtt-example-tls").get_attribute("value") or ""
        assert "--cafile ca.crt" in tls_example
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "ca.crt").write_text(ca)
            cmd = tls_example.replace("mosquitto_pub", mosquitto_pub(), 1)
            subprocess.run(
                ["bash", "-c", cmd], check=True, timeout=30, capture_output=True, cwd=tmp
            )

        def shown() -> bool:
            console.one("#q").clear()
            console.one("#q").send_keys(device_id, Keys.ENTER)
            try:
                cells = console.all(f"tr[data-device='{device_id}'] td.last")
                return bool(cells) and cells[0].text not in ("", "jamais")
            except StaleElementReferenceException:
                return False  # the list was redrawn under us: look again

        wait_for(shown, timeout=60, interval=1, what="the reading in the devices list")

        def opened() -> bool:
            try:
                console.one(f"tr[data-device='{device_id}'] a").click()
                return True
            except StaleElementReferenceException:
                return False  # the list was redrawn between finding the link and the click

        wait_for(opened, timeout=10, interval=0.2, what="the device's link")
        wait_for(
            lambda: "fill_pct" in console.text("#device-readings"), what="the reading's detail"
        )
        assert "42" in console.text("#device-readings")
    finally:
        api.delete(f"/v1/devices/{device_id}")


def test_acknowledge_an_alert_then_see_its_history(
    console: Console, admin_key: str, api: httpx.Client, stack_env: dict[str, str]
) -> None:
    device_id, alert_id = _open_alert(stack_env, api)
    console.sign_in(admin_key, f"/alerts?state=&device_id={device_id}")
    row = f"tr[data-alert='{alert_id}']"
    assert console.text(f"{row} td.state") == "ouverte"
    console.one(f"{row} button.ack").click()
    wait_for(lambda: console.status() == "Alerte acquittée.", what="the acknowledgement")
    wait_for(lambda: console.text(f"{row} td.state") == "acquittée", what="the new state")
    body = api.get(f"/v1/alerts/{alert_id}").json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_by"] == f"key:{admin_key.split('_')[1]}"
    assert "acknowledged" in console.text("#timeline") or "acquitt" in console.text("#timeline")


def test_the_collection_plan_draws_a_route(
    console: Console,
    admin_key: str,
    api: httpx.Client,
    stack_env: dict[str, str],
    simulated_town: dict[str, Any],
) -> None:
    # Bins of the test's own, due now: the calibrated town's bins are rarely all full at once
    # (a round may have none due, which the console then says).
    depot = simulated_town["depot"]
    lat, lon = (float(x) for x in depot.split(","))
    bins = add_full_bins(
        api,
        stack_env["KAFKA_BOOTSTRAP"],
        prefix=f"bin-e2e-{uuid.uuid4().hex[:6]}-",
        around=(lat, lon),
    )
    try:
        _draws_a_route(console, admin_key, api, depot=depot, bins=set(bins))
    finally:
        for device_id in bins:
            api.delete(f"/v1/devices/{device_id}")


def _draws_a_route(
    console: Console, admin_key: str, api: httpx.Client, *, depot: str, bins: set[str]
) -> None:
    def due() -> bool:
        r = api.get("/v1/waste/plan", params={"depot": depot, "vehicles": 2})
        return r.status_code == 200 and bins <= {b["id"] for b in r.json()["bins"]}

    wait_for(due, timeout=60, what="the test's bins to be due")
    console.sign_in(admin_key, f"/waste?depot={depot}&vehicles=2")
    wait_for(lambda: console.status() == "Tournée calculée.", timeout=60, what="the plan")
    routes = console.all("#routes li.route-item")
    assert routes, console.text("#routes")
    assert "bin-" in routes[0].text and "km" in routes[0].text
    polylines = console.all("#plan-map polyline.route")
    assert len(polylines) == len(routes)
    # A route leaves the depot and comes back: first and last points are the same.
    points = (polylines[0].get_attribute("points") or "").split()
    assert len(points) >= 3 and points[0] == points[-1]
    assert "km" in console.text("#plan-figures") and "CO2" in console.text("#plan-figures")


def test_an_operator_acts_on_alerts_but_cannot_manage_devices(
    console: Console,
    api: httpx.Client,
    stack_env: dict[str, str],
    key_factory: Callable[[str], str | None],
) -> None:
    key = key_factory("operator")
    assert key is not None
    _, alert_id = _open_alert(stack_env, api)
    console.sign_in(key, f"/alerts?id={alert_id}&state=")
    assert "opérateur" in console.text("#whoami")
    assert console.one(f"tr[data-alert='{alert_id}'] button.ack").is_enabled()
    console.open("/devices")
    assert not console.one("#register-form button[type=submit]").is_enabled()
    # The API agrees with the page: registering is for admins.
    assert console.fetch_status("POST", "/v1/devices") == 403
    console.open("/webhooks")
    assert console.one("#admin-only").is_displayed()


def test_a_viewer_sees_but_cannot_act(
    console: Console,
    api: httpx.Client,
    stack_env: dict[str, str],
    key_factory: Callable[[str], str | None],
) -> None:
    key = key_factory("viewer")
    # The role exists since the governance issue landed: its absence is a failure, not a skip.
    assert key is not None, "the API refused to create a viewer key"
    _, alert_id = _open_alert(stack_env, api)
    console.sign_in(key, f"/alerts?id={alert_id}&state=")
    assert "lecteur" in console.text("#whoami")
    ack = console.one(f"tr[data-alert='{alert_id}'] button.ack")
    assert not ack.is_enabled()
    # Even around the page, the API refuses.
    assert console.fetch_status("POST", f"/v1/alerts/{alert_id}/ack") == 403
    assert api.get(f"/v1/alerts/{alert_id}").json()["state"] == "open"


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_serious_accessibility_violation(
    console: Console, admin_key: str, simulated_town: dict[str, Any], path: str
) -> None:
    console.sign_in(admin_key, "/")
    console.open(path)
    serious = [v for v in console.axe() if v["impact"] in ("serious", "critical")]
    assert serious == []


def test_keyboard_reaches_the_skip_link_first_and_it_moves_focus(
    console: Console, admin_key: str
) -> None:
    console.sign_in(admin_key, "/")
    body = console.driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    active = console.driver.switch_to.active_element
    assert active.get_attribute("class") == "skip"
    active.send_keys(Keys.ENTER)
    assert console.driver.switch_to.active_element.get_attribute("id") == "main"


def test_csv_import_registers_each_row_and_reports_the_bad_ones(
    console: Console, admin_key: str, api: httpx.Client, tmp_path: Path
) -> None:
    ids = [f"con-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    csv = tmp_path / "devices.csv"
    csv.write_text(
        "id;domain;name;lat;lon\n"
        f"{ids[0]};waste;Conteneur A;45.90;6.12\n"
        f"{ids[1]};traffic;Compteur B;;\n"
        "bad id!;waste;Invalide;;\n"
    )
    console.sign_in(admin_key, "/devices")
    try:
        console.one("#csv-file").send_keys(str(csv))
        console.one("#csv-form button[type=submit]").click()
        wait_for(lambda: "2 capteurs enregistrés sur 3" in console.status(), what="the import")
        result = console.text("#csv-result")
        assert f"{ids[0]}: enregistré" in result and f"{ids[1]}: enregistré" in result
        assert "bad id!" in result  # with the API's reason
        link = console.one("#csv-result a[download]")
        assert (link.get_attribute("href") or "").startswith("blob:")
        device = api.get(f"/v1/devices/{ids[0]}").json()
        assert device["location"] == {"lat": 45.9, "lon": 6.12}
        assert api.get(f"/v1/devices/{ids[1]}").json()["location"] is None
    finally:
        for device_id in ids:
            api.delete(f"/v1/devices/{device_id}")


def test_webhook_created_with_its_secret_once_then_tested_and_rotated(
    console: Console, admin_key: str, api: httpx.Client
) -> None:
    receiver = WebhookReceiver().listen()
    console.sign_in(admin_key, "/webhooks")
    sub_id = None
    try:
        console.one("#w-url").send_keys(receiver.url)
        console.one("#w-desc").send_keys("console test")
        console.one("#webhook-form button[type=submit]").click()
        wait_for(lambda: console.one("#secret-box").is_displayed(), what="the secret")
        secret = console.one("#secret").get_attribute("value") or ""
        assert secret.startswith("whsec_")
        receiver.secret = secret
        sub_id = next(w["id"] for w in api.get("/v1/webhooks").json() if w["url"] == receiver.url)
        row = f"tr[data-webhook='{sub_id}']"
        wait_for(lambda: console.all(row), what="the subscription's row")
        # The secret is on screen once: reloading the page does not show it again.
        console.open("/webhooks")
        assert not console.one("#secret-box").is_displayed()
        assert secret not in console.driver.page_source

        console.all(f"{row} button")[0].click()  # send a test
        wait_for(lambda: "Test reçu : HTTP 200" in console.status(), what="the test delivery")
        assert any(r.verified and "webhook.test" in r.body for r in receiver.requests)

        console.all(f"{row} button")[2].click()  # rotate the secret
        console.driver.switch_to.alert.accept()
        wait_for(lambda: console.one("#secret-box").is_displayed(), what="the new secret")
        rotated = console.one("#secret").get_attribute("value") or ""
        assert rotated.startswith("whsec_") and rotated != secret
    finally:
        receiver.close()
        if sub_id:
            api.delete(f"/v1/webhooks/{sub_id}")


def test_sign_in_never_leads_off_site(console: Console, admin_key: str) -> None:
    """`/\\evil.example` is `//evil.example` to a browser: the key would follow the user there."""
    console.sign_in(admin_key, "/%5Cevil.example")
    assert console.driver.current_url.rstrip("/") == console.base.rstrip("/")


def test_the_admin_sees_the_platform_warnings_on_the_overview_and_a_viewer_does_not(
    console: Console,
    api: httpx.Client,
    admin_key: str,
    stack_env: dict[str, str],
    key_factory: Callable[[str], str | None],
) -> None:
    # The event the watch (townpulse/watch/) sends for a filling disk, on the same topic.
    subject = f"disk-test{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)

    def episode(phase: str) -> AlertEvent:
        return AlertEvent(
            event_id=AlertEvent.make_id(
                device_id=subject, kind="platform.disk_high", episode_start=now, phase=phase
            ),
            device_id=subject,
            domain="platform",
            kind="platform.disk_high",
            phase=phase,  # type: ignore[arg-type]
            severity=Severity.WARNING,
            episode_start=now,
            ts=now,
            explanation={"expected": 85.0, "observed": 91.5, "days_left": 4.0, "message": "test"},
        )

    produce_events(stack_env["KAFKA_BOOTSTRAP"], [episode("start")])
    try:
        wait_for(
            lambda: api.get("/v1/alerts", params={"device_id": subject}).json(), what="the alert"
        )
        console.sign_in(admin_key, "/")
        text = console.text("#platform-list")
        assert subject in text
        assert "Disque qui se remplit" in text and "plein dans 4 jours" in text
        viewer = key_factory("viewer")
        assert viewer is not None
        console.sign_in(viewer, "/")
        assert not console.one("#platform-card").is_displayed()
    finally:
        produce_events(stack_env["KAFKA_BOOTSTRAP"], [episode("end")])
