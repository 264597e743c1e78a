"""A handle on the running lab (lab/lab) and probes between its hosts."""

from __future__ import annotations

import functools
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]

# curl's exit codes, as seen by a prober: the answer, a refusal, a silent drop.
CURL_OK = 0
CURL_REFUSED = 7
CURL_TIMEOUT = 28
# The connection was made, but no plain HTTP came back: empty reply, TLS handshake refused.
CURL_REACHED_NOT_HTTP = (52, 35)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Lab:
    """The running lab, driven through lab/lab like a person would."""

    root: Path

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.root / "lab" / "lab"), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            pytest.fail(f"lab/lab {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def hosts(self, pattern: str = "all") -> dict[str, str]:
        """Inventory hosts matching an Ansible pattern, name -> address (asked once)."""
        return dict(_inventory_hosts(self.root, pattern))

    def address(self, host: str) -> str:
        return self.hosts(host)[host]

    def status(self) -> dict[str, str]:
        """Host name -> running | stopped | cut."""
        rows = (line.split() for line in self.run("status").stdout.splitlines())
        return {row[0]: row[-1] for row in rows if row}

    def sh(
        self, host: str, command: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside a host as root (nsenter, no SSH)."""
        return self.run("exec", host, "sh", "-c", command, check=check, timeout=timeout)

    def ssh(self, host: str, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a command as the admin user over SSH with the lab's key."""
        return self.run("ssh", host, *command, check=False, timeout=30)

    def probe(self, source: str, target: str, port: int, seconds: int = 3) -> int:
        """Whether one host reaches another's port, as curl's exit code for a plain HTTP
        request: CURL_OK when anything answered. A TLS-only port (central, behind mutual TLS)
        closes a plain request without a reply (52) or fails the handshake (35): reached too."""
        url = f"http://{self.address(target)}:{port}/"
        done = self.sh(source, f"curl -sS -o /dev/null --max-time {seconds} {url}", check=False)
        return CURL_OK if done.returncode in CURL_REACHED_NOT_HTTP else done.returncode

    def serve(self, host: str, port: int) -> None:
        """Start an HTTP listener on a host's port and wait until it answers on loopback."""
        self.sh(
            host,
            f"systemctl stop lab-probe-{port} 2>/dev/null; "
            f"systemd-run --quiet --collect --unit=lab-probe-{port} "
            f"/usr/bin/python3 -m http.server {port} --directory /var/empty",
        )
        wait_until(
            lambda: (
                self.sh(
                    host, f"curl -s -o /dev/null http://127.0.0.1:{port}/", check=False
                ).returncode
                == 0
            ),
            what=f"listener on {host}:{port}",
        )

    def stop_serving(self, host: str, port: int) -> None:
        self.sh(host, f"systemctl stop lab-probe-{port}", check=False)


@functools.cache
def _inventory_hosts(root: Path, pattern: str) -> tuple[tuple[str, str], ...]:
    lab_script = root / "lab" / "lab"
    done = subprocess.run(
        [str(lab_script), "hosts", pattern], cwd=root, capture_output=True, text=True, check=True
    )
    rows = (line.split() for line in done.stdout.splitlines() if line.strip())
    return tuple((row[0], row[1]) for row in rows)


def tcp_ssh_answers(address: str, seconds: float = 2) -> bool:
    """Whether the host's sshd accepts a TCP connection from the machine."""
    try:
        with socket.create_connection((address, 22), timeout=seconds):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 30, interval: float = 0.3
) -> None:
    """Poll a real readiness condition; fail saying what never became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"{what}: not true after {timeout:.0f}s")


def in_parallel(work: Callable[[T], R], items: list[T]) -> list[R]:
    """Probes that wait for timeouts run side by side, not one after another."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(work, items))


def running_lab(pattern: str, what: str) -> Lab:
    """The lab, failing the test at once when a host of ``pattern`` is not running."""
    handle = Lab(REPO)
    expected = handle.hosts(pattern)
    running = {name for name, state in handle.status().items() if state == "running"}
    missing = sorted(set(expected) - running)
    if missing:
        pytest.fail(f"{what} not running: {missing}; run `make lab-up lab-converge` first")
    return handle
