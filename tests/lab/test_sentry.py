"""Sentry deployed (issue 19 item 1), seen from outside: the roles gave central and the edge
agent the lab's DSN (inventory/lab), the release they installed and the environment; an error
raised on a central host and on an edge host (`sentry-test`, the same start-up as the service's)
reaches a receiver that speaks Sentry's envelope protocol, on the machine's bridge address, with
that release and, from the lane, the lane and lot tags."""

from __future__ import annotations

import json
from collections.abc import Iterator

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


def release_id(lab: Lab, host: str, app: str) -> str:
    return lab.sh(host, f"readlink /opt/{app}/current").stdout.strip().rsplit("/", 1)[-1]


def test_an_error_on_a_central_host_arrives_with_the_installed_release(
    lab: Lab, sentry: SentryReceiver
) -> None:
    central = sorted(lab.hosts("central"))[0]
    printed = json.loads(lab.sh(central, "parking-central-admin sentry-test").stdout.strip())
    event = sentry.wait_for_event(timeout=30)
    assert event["event_id"] == printed["event_id"]
    installed = release_id(lab, central, "parking-central")
    assert event["release"].startswith("parking-central@"), event["release"]
    assert event["release"].endswith(f"+{installed}"), (event["release"], installed)
    assert event["environment"] == "lab"
    assert event["exception"]["values"][-1]["type"] == "SentryTestError"
    assert sentry.envelopes[0].project == "1" and f"sentry_key={KEY}" in sentry.envelopes[0].auth
    assert sentry.errors == []


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
    printed = json.loads(lab.sh(edge, command).stdout.strip().splitlines()[-1])
    assert printed["lane"] == lane
    event = sentry.wait_for_event(timeout=30)
    assert event["event_id"] == printed["event_id"]
    installed = release_id(lab, edge, "parking-edge")
    assert event["release"].startswith("parking-edge@"), event["release"]
    assert event["release"].endswith(f"+{installed}"), (event["release"], installed)
    assert event["environment"] == "lab"
    assert event["tags"]["lane"] == lane and event["tags"]["lot"] == "lab", event["tags"]
    assert event["exception"]["values"][-1]["type"] == "SentryTestError"
    assert sentry.errors == []
