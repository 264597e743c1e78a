"""Backups you can lose a site with (issue 19 item 3), after playbooks/site.yml.

Two pgBackRest repositories on two hosts (repo1 on backup1, repo2 on backup2), both encrypted
with a passphrase only their own host holds; WAL reaches both, and keeps reaching one while the
other's host is cut off (asynchronous archiving); the controller's CA and inventory are on both
hosts, encrypted, and decrypt to the real files. The full drill (every db host lost, recovery
from repo2 with backup1 crashed, point-in-time check) is bench/dr_drill.py: minutes of lab
time, not part of this suite.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import subprocess
import tarfile
import time
from typing import Any

import pytest

from support.lab_db import lab_secret
from tests.lab.harness import REPO, Lab, running_lab, wait_until

STANZA = "parking"
PSQL = "runuser -u postgres -- psql -XAtq -d postgres -c"
WRITE_PROBE = (
    "runuser -u postgres -- psql -XAtq -d postgres -c 'CREATE TABLE IF NOT EXISTS backup_probe"
    " (at timestamptz); INSERT INTO backup_probe VALUES (now())'"
)


@pytest.fixture(scope="module")
def lab() -> Lab:
    return running_lab("db:backup", "database tier and backup hosts")


@pytest.fixture(scope="module")
def repos(lab: Lab) -> dict[int, str]:
    """Repository index -> its host (backup1 holds repo1, backup2 repo2)."""
    return {int(name.removeprefix("backup")): name for name in sorted(lab.hosts("backup"))}


def info(lab: Lab, host: str, index: int) -> dict[str, Any]:
    done = lab.sh(
        host,
        f"runuser -u pgbackrest -- pgbackrest --stanza={STANZA} --repo={index} --output=json info",
    )
    stanza: dict[str, Any] = json.loads(done.stdout)[0]
    return stanza


def primary(lab: Lab) -> str:
    for name in sorted(lab.hosts("db")):
        done = lab.sh(name, f"{PSQL} 'SELECT pg_is_in_recovery()'", check=False)
        if done.stdout.strip() == "f":
            return name
    pytest.fail("no primary among the db hosts")


def switch_wal(lab: Lab, host: str) -> str:
    """Write something, close the WAL segment; return its name."""
    lab.sh(host, WRITE_PROBE)
    return lab.sh(host, f"{PSQL} 'SELECT pg_walfile_name(pg_switch_wal())'").stdout.strip()


def archived(lab: Lab, host: str, index: int, segment: str) -> bool:
    archive = info(lab, host, index).get("archive") or []
    return any(str(entry.get("max") or "") >= segment for entry in archive)


def test_two_encrypted_repositories_each_with_a_backup(lab: Lab, repos: dict[int, str]) -> None:
    assert sorted(repos) == [1, 2]
    for index, host in repos.items():
        stanza = info(lab, host, index)
        assert stanza["status"]["code"] == 0, stanza["status"]
        assert stanza["cipher"] == "aes-256-cbc", f"repo{index} on {host} is not encrypted"
        assert any(b["type"] == "full" for b in stanza["backup"]), f"no full backup in repo{index}"
        # On disk the info files are ciphertext (OpenSSL's salted format), not readable text.
        head = lab.sh(host, f"head -c 8 /var/lib/pgbackrest/archive/{STANZA}/archive.info").stdout
        assert head == "Salted__", f"repo{index}'s archive.info is not encrypted: {head!r}"
    # Only a repository host holds its passphrase; the database hosts hold none.
    for name in lab.hosts("db"):
        conf = lab.sh(name, "cat /etc/pgbackrest/pgbackrest.conf").stdout
        assert "cipher-pass" not in conf
        assert "archive-async=y" in conf and "repo2-host=" in conf
    for index, host in repos.items():
        conf = lab.sh(host, "cat /etc/pgbackrest/pgbackrest.conf").stdout
        assert f"repo{index}-cipher-pass=" in conf
        assert sum("cipher-pass=" in line for line in conf.splitlines()) == 1


def test_wal_reaches_both_and_one_while_the_other_host_is_cut(
    lab: Lab, repos: dict[int, str]
) -> None:
    source = primary(lab)
    segment = switch_wal(lab, source)
    for index, host in repos.items():
        wait_until(
            functools.partial(archived, lab, host, index, segment), f"{segment} in repo{index}", 60
        )

    lab.run("cut", repos[1])
    try:
        started = time.monotonic()
        later = switch_wal(lab, source)
        wait_until(lambda: archived(lab, repos[2], 2, later), f"{later} in repo2, repo1 cut", 60)
        assert time.monotonic() - started < 60
        assert not archived(lab, repos[2], 2, "F" * 24)  # the comparison is not vacuous
    finally:
        lab.run("restore", repos[1])
    # Back on the cable, repo1 catches up (PostgreSQL retries the segments it still holds).
    wait_until(lambda: archived(lab, repos[1], 1, later), f"{later} in repo1 after restore", 120)


def test_controller_copies_on_both_backup_hosts_decrypt_to_the_ca_and_inventory(
    lab: Lab,
) -> None:
    passphrase = lab_secret("controller_backup")
    secret = REPO / ".lab" / "controller-backup-test.pass"
    secret.write_text(passphrase)
    secret.chmod(0o600)
    try:
        for host in sorted(lab.hosts("backup")):
            newest = lab.sh(
                host, "ls -t /var/backups/parking-controller/*.vault | head -n 1"
            ).stdout.strip()
            assert newest, f"no controller copy on {host}"
            mode = lab.sh(host, f"stat -c %a {newest}").stdout.strip()
            assert mode == "600"
            sealed = lab.sh(host, f"cat {newest}").stdout
            assert sealed.startswith("$ANSIBLE_VAULT;1.2;AES256;parking-controller-backup")
            opened = subprocess.run(
                [
                    str(REPO / ".venv" / "bin" / "ansible-vault"),
                    "decrypt",
                    "--vault-id",
                    f"parking-controller-backup@{secret}",
                    "--output",
                    "-",
                    "-",
                ],
                input=sealed,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(opened)), mode="r:gz") as tar:
                names = tar.getnames()
                ca_key = next(n for n in names if n.endswith("/.lab/pki/ca.key"))
                member = tar.extractfile(ca_key)
                assert member is not None
                assert member.read() == (REPO / ".lab" / "pki" / "ca.key").read_bytes()
            assert any(n.endswith("/inventory/lab/hosts.yml") for n in names)
    finally:
        secret.unlink()


RECOVER = (
    str(REPO / ".venv" / "bin" / "ansible-playbook"),
    *("-i", "inventory/lab", "playbooks/recover.yml", "--limit", "localhost:db:etcd"),
)


def recover(*extra: str) -> tuple[int, str]:
    """recover.yml's exit code and its output with whitespace folded (YAML results wrap)."""
    done = subprocess.run(
        [*RECOVER, *extra], cwd=REPO, capture_output=True, text=True, timeout=280, check=False
    )
    return done.returncode, " ".join(done.stdout.split())


def test_recover_refuses_an_unknown_repository_and_a_cluster_that_is_there(lab: Lab) -> None:
    """recover.yml's guards (the recovery itself is bench/dr_drill.py's, minutes long)."""
    before = primary(lab)
    rc, out = recover("-e", "recover_repo=7")
    assert rc != 0 and "recover_repo=N with N one of [1, 2]" in out
    rc, out = recover("-e", "recover_repo=2", "-e", "recover_target_time='yesterday'")
    assert rc != 0 and "recover_target_time=" in out
    rc, out = recover("-e", "recover_repo=2")
    assert rc != 0 and "rebuilds on blank hosts only" in out
    assert "Stanza |" not in out and "PostgreSQL restored" not in out
    assert primary(lab) == before, "the running cluster must be left as it was"
