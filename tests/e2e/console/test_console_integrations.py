"""Issue 28 in the console, in Chromium against the running stack: a ChirpStack integration added
on the Integrations page, an unknown DevEUI heard and registered from the devices page, its
readings shown; a profile tried on an uplink's bytes; the new pages' accessibility and roles."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.e2e.console.conftest import Console
from tests.lorawan_support import chirpstack_uplink
from tests.support import wait_for

pytestmark = pytest.mark.e2e

# The shipped profile of Milesight's EM310-UDL bin-level sensor (services/gateway/profiles/).
PROFILE = "milesight-iot-em310-udl"
CODEC_PATH = "milesight-iot/em310-udl"
# An EM310-UDL frame (channels as in the Device Repository's example): battery 92 %, 580 mm from
# the sensor to the waste, lid closed; and what ChirpStack's codec makes of it (`object`). In the
# profile's default 1000 mm bin that is 42 % full.
EM310_BYTES = bytes.fromhex("01755c03824402040000")
EM310_OBJECT = {"battery": 92, "distance": 580, "tilt": "normal"}
EM310_FILL = "42"
EM310_PORT = 85


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[dict[str, list[str]]]:
    """Integrations and devices a test made, removed afterwards (already gone is fine)."""
    made: dict[str, list[str]] = {"integrations": [], "devices": []}
    yield made
    for integration_id in made["integrations"]:
        api.delete(f"/v1/integrations/{integration_id}")
    for device_id in made["devices"]:
        api.delete(f"/v1/devices/{device_id}")


def _clicked(console: Console, css: str) -> bool:
    """Click the element if it is there; a list redrawn under us is looked at again."""
    try:
        found = console.all(css)
        if not found:
            return False
        found[0].click()
        return True
    except StaleElementReferenceException:
        return False


def test_add_a_chirpstack_integration_register_a_heard_device_and_see_its_readings(
    console: Console,
    admin_key: str,
    api: httpx.Client,
    stack_env: dict[str, str],
    cleanup: dict[str, list[str]],
) -> None:
    integration_id = f"con-cs-{uuid.uuid4().hex[:8]}"
    application = str(uuid.uuid4())
    dev_eui = f"a1{uuid.uuid4().hex[:14]}"
    device_id = f"eui-{dev_eui}"
    cleanup["integrations"].append(integration_id)
    cleanup["devices"].append(device_id)

    # 1. The integration, over HTTP: the page shows the URL and the secret to give ChirpStack.
    console.sign_in(admin_key, "/integrations")
    assert console.text("h1") == "Intégrations"
    console.one("#i-id").send_keys(integration_id)
    console.one("#i-name").send_keys("ChirpStack de la commune")
    Select(console.one("#i-kind")).select_by_value("chirpstack")
    Select(console.one("#i-transport")).select_by_value("http")
    assert not console.one("#i-host").is_displayed()  # no broker over HTTP
    console.one("#i-application").send_keys(application)
    console.one("#integration-form button[type=submit]").click()
    wait_for(lambda: console.one("#http-box").is_displayed(), what="the HTTP endpoint and secret")
    url = console.one("#http-url").get_attribute("value") or ""
    secret = console.one("#http-secret").get_attribute("value") or ""
    # ChirpStack appends ?event=up itself: the page gives the URL without it.
    assert url == f"{stack_env['API_URL']}/v1/ingest/chirpstack/{integration_id}", url
    assert secret and console.one("#http-header").get_attribute("value") == f"Bearer {secret}"
    row = f"tr[data-integration='{integration_id}']"
    wait_for(lambda: console.all(row), what="the integration's row")
    assert "HTTP" in console.text(row)
    # Shown once: the secret is not in the page once it is loaded again.
    console.open("/integrations")
    assert not console.one("#http-box").is_displayed()
    assert secret not in console.driver.page_source

    console.one(f"{row} button.test").click()
    wait_for(lambda: "Connexion réussie" in console.status(), what="the connection test")

    # 2. An uplink from a DevEUI nobody registered, as ChirpStack's HTTP integration posts it.
    def post(f_cnt: int) -> httpx.Response:
        return httpx.post(
            f"{url}?event=up",
            content=chirpstack_uplink(
                dev_eui=dev_eui,
                application_id=application,
                f_cnt=f_cnt,
                data=EM310_BYTES,
                decoded=EM310_OBJECT,
                f_port=EM310_PORT,
                gateways=2,
            ),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=30,
        )

    # Refused with its reason (and dead-lettered), but heard.
    first = post(1)
    assert first.status_code == 404 and "unknown_device" in first.text, first.text

    # 3. Heard, not registered: listed on the devices page, registered from there.
    heard = f"tr[data-heard='{dev_eui}']"

    def listed() -> bool:
        console.open("/devices")
        return bool(console.all(f"{heard} button.register"))

    wait_for(listed, timeout=60, interval=1, what="the DevEUI under 'heard, not registered'")
    assert "Entendus, non enregistrés" in console.text("#h-heard")
    console.one(f"{heard} button.register").click()
    wait_for(lambda: console.one("#heard-form").is_displayed(), what="the registration form")
    assert console.one("#hr-id").get_attribute("value") == device_id
    Select(console.one("#hr-profile")).select_by_value(PROFILE)
    console.one("#hr-name").send_keys("Conteneur du marché")
    console.one("#heard-form button[type=submit]").click()
    wait_for(lambda: f"Capteur {device_id} enregistré" in console.status(), what="the registration")
    wait_for(lambda: console.all(f"{heard} a.device-link"), what="the registered device's link")
    assert "Enregistré" in console.text(heard)
    device = api.get(f"/v1/devices/{device_id}").json()
    assert device["dev_eui"] == dev_eui and device["profile"] == PROFILE
    assert device["domain"] == "waste"

    # 4. The next uplink is stored: its readings and link health on the device's page.
    second = post(2)
    assert second.status_code == 202, second.text

    def shown() -> bool:
        if not _clicked(console, f"{heard} a.device-link"):
            return False
        wait_for(lambda: console.text("#h-dev").startswith(device_id), what="the device's detail")
        return "fill_pct" in console.text("#device-readings")

    wait_for(shown, timeout=90, interval=2, what="the device's fill level on its page")
    assert EM310_FILL in console.text("#device-readings")
    figures = console.text("#device-figures")
    assert dev_eui in figures and PROFILE in figures
    wait_for(lambda: console.one("#device-link").is_displayed(), what="the link health")
    link = console.text("#device-link-figures")
    assert "RSSI" in link and "dBm" in link and "SNR" in link
    assert "Passerelles\n2" in link  # heard by two gateways

    # 5. The integration counted the uplinks; removing it asks first.
    # The gateway saves its counts every few seconds. The unregistered device's uplink may count
    # as an error, the registered one's as an uplink.
    def counted() -> bool:
        console.open("/integrations")
        if not console.all(f"{row} td.uplinks"):
            return False  # the list did not load (the gateway restarting): look again
        n = int(console.text(f"{row} td.uplinks")) + int(console.text(f"{row} td.errors"))
        return n >= 2 and console.text(f"{row} td.last-uplink") != "jamais"

    wait_for(counted, timeout=60, interval=1, what="the integration's counts")
    console.one(f"{row} button.remove").click()
    console.driver.switch_to.alert.accept()
    wait_for(lambda: not console.all(row), what="the integration removed")
    assert integration_id not in {i["id"] for i in api.get("/v1/integrations").json()}


def test_import_the_codec_then_try_the_profile_on_an_uplinks_bytes(
    console: Console, admin_key: str
) -> None:
    console.sign_in(admin_key, "/profiles")
    console.open(f"/profiles?lang=en&profile={PROFILE}")
    assert console.text("h1") == "Profiles"
    row = f"tr[data-profile='{PROFILE}']"
    assert "waste" in console.text(row) and "yes" in console.text(row)
    if "not installed" in console.text(f"{row} td.codec"):
        # A fresh stack has the shipped profiles but no codec: the page offers the one missing.
        chosen = Select(console.one("#c-path")).first_selected_option.get_attribute("value")
        assert chosen == CODEC_PATH
        console.one("#import-form button[type=submit]").click()
        wait_for(lambda: "imported" in console.status(), what="the codec's import")
        assert "not installed" not in console.text(f"{row} td.codec")
    assert console.all(f"#codecs tr[data-codec^='{PROFILE}@']")
    assert Select(console.one("#t-profile")).first_selected_option.get_attribute("value") == PROFILE

    # Hex as a technician copies it from the network server's frame log, spaces included, and
    # a bin deeper than the profile's default.
    console.one("#t-payload").send_keys("0175 5c03 8244 0204 0000")
    fport = console.one("#t-fport")
    fport.clear()
    fport.send_keys(str(EM310_PORT))
    console.one("#t-metadata").send_keys('{"bin_depth_mm": 1160}')
    console.one("#try-form button[type=submit]").click()
    wait_for(lambda: "Readings made" in console.status(), what="the try's result")
    assert '"distance": 580' in console.text("#try-decoded")
    assert PROFILE in console.text("#try-figures")
    readings = console.text("#try-readings")
    assert "fill_pct 50 %" in readings, readings  # 100 * (1160 - 580) / 1160
    assert not console.one("#try-error").is_displayed()

    # Not bytes at all: the reason, no reading.
    payload = console.one("#t-payload")
    payload.clear()
    payload.send_keys("not bytes!", Keys.ENTER)
    wait_for(lambda: console.one("#try-error").is_displayed(), what="the refusal")
    assert "hex" in console.text("#try-detail")
    assert "fill_pct" not in console.text("#try-readings")


def test_a_viewer_sees_integrations_but_cannot_change_them(
    console: Console,
    api: httpx.Client,
    key_factory: Callable[[str], str | None],
    cleanup: dict[str, list[str]],
) -> None:
    integration_id = f"con-cs-{uuid.uuid4().hex[:8]}"
    r = api.post(
        "/v1/integrations",
        json={"id": integration_id, "kind": "chirpstack", "transport": "http"},
    )
    assert r.status_code == 201, r.text
    cleanup["integrations"].append(integration_id)
    key = key_factory("viewer")
    assert key is not None
    console.sign_in(key, "/integrations")
    row = f"tr[data-integration='{integration_id}']"
    wait_for(lambda: console.all(row), what="the integration's row")
    for button in console.all(f"{row} button"):
        assert not button.is_enabled()
    assert not console.one("#integration-form button[type=submit]").is_enabled()
    # The API agrees with the page.
    assert console.fetch_status("POST", "/v1/integrations") == 403
    assert console.fetch_status("POST", f"/v1/integrations/{integration_id}/test") == 403
    console.open("/devices")
    for button in console.all("#heard button.register"):
        assert not button.is_enabled()


@pytest.mark.parametrize("path", ["/integrations", "/profiles", "/devices"])
def test_new_pages_have_no_serious_accessibility_violation(
    console: Console, admin_key: str, api: httpx.Client, path: str
) -> None:
    console.sign_in(admin_key, path)
    if path == "/profiles":
        # The try box's result is part of the page: check it shown too.
        console.one("#t-payload").send_keys("01755c03824408040001")
        console.one("#try-form button[type=submit]").click()
        wait_for(lambda: console.one("#try-result").is_displayed(), what="the try's result")
    serious: list[dict[str, Any]] = [
        v for v in console.axe() if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
