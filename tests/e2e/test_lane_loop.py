"""The lane's loop from the gate house: a guard opens a lane and watches the real lane agent's
relay pulse; an unpaid exit waits (amber) until the cashier takes cash, which opens the barrier
and prints a receipt; a vehicle the camera missed is typed in, closed by hand with a lost ticket
and paid; a phantom session is voided by a manager.

The lane agent is the real ``parking-edge simulate`` (no synthetic traffic) holding the command
long poll of two lanes of their own (``loop-in``/``loop-out``, registered through the admin API),
its relays writing one JSON line per pulse: what moved the barrier is read from that file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    LOT,
    OUTPUT,
    Central,
    LaneAgent,
    login,
    logout,
    screenshot,
    start_lane_agent,
)

ENTRY, EXIT = "loop-in", "loop-out"
LOST_TICKET_FEE = 100_000


def vnd(amount: int) -> str:
    """The amount as the Vietnamese screen groups it (the currency sign aside)."""
    return f"{amount:,}".replace(",", ".")


@pytest.fixture(scope="module")
def lane(central: Central, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaneAgent]:
    central.add_camera(ENTRY, "entry", "Loop entry")
    central.add_camera(EXIT, "exit", "Loop exit")
    agent = start_lane_agent(
        central, entry=ENTRY, exit_=EXIT, workdir=tmp_path_factory.mktemp("edge")
    )
    yield agent
    agent.stop()


def steps_have_times(progress: Any) -> None:
    for step in ("issued", "delivered", "pulsed"):
        shown = progress.locator(f".step[data-step={step}] time").inner_text()
        assert shown and shown != "\u2013", (step, shown)  # an en dash: no time yet


def test_guard_opens_a_lane_and_the_dialog_follows_the_command_to_the_relay(
    page: Any, central: Central, lane: LaneAgent
) -> None:
    reason = f"visitor for the office {uuid.uuid4().hex[:6]}"
    login(page, "guard")
    card = page.locator(f"#cameras [data-camera={EXIT}]")
    card.locator(".open-gate").click()
    dialog = page.locator("dialog.modal[open][data-name=open-gate]")
    dialog.locator("textarea[name=reason]").fill(reason)
    dialog.locator("button[type=submit]").click()

    progress = dialog.locator(".command-progress")
    progress.wait_for()
    command_id = dialog.get_attribute("data-command-id")
    assert command_id
    page.wait_for_selector(
        f"dialog.modal[open] .command-progress[data-status=pulsed][data-command-id='{command_id}']"
    )
    # The relay moved before central heard of it, and central before the screen: by the time
    # the dialog says "pulsed", the lane's relay file holds the pulse of exactly this command.
    pulse = lane.pulse_for(f"command:{command_id}")
    assert pulse is not None, lane.pulses()
    assert pulse["camera"] == EXIT
    steps_have_times(progress)
    assert "Đã mở barie" in progress.locator(".status").inner_text()
    screenshot(page, "lane-open-pulsed")

    item = page.locator(f"#feed li[data-kind=lane_command][data-command-id='{command_id}']")
    item.locator(".command-progress[data-status=pulsed]").wait_for()
    assert reason in item.inner_text() and "guard" in item.inner_text()
    dialog.locator("button.close").click()
    assert page.locator("dialog.modal[open]").count() == 0

    command = central.api("GET", f"/api/v1/commands/{command_id}", "guard").json()
    assert command["status"] == "pulsed" and command["operator"] == "guard"
    assert command["delivered_at"] and command["acked_at"]
    assert [p["cause"] for p in lane.pulses()].count(f"command:{command_id}") == 1  # once

    # A reload reads the feed again: the command is still there, with its outcome.
    page.reload()
    page.wait_for_selector("#link[data-state=live]")
    page.locator(
        f"#feed li[data-command-id='{command_id}'] .command-progress[data-status=pulsed]"
    ).wait_for()


def test_an_outcome_missed_while_the_feed_was_down_is_read_again_on_reconnect(
    page: Any, central: Central, lane: LaneAgent
) -> None:
    """The live feed loses the command's messages (dropped in the browser's WebSocket route);
    after the reconnect the dialog reads the command again (GET /commands/{id})."""
    live: dict[str, Any] = {"drop": True, "routes": []}

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        live["routes"].append(ws)

        def from_server(message: str | bytes) -> None:
            if live["drop"] and isinstance(message, str) and '"lane_command"' in message:
                return  # lost on the way, as with a connection that died unnoticed
            ws.send(message)

        server.on_message(from_server)

    page.route_web_socket("**/api/v1/live", route)
    login(page, "guard")
    page.locator(f"#cameras [data-camera={EXIT}] .open-gate").click()
    dialog = page.locator("dialog.modal[open][data-name=open-gate]")
    dialog.locator("textarea[name=reason]").fill("delivery van, driver at the intercom")
    dialog.locator("button[type=submit]").click()
    dialog.locator(".command-progress").wait_for()
    command_id = dialog.get_attribute("data-command-id")
    lane.wait_for_pulse(f"command:{command_id}")
    # The barrier moved, central knows it, the screen cannot: it still shows the command sent.
    page.wait_for_function(
        "(id) => fetch(`/api/v1/commands/${id}`, {headers: {Authorization: 'Bearer ' +"
        " JSON.parse(sessionStorage.getItem('auth')).token}}).then(r => r.json())"
        ".then(c => c.status === 'pulsed')",
        arg=command_id,
    )
    assert dialog.locator(".command-progress").get_attribute("data-status") == "pending"

    live["drop"] = False
    live["routes"][-1].close(code=1011, reason="test: connection lost")
    page.wait_for_selector("#link[data-state=down], #link[data-state=connecting]")
    page.wait_for_selector("#link[data-state=live]", timeout=15_000)
    dialog.locator(".command-progress[data-status=pulsed]").wait_for()
    steps_have_times(dialog.locator(".command-progress"))
    dialog.locator("button.close").click()


def test_unpaid_exit_waits_until_the_cashier_takes_cash_and_the_barrier_opens(
    page: Any, central: Central, lane: LaneAgent
) -> None:
    plate = "51F-246.80"
    login(page, "guard")
    page.locator("#waiting").wait_for()
    entered = datetime.now(UTC) - timedelta(hours=2)
    assert central.post_event(ENTRY, plate, at=entered).json()["decision"]["action"] == "open"
    exit_ = central.post_event(EXIT, plate).json()
    assert exit_["decision"]["action"] == "hold", exit_
    assert exit_["decision"]["reason"] == "payment_required"
    due = exit_["decision"]["fee"]
    assert due >= 40_000
    session_id = exit_["session_id"]

    # An amber row in the feed, and the session in the Waiting at exit panel.
    row = page.locator(f"#feed li[data-held][data-session='{session_id}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "waiting"
    assert vnd(due) in row.inner_text()
    assert row.locator(".waiting-label").text_content() == "Chờ thanh toán"
    waiting = page.locator(f"#waiting li[data-session='{session_id}']")
    waiting.wait_for()
    assert vnd(due) in waiting.inner_text() and EXIT in waiting.inner_text()
    assert waiting.locator(".due").get_attribute("data-due") == str(due)
    screenshot(page, "held-exit")
    pulses_before = len(lane.pulses())

    row.locator("button.take-payment").click()
    dialog = page.locator("dialog.modal[open][data-name=payment]")
    dialog.wait_for()
    assert dialog.locator(".due").get_attribute("data-due") == str(due)
    assert dialog.locator("select[name=method] option[value=waived]").count() == 0  # a guard
    dialog.locator("select[name=method]").select_option("card")
    dialog.locator("input[name=reference]").wait_for()  # card and transfer need a reference
    dialog.locator("select[name=method]").select_option("cash")
    assert not dialog.locator("input[name=reference]").is_visible()
    screenshot(page, "payment-dialog")
    dialog.locator("button[type=submit]").click()

    paid = dialog.locator("p.paid")
    paid.wait_for()
    payment_id = paid.get_attribute("data-payment")
    payment = central.api("GET", f"/api/v1/payments/{payment_id}", "guard").json()
    assert (payment["amount"], payment["method"], payment["camera_id"]) == (due, "cash", EXIT)
    command_id = payment["command_id"]
    assert command_id
    page.wait_for_selector(
        f"dialog.modal[open] .command-progress[data-command-id='{command_id}'][data-status=pulsed]"
    )
    # The hold moved nothing; the payment moved the exit's barrier once, for its command.
    new = lane.pulses()[pulses_before:]
    assert [(p["cause"], p["camera"]) for p in new] == [(f"command:{command_id}", EXIT)], new
    screenshot(page, "payment-pulsed")

    # The receipt, opened from the dialog as the cashier would print it.
    with page.context.expect_page() as opened:
        dialog.locator("a.receipt[data-lang=vi]").click()
    receipt = opened.value
    receipt.wait_for_load_state()
    text = receipt.locator("#receipt").inner_text()
    assert f"{vnd(due)} ₫" in text and plate in text and "Tiền mặt" in text, text
    receipt.screenshot(path=str(OUTPUT / "receipt-vi.png"), full_page=True)
    receipt.close()
    # The English one, fetched with the page's own token.
    token = page.evaluate("JSON.parse(sessionStorage.getItem('auth')).token")
    english = httpx.get(
        f"{central.url}/api/v1/payments/{payment_id}/receipt?lang=en",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert english.status_code == 200
    assert f"{due:,} ₫" in english.text and "Cash" in english.text

    dialog.locator("button.close").click()
    # Nobody waits any more; the feed row says what was taken and that the barrier opened.
    waiting.wait_for(state="detached")
    paid_row = page.locator(f"#feed li[data-held][data-session='{session_id}'][data-state=paid]")
    paid_row.wait_for()
    paid_row.locator(".command-progress[data-status=pulsed]").wait_for()
    assert vnd(due) in paid_row.locator(".paid-label").inner_text()
    screenshot(page, "held-exit-paid")
    session = central.api("GET", f"/api/v1/sessions/{session_id}", "guard").json()
    assert (session["status"], session["paid_amount"]) == ("closed", due)


@pytest.fixture
def lost_ticket_fee(central: Central) -> Iterator[int]:
    lot = f"/api/v1/lots/{LOT}"
    changed = central.api("PATCH", lot, "manager", json={"lost_ticket_fee": LOST_TICKET_FEE})
    assert changed.status_code == 200, changed.text
    yield LOST_TICKET_FEE
    central.api("PATCH", lot, "manager", json={"lost_ticket_fee": 0})


def test_missed_vehicle_typed_in_closed_with_a_lost_ticket_paid_and_a_phantom_voided(
    page: Any, central: Central, lane: LaneAgent, lost_ticket_fee: int
) -> None:
    # The entry camera's latest picture (a poster on a van, read as a plate: a phantom).
    phantom = central.post_event(ENTRY, "30K-111.11").json()
    phantom_id = phantom["session_id"]
    plate, why = "51K-555.66", f"mud on the plate {uuid.uuid4().hex[:6]}"

    login(page, "guard")
    page.locator(f"#cameras [data-camera={ENTRY}] .manual-entry").click()
    dialog = page.locator("dialog.modal[open][data-name=manual-entry]")
    dialog.locator("input[name=plate]").fill("51k-555.66")
    dialog.locator("select[name=vehicle_type]").select_option("car")
    dialog.locator("textarea[name=reason]").fill(why)
    dialog.locator("input[name=open_gate]").check()
    dialog.locator("button[type=submit]").click()
    link = dialog.locator("a.session-link")
    link.wait_for()
    session_id = int(dialog.get_attribute("data-session") or 0)
    assert plate in link.inner_text()
    dialog.locator(".command-progress[data-status=pulsed]").wait_for()
    command_id = dialog.locator(".command-progress").get_attribute("data-command-id")
    assert lane.pulse_for(f"command:{command_id}")["camera"] == ENTRY  # type: ignore[index]
    screenshot(page, "manual-entry")
    link.click()  # closes the dialog, opens the session

    page.locator("#manual-note").wait_for()
    assert why in page.locator("#manual-note .reason").inner_text()
    assert page.locator("#session-status").get_attribute("data-status") == "open"
    page.wait_for_function(
        "() => { const i = document.querySelector('figure.shot[data-side=manual] img');"
        " return i && i.complete && i.naturalWidth === 320; }"
    )
    session = central.api("GET", f"/api/v1/sessions/{session_id}", "guard").json()
    assert session["snapshot_event_id"] == phantom["event_id"]  # the lane's latest picture
    page.locator("tr.history[data-action='session.open_manual']", has_text=why).wait_for()
    page.locator(
        f"#commands tr[data-command-id='{command_id}'] .command-progress[data-status=pulsed]"
    ).wait_for()
    assert page.locator("#void-session").count() == 0  # managers only
    screenshot(page, "manual-session")

    # Close by hand: the driver lost the ticket.
    page.click("#close-session")
    close = page.locator("dialog.modal[open][data-name=close-session]")
    close.locator("textarea[name=reason]").fill("lost ticket, registration checked")
    close.locator("input[name=lost_ticket]").check()
    close.locator("button[type=submit]").click()
    page.locator("#action-result[data-kind=close-session]").wait_for()
    assert vnd(lost_ticket_fee) in page.locator("#action-result").inner_text()
    assert page.locator("#session-status").get_attribute("data-status") == "closed"
    page.wait_for_selector(f"#due[data-due='{lost_ticket_fee}']")
    page.locator(
        "tr.history[data-action='session.close_manual']", has_text="lost ticket, registration"
    ).wait_for()
    assert page.locator("#close-session").count() == 0
    screenshot(page, "manual-close")

    # The cashier takes it from the session and opens the exit lane for the vehicle.
    page.click("#take-payment")
    pay = page.locator("dialog.modal[open][data-name=payment]")
    assert pay.locator(".due").get_attribute("data-due") == str(lost_ticket_fee)
    pay.locator("select[name=method]").select_option("transfer")
    pay.locator("input[name=reference]").fill("VCB-778899")
    pay.locator("select[name=camera_id]").select_option(EXIT)
    pay.locator("button[type=submit]").click()
    pay.locator(".command-progress[data-status=pulsed]").wait_for()
    paid_command = pay.locator(".command-progress").get_attribute("data-command-id")
    assert lane.pulse_for(f"command:{paid_command}")["camera"] == EXIT  # type: ignore[index]
    pay.locator("button.close").click()
    row = page.locator("#payments tr.payment[data-method=transfer]")
    row.wait_for()
    assert "VCB-778899" in row.inner_text() and vnd(lost_ticket_fee) in row.inner_text()
    assert row.locator("a.receipt").count() == 2
    page.wait_for_selector("#due[data-due='0']")
    assert page.locator("#take-payment").count() == 0
    assert page.locator("#commands tr.command").count() == 2
    page.locator("tr.history[data-action='payment.take']", has_text="VCB-778899").wait_for()
    screenshot(page, "manual-paid")

    # A manager voids the phantom.
    logout(page)
    login(page, "manager")
    page.goto(f"/#/sessions/{phantom_id}")
    page.click("#void-session")
    void = page.locator("dialog.modal[open][data-name=void-session]")
    void.locator("textarea[name=reason]").fill("read a poster on a van")
    void.locator("button[type=submit]").click()
    page.locator("#action-result[data-kind=void-session]").wait_for()
    assert page.locator("#session-status").get_attribute("data-status") == "void"
    assert page.locator("#session-status").inner_text() == "Đã hủy"
    page.locator("tr.history[data-action='session.void']", has_text="a poster").wait_for()
    assert page.locator("#void-session, #close-session, #take-payment").count() == 0
    screenshot(page, "void-session")
    voided = central.api("GET", f"/api/v1/sessions/{phantom_id}", "manager").json()
    assert (voided["status"], voided["manual_by"]) == ("void", "manager")


def test_a_manager_waives_a_held_fee_with_a_reason_and_the_lane_opens(
    page: Any, central: Central, lane: LaneAgent
) -> None:
    plate = "29A-135.79"
    central.post_event(ENTRY, plate, at=datetime.now(UTC) - timedelta(minutes=90))
    held = central.post_event(EXIT, plate).json()
    assert held["decision"]["action"] == "hold"
    session_id, due = held["session_id"], held["decision"]["fee"]

    login(page, "manager")
    page.locator(f"#waiting li[data-session='{session_id}'] button.take-payment").click()
    dialog = page.locator("dialog.modal[open][data-name=payment]")
    dialog.locator("select[name=method]").select_option("waived")
    dialog.locator("textarea[name=note]").fill("ab")  # too short: refused in the dialog
    dialog.locator("button[type=submit]").click()
    assert "lý do" in dialog.locator("p.error").inner_text()
    assert dialog.get_attribute("data-state") == "form"
    dialog.locator("textarea[name=note]").fill("barrier hit the car, apology")
    dialog.locator("button[type=submit]").click()
    assert vnd(due) in dialog.locator("p.paid").inner_text()
    dialog.locator(".command-progress[data-status=pulsed]").wait_for()
    command_id = dialog.locator(".command-progress").get_attribute("data-command-id")
    assert lane.pulse_for(f"command:{command_id}")["camera"] == EXIT  # type: ignore[index]
    dialog.locator("button.close").click()
    page.locator(f"#waiting li[data-session='{session_id}']").wait_for(state="detached")
    payment = central.api("GET", "/api/v1/payments", "manager", params={"method": "waived"})
    waived = [p for p in payment.json() if p["session_id"] == session_id]
    assert [(p["amount"], p["due"], p["note"]) for p in waived] == [
        (0, due, "barrier hit the car, apology")
    ]


def test_manager_sees_money_taken_by_method_over_a_range(page: Any, central: Central) -> None:
    today = central.api("GET", "/api/v1/reports/revenue", "manager").json()
    assert today["first"] == today["last"]
    login(page, "manager")
    page.goto("/#/reports")
    table = page.locator("#revenue-table")
    table.locator("tr[data-method=total]").wait_for()
    assert page.locator("#revenue input[name=start]").input_value() == today["first"]
    cells = table.locator("tr[data-method=total] td").all_inner_texts()
    assert cells[2] == str(today["totals"]["payments"]), cells
    assert vnd(today["totals"]["amount"]) in cells[3], cells
    for row in today["by_method"]:
        shown = table.locator(f"tr[data-method={row['method']}][data-lot-id={row['lot_id']}]")
        assert vnd(row["amount"]) in shown.locator("td.amount").inner_text()
        assert vnd(row["settled"]) in shown.locator("td.settled").inner_text()
    waived = today["totals"]["waived"]
    assert page.locator("#revenue-waived").get_attribute("data-waived") == str(waived)
    screenshot(page, "revenue")

    # A range that ends before it starts is refused, and says so; a week back is accepted.
    first = date.fromisoformat(today["first"])
    page.fill("#revenue input[name=start]", (first + timedelta(days=1)).isoformat())
    page.fill("#revenue input[name=end]", first.isoformat())
    page.click("#revenue-range button[type=submit]")
    page.locator("#revenue .error", has_text="end").wait_for()
    page.fill("#revenue input[name=start]", (first - timedelta(days=7)).isoformat())
    page.fill("#revenue input[name=end]", first.isoformat())
    page.click("#revenue-range button[type=submit]")
    page.wait_for_url(f"**start={(first - timedelta(days=7)).isoformat()}**")
    page.locator("#revenue-waived").wait_for()
    week = central.api(
        "GET",
        "/api/v1/reports/revenue",
        "manager",
        params={"start": (first - timedelta(days=7)).isoformat(), "end": first.isoformat()},
    ).json()
    total = page.locator("#revenue-table tr[data-method=total] td").all_inner_texts()
    assert total[2] == str(week["totals"]["payments"])

    logout(page)
    login(page, "guard")  # revenue by method is for managers
    page.goto("/#/reports")
    page.locator("#report-table table").wait_for()
    assert page.locator("#revenue").count() == 0
