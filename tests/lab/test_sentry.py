"""Sentry deployed (issue 19 item 1), seen from outside: the roles gave central and the edge
agent the lab's DSN (inventory/lab), the release they installed and the environment; an error
raised on a central host and on an edge host (`sentry-test`, the same start-up as the service's)
reaches a receiver that speaks Sentry's envelope protocol, on the machine's bridge address, with
that release and, from the lane, the lane and lot tags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from support.lab_edge import EDGE_BIN, EDGE_CONFIG
from support.sentry_receiver import SentryReceiver
from tests.lab.harness import REPO, Lab, running_lab

# inventory/lab: central_sentry_dsn / edge_sentry_dsn
HOST, PORT, KEY = "10.77.0.1", 9919, "lab"


@pytest.fixture(scope="module")
def lab() -> Lab:
    return running_lab("central:edge", "the centrals and the lanes")


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    with SentryReceiver(public_key=KEY, host=HOST, port=PORT) as receiver:
        yield receiver


def arrived(lab: Lab, sentry: SentryReceiver, host: str, app: str, printed: str) -> dict[str, Any]:
    """The test error ``sentry-test`` printed the id of, as the receiver got it: with the
    release installed on ``host`` (its `current` link), environment `lab`, no parse errors."""
    event = sentry.wait_for_event(timeout=30)
    assert event["event_id"] == json.loads(printed.strip().splitlines()[-1])["event_id"]
    installed = lab.sh(host, f"readlink /opt/{app}/current").stdout.strip().rsplit("/", 1)[-1]
    assert event["release"].startswith(f"{app}@"), event["release"]
    assert event["release"].endswith(f"+{installed}"), (event["release"], installed)
    assert event["environment"] == "lab"
    assert event["exception"]["values"][-1]["type"] == "SentryTestError"
    assert sentry.errors == []
    return event


def test_an_error_on_a_central_host_arrives_with_the_installed_release(
    lab: Lab, sentry: SentryReceiver
) -> None:
    central = sorted(lab.hosts("central"))[0]
    printed = lab.sh(central, "parking-central-admin sentry-test").stdout
    arrived(lab, sentry, central, "parking-central", printed)
    assert sentry.envelopes[0].project == "1" and f"sentry_key={KEY}" in sentry.envelopes[0].auth


def test_an_error_on_an_edge_host_arrives_with_release_lane_and_lot(
    lab: Lab, sentry: SentryReceiver
) -> None:
    edge = sorted(lab.hosts("edge"))[0]
    inventory = yaml.safe_load((REPO / "inventory/lab/hosts.yml").read_text())
    lane = str(
        inventory["all"]["children"]["lab"]["children"]["edge"]["hosts"][edge]["edge_camera_id"]
    )
    command = (
        f"runuser -u parking-edge -- {EDGE_BIN}/parking-edge sentry-test --config {EDGE_CONFIG}"
    )
    printed = lab.sh(edge, command).stdout
    assert json.loads(printed.strip().splitlines()[-1])["lane"] == lane
    event = arrived(lab, sentry, edge, "parking-edge", printed)
    assert event["tags"]["lane"] == lane and event["tags"]["lot"] == "lab", event["tags"]
