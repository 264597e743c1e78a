"""What operators do at the gate: open a gate by hand (audited; refused at once when no lane
agent listens), correct a misread plate (fee re-evaluated), keep the allow list, and watch
anomalies arrive (overstay among the kinds)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Central, login, logout, screenshot


def test_manual_gate_open_needs_a_reason_and_lands_in_the_audit_log(
    page: Any, central: Central
) -> None:
    reason = f"ticket printer jammed {uuid.uuid4().hex[:6]}"
    login(page, "guard")
    page.click("[data-camera=gate-out] .open-gate")
    dialog = page.locator("dialog.modal[open]")
    dialog.wait_for()
    screenshot(page, "gate-open-dialog")
    dialog.locator("button[type=submit]").click()  # no reason: the form refuses
    assert dialog.is_visible()
    dialog.locator("textarea[name=reason]").fill(reason)
    dialog.locator("button[type=submit]").click()
    # No lane agent holds gate-out's command poll: central fails the command at once (nothing
    # is queued to open a barrier later), and the dialog and the feed say so, in red.
    failed = dialog.locator(".command-progress[data-status=failed]")
    failed.wait_for()
    assert "lane offline" in failed.locator(".detail").inner_text()
    item = page.locator("#feed li[data-kind=lane_command]", has_text=reason)
    item.wait_for()
    assert "guard" in item.inner_text()
    assert item.locator(".command-progress.bad[data-status=failed]").count() == 1
    screenshot(page, "gate-open-failed")
    # The dialog offers to order the lane again: a new command (still nobody listening).
    dialog.locator("button.retry-open").click()
    page.wait_for_function(
        "() => document.querySelectorAll('dialog.modal[open] "
        ".command-progress[data-status=failed]').length === 2"
    )
    ids = dialog.locator(".command-progress").evaluate_all(
        "(els) => els.map((e) => e.dataset.commandId)"
    )
    again = central.api("GET", f"/api/v1/commands/{ids[1]}", "guard").json()
    assert again["camera_id"] == "gate-out" and reason in again["reason"] and ids[0] != ids[1]
    dialog.locator("button.close").click()

    entries = central.api(
        "GET", "/api/v1/audit", "manager", params={"action": "gate.manual_open"}
    ).json()
    assert any(e["reason"] == reason and e["actor"] == "guard" for e in entries), entries

    logout(page)
    login(page, "manager")
    page.goto("/#/audit")
    # The first order and its retry ("again: <reason>"), newest first: the first is the last.
    row = page.locator("tr[data-action='gate.manual_open']", has_text=reason).last
    row.wait_for()
    assert page.locator("tr[data-action='gate.manual_open']", has_text=reason).count() == 2
    assert "guard" in row.inner_text()
    assert "gate-out" in row.inner_text()
    screenshot(page, "audit")


def test_manager_corrects_a_misread_plate_and_sees_the_fee_change(
    page: Any, central: Central
) -> None:
    login(page, "manager")
    # The real plate is on the allow list (free); the camera misread its last digit.
    page.goto("/#/lists")
    form = page.locator("#add-entry")
    form.locator("input[name=plate]").fill("30e-999.99")
    form.locator("select[name=kind]").select_option("allow")
    form.locator("input[name=reason]").fill("director's car")
    form.locator("button[type=submit]").click()
    page.locator("#list-table tr[data-plate='30E-999.99']").wait_for()
    screenshot(page, "lists")

    entered = datetime.now(UTC) - timedelta(minutes=100)
    entry = central.post_event("gate-in", "30E-999.90", at=entered).json()
    exit_ = central.post_event("gate-out", "30E-999.90").json()
    assert exit_["decision"]["fee"] == 40_000, exit_  # two started hours
    session_id = entry["session_id"]

    # Exact search misses a plate one character short; within one character finds it.
    page.goto("/#/sessions")
    search = page.locator("#search")
    search.locator("input[name=plate]").fill("30E-999.9")
    search.locator("button[type=submit]").click()
    page.wait_for_url("**plate=30E-999.9**")
    page.locator("td.empty").wait_for()
    search = page.locator("#search")
    search.locator("input[name=fuzzy]").check()
    search.locator("button[type=submit]").click()
    row = page.locator(f"tr[data-session='{session_id}']")
    row.wait_for()
    screenshot(page, "sessions")
    row.click()

    fee = page.locator("#fee")
    page.wait_for_selector("#fee[data-fee='40000']")
    assert "40.000" in fee.inner_text()  # Vietnamese grouping
    page.wait_for_function(
        "() => [...document.querySelectorAll('figure.shot img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === 2"
    )
    sides = page.locator("figure.shot").evaluate_all("(fs) => fs.map(f => f.dataset.side)")
    assert sides == ["entry", "exit"]
    screenshot(page, "session-detail")

    correction = page.locator("#correct")
    correction.locator("input[name=plate]").fill("30E-999.99")
    correction.locator("textarea[name=reason]").fill("entry camera read 9 as 0")
    correction.locator("button[type=submit]").click()
    page.wait_for_selector("#fee[data-fee='0']")
    assert page.locator("#session-plate").inner_text() == "30E-999.99"
    page.locator("tr.history", has_text="entry camera read 9 as 0").wait_for()
    screenshot(page, "session-corrected")

    session = central.api("GET", f"/api/v1/sessions/{session_id}", "manager").json()
    assert (session["plate"], session["fee"]) == ("30E-999.99", 0)


def test_guard_cannot_correct_plates_or_reach_manager_screens(page: Any, central: Central) -> None:
    entry = central.post_event("gate-in", "43A-246.80").json()
    login(page, "guard")
    routes = page.locator("#nav a").evaluate_all("(links) => links.map(a => a.dataset.route)")
    assert routes == ["live", "sessions", "anomalies", "reports"]
    page.goto(f"/#/sessions/{entry['session_id']}")
    page.locator("#session-plate").wait_for()
    assert page.locator("#correct").count() == 0
    page.goto("/#/users")
    page.wait_for_url("**#/live")


def test_anomalies_appear_as_they_are_recorded(page: Any, central: Central) -> None:
    login(page, "guard")
    page.goto("/#/anomalies")
    page.locator("#anomaly-table table").wait_for()
    assert central.post_event("gate-out", "77C-111.22").status_code == 200  # never entered
    assert central.post_event("gate-in", "77C-333.44", confidence=0.41).status_code == 200
    page.locator("tr[data-kind=exit_without_entry]", has_text="77C-111.22").wait_for()
    page.locator("tr[data-kind=low_confidence]", has_text="77C-333.44").wait_for()
    kinds = page.locator("select[name=kind] option").evaluate_all("(os) => os.map(o => o.value)")
    assert "overstay" in kinds
    page.select_option("select[name=kind]", "overstay")
    page.wait_for_url("**kind=overstay**")
    page.locator("#anomaly-table table").wait_for()
    label = page.locator("select[name=kind] option[value=overstay]").inner_text()
    assert label == "Gửi quá thời hạn"
    page.goto("/#/anomalies")
    page.locator("tr[data-kind=low_confidence]", has_text="77C-333.44").wait_for()
    screenshot(page, "anomalies")
