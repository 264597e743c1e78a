"""Operators' input reaches other screens as text, never as markup: free-text reasons (lane
commands, manual entries), names and payment references render literally (on the receipt too),
and plates are refused by the server unless they are plates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Central, login, logout, screenshot

PAYLOAD = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def assert_not_run(page: Any) -> None:
    assert page.evaluate("window.pwned") is None
    assert page.locator("#view img[src=x], #view script").count() == 0


def test_reason_and_names_with_markup_render_as_text(page: Any, central: Central) -> None:
    made = central.api(
        "POST",
        "/api/v1/cameras",
        "admin",
        json={"id": "gate-x", "lot_id": "lot-e2e", "direction": "exit", "name": PAYLOAD},
    )
    assert made.status_code == 201, made.text
    login(page, "guard")
    card = page.locator("[data-camera=gate-x]")
    assert card.locator("strong").first.inner_text() == PAYLOAD
    card.locator(".open-gate").click()
    dialog = page.locator("dialog.modal[open]")
    dialog.locator("textarea[name=reason]").fill(PAYLOAD)
    dialog.locator("button[type=submit]").click()
    dialog.locator(".command-progress[data-status=failed]").wait_for()  # no agent on gate-x
    reason = page.locator("#feed li[data-kind=lane_command][data-lane=gate-x] .reason").first
    reason.wait_for()
    assert reason.inner_text().endswith(PAYLOAD)
    assert_not_run(page)
    screenshot(page, "escaping-live")
    dialog.locator("button.close").click()

    logout(page)
    login(page, "manager")
    page.goto("/#/audit?action=gate.manual_open")
    cell = page.locator("tr[data-action='gate.manual_open'] .reason").first
    cell.wait_for()
    assert cell.inner_text() == PAYLOAD
    page.goto("/#/lists")
    form = page.locator("#add-entry")
    form.locator("input[name=plate]").fill("88X-000.01")
    form.locator("input[name=reason]").fill(PAYLOAD)
    form.locator("button[type=submit]").click()
    row = page.locator("#list-table tr[data-plate='88X-000.01'] .reason")
    row.wait_for()
    assert row.inner_text() == PAYLOAD
    assert_not_run(page)


def test_manual_entry_reason_and_payment_reference_with_markup_render_as_text(
    page: Any, central: Central
) -> None:
    login(page, "guard")
    page.locator("#cameras [data-camera=gate-in] .manual-entry").click()
    dialog = page.locator("dialog.modal[open]")
    dialog.locator("input[name=plate]").fill("51M-000.77")
    dialog.locator("textarea[name=reason]").fill(PAYLOAD)
    dialog.locator("button[type=submit]").click()
    dialog.locator("a.session-link").click()
    note = page.locator("#manual-note .reason")
    note.wait_for()
    assert note.inner_text() == PAYLOAD
    page.locator("tr.history[data-action='session.open_manual'] .reason").wait_for()
    assert page.locator("tr.history[data-action='session.open_manual'] .reason").inner_text() == (
        PAYLOAD
    )
    assert_not_run(page)

    # Paid ahead by card, the reference being the markup: on screen and on the receipt as text.
    entered = datetime.now(UTC) - timedelta(hours=1)
    session_id = central.post_event("gate-in", "51M-000.88", at=entered).json()["session_id"]
    page.goto(f"/#/sessions/{session_id}")
    page.click("#take-payment")
    pay = page.locator("dialog.modal[open][data-name=payment]")
    pay.locator("select[name=method]").select_option("card")
    pay.locator("input[name=reference]").fill(PAYLOAD)
    pay.locator("button[type=submit]").click()
    pay.locator("p.paid").wait_for()
    with page.context.expect_page() as opened:
        pay.locator("a.receipt[data-lang=en]").click()
    receipt = opened.value
    receipt.wait_for_load_state()
    assert PAYLOAD in receipt.locator("#receipt").inner_text()
    assert receipt.evaluate("window.pwned") is None
    assert receipt.locator("#receipt img, #receipt script").count() == 0
    receipt.close()
    pay.locator("button.close").click()
    reference = page.locator("#payments tr.payment[data-method=card] .reference")
    reference.wait_for()
    assert reference.inner_text() == PAYLOAD
    page.locator("tr.history[data-action='payment.take']").wait_for()
    assert_not_run(page)
    screenshot(page, "escaping-payment")


def test_plates_with_markup_are_refused(page: Any, central: Central) -> None:
    assert central.post_event("gate-in", "<script>", snapshot=False).status_code == 422
    session_id = central.post_event("gate-in", "51L-000.11").json()["session_id"]
    refused = central.api(
        "PATCH",
        f"/api/v1/sessions/{session_id}",
        "manager",
        json={"plate": "<b>51L</b>", "reason": "trying markup"},
    )
    assert refused.status_code == 422
    assert "<b>" not in refused.text  # errors name the field, never echo the input

    login(page, "manager")
    page.goto(f"/#/sessions/{session_id}")
    form = page.locator("#correct")
    form.locator("input[name=plate]").fill("<b>51L</b>")
    form.locator("textarea[name=reason]").fill("trying markup")
    form.locator("button[type=submit]").click()
    assert form.locator(".error").inner_text() != ""
    assert page.locator("#session-plate").inner_text() == "51L-000.11"
    assert_not_run(page)
    session = central.api("GET", f"/api/v1/sessions/{session_id}", "manager").json()
    assert session["plate"] == "51L-000.11"


def test_dashboard_code_never_parses_strings_as_html() -> None:
    """The rule the tests above check by example, checked for every line of the dashboard."""
    from tests.e2e.conftest import REPO

    banned = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(")
    sources = sorted((REPO / "app" / "central" / "dashboard").rglob("*.js"))
    assert sources
    found = [
        f"{path.name}: {word}"
        for path in sources
        for word in banned
        if word in path.read_text(encoding="utf-8")
    ]
    assert not found, found
