"""Language switch, the managers' and admins' screens, and today's report with CSV export."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Central, login, screenshot


def nav_text(page: Any, route: str) -> str:
    text: str = page.locator(f"#nav a[data-route={route}]").inner_text()
    return text


def test_vietnamese_by_default_and_english_on_request(page: Any, central: Central) -> None:
    page.goto("/")
    page.locator("#login").wait_for()
    assert page.evaluate("document.documentElement.lang") == "vi"
    assert page.locator("#login button[type=submit]").inner_text() == "Đăng nhập"
    screenshot(page, "login")
    login(page, "manager")
    assert nav_text(page, "sessions") == "Lượt gửi xe"
    assert page.locator("#link").inner_text() == "Trực tiếp"

    page.select_option("#lang", "en")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert nav_text(page, "sessions") == "Sessions"
    assert page.locator("#link").inner_text() == "Live"
    page.locator("#view h2", has_text="Live entries and exits").wait_for()
    screenshot(page, "live-english")
    page.reload()  # the choice and the login survive a reload
    page.wait_for_selector("#link[data-state=live]")
    assert nav_text(page, "audit") == "Audit log"
    missing = page.evaluate("import('/js/i18n.js').then((m) => m.missingKeys())")
    assert missing == {"vi": [], "en": []}


def test_manager_sees_todays_counts_and_exports_them_as_csv(page: Any, central: Central) -> None:
    central.post_event("gate-in", "60A-135.79")
    central.post_event("gate-out", "60A-135.79")
    login(page, "manager")
    page.goto("/#/reports")
    row = page.locator("tr[data-lot=lot-e2e]")
    row.wait_for()
    today = central.api("GET", "/api/v1/reports/day", "manager").json()
    lot = {r["lot_id"]: r for r in today["lots"]}["lot-e2e"]
    cells = row.locator("td").all_inner_texts()
    assert cells[1:3] == [str(lot["entries"]), str(lot["exits"])], cells
    screenshot(page, "reports")

    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    assert download.suggested_filename == f"sessions-{today['day']}.csv"
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert "60A-135.79" in {r["plate"] for r in rows}


def test_manager_edits_tariffs(page: Any, central: Central) -> None:
    login(page, "manager")
    page.goto("/#/tariffs")
    page.locator("tr[data-tariff='lot-e2e/car']").wait_for()
    form = page.locator("#add-tariff")
    form.locator("select[name=vehicle_type]").select_option("motorbike")
    form.locator("input[name=hourly_rate]").fill("5000")
    form.locator("input[name=daily_cap]").fill("30000")
    form.locator("button[type=submit]").click()
    page.locator("tr[data-tariff='lot-e2e/motorbike']").wait_for()
    tariffs = central.api("GET", "/api/v1/tariffs", "manager").json()
    bike = {t["vehicle_type"]: t for t in tariffs}["motorbike"]
    assert (bike["hourly_rate"], bike["daily_cap"]) == (5000, 30000)

    # The lot's rules: the lost-ticket fee a session closed by hand pays at least.
    lot = page.locator("#lot-table tr[data-lot=lot-e2e]")
    lot.locator("input[name=lost_ticket_fee]").fill("120000")
    lot.locator("button").click()
    page.wait_for_function(
        "() => document.querySelector('#lot-table tr[data-lot=lot-e2e] "
        "input[name=lost_ticket_fee]').defaultValue === '120000'"
    )
    lots = {x["id"]: x for x in central.api("GET", "/api/v1/lots", "manager").json()}
    assert lots["lot-e2e"]["lost_ticket_fee"] == 120_000
    screenshot(page, "tariffs")
    reset = central.api("PATCH", "/api/v1/lots/lot-e2e", "manager", json={"lost_ticket_fee": 0})
    assert reset.status_code == 200


def test_admin_adds_a_user_and_a_camera_whose_key_is_shown_once(
    page: Any, central: Central
) -> None:
    login(page, "admin")
    routes = page.locator("#nav a").evaluate_all("(links) => links.map(a => a.dataset.route)")
    assert {"users", "cameras", "lists", "tariffs", "audit"} <= set(routes)

    page.goto("/#/users")
    form = page.locator("#add-user")
    form.locator("input[name=username]").fill("night-guard")
    form.locator("input[name=password]").fill("long-enough-pw")
    form.locator("button[type=submit]").click()
    page.locator("tr[data-user=night-guard]").wait_for()
    screenshot(page, "users")

    page.goto("/#/cameras")
    form = page.locator("#add-camera")
    form.locator("input[name=id]").fill("gate-2-in")
    form.locator("input[name=name]").fill("Gate 2 entry")
    form.locator("button[type=submit]").click()
    key = page.locator("dialog.modal[open] input[name=api_key]")
    key.wait_for()
    api_key = key.input_value()
    assert api_key.startswith("pk_")
    screenshot(page, "camera-key")
    page.locator("dialog.modal[open] button[type=submit]").click()
    page.locator("tr[data-camera=gate-2-in]").wait_for()
    assert api_key not in page.content()  # shown once, gone with the dialog
    central.keys["gate-2-in"] = api_key
    central.heartbeat("gate-2-in")  # the key the dialog showed is the camera's
    screenshot(page, "cameras")
