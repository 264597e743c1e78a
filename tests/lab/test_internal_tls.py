"""Every hop inside the cluster is encrypted and authenticated by the internal CA (roles/pki).

A stranger, whether it shows no certificate or one from a CA of its own (same names, another
key), gets no answer from etcd, Patroni's REST API, PostgreSQL or a central; the cluster's
own identities do. Each probe is made from a host the firewall lets through, so it is TLS,
not the firewall, that refuses.
"""

from __future__ import annotations

import base64
import shlex
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from support import lab_pki
from support.lab_db import lab_secret
from tests.lab.harness import Lab

STRANGER_DIR = "/root/stranger"


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> lab_pki.Identity:
    return lab_pki.outsider(tmp_path_factory.mktemp("stranger"))


def _put_stranger(lab: Lab, host: str, who: lab_pki.Identity) -> str:
    """The stranger's certificate and key on a host; returns curl's flags to show them."""
    for path in (who.cert, who.key):
        blob = base64.b64encode(path.read_bytes()).decode()
        lab.sh(
            host,
            f"mkdir -p {STRANGER_DIR} && echo {blob} | base64 -d > {STRANGER_DIR}/{path.name}"
            f" && chmod 600 {STRANGER_DIR}/{path.name}",
        )
    return f"--cert {STRANGER_DIR}/{who.cert.name} --key {STRANGER_DIR}/{who.key.name}"


def _curl(lab: Lab, host: str, flags: str, url: str) -> tuple[int, str]:
    done = lab.sh(
        host, f"curl -sS --max-time 5 -o /dev/null -w '%{{http_code}}' {flags} {url}", check=False
    )
    return done.returncode, done.stdout + done.stderr


def _only_the_cluster(
    lab: Lab, host: str, what: str, url: str, ca: str, member: str, stranger: lab_pki.Identity
) -> None:
    """From ``host``: ``member``'s certificate is answered, no certificate and a stranger's not."""
    rc, out = _curl(lab, host, f"{ca} {member}", url)
    assert rc == 0 and out.startswith("200"), out
    rc, out = _curl(lab, host, ca, url)
    assert rc != 0 or not out.startswith("200"), f"{what} answered without a certificate: {out}"
    rc, out = _curl(lab, host, f"{ca} {_put_stranger(lab, host, stranger)}", url)
    assert rc != 0 or not out.startswith("200"), f"{what} answered a stranger: {out}"


def test_etcd_answers_only_certificates_of_the_cluster_ca(
    lab: Lab, stranger: lab_pki.Identity
) -> None:
    db = next(iter(lab.hosts("db")))
    url = f"https://{lab.address(db)}:2379/health"
    ca = "--cacert /etc/patroni/tls/ca.crt"
    member = "--cert /etc/patroni/tls/patroni.crt --key /etc/patroni/tls/patroni.key"
    _only_the_cluster(lab, db, "etcd", url, ca, member, stranger)
    rc, out = _curl(lab, db, "", f"http://{lab.address(db)}:2379/health")
    assert rc != 0 or not out.startswith("200"), f"etcd answered plain HTTP: {out}"
    # The peers' port speaks TLS with client certificates too.
    rc, out = _curl(lab, db, ca, f"https://{lab.address(db)}:2380/members")
    assert rc != 0 or not out.startswith("200"), f"the peer port answered a stranger: {out}"


def _rest(address: str, context: ssl.SSLContext | None) -> int:
    url = f"https://{address}:8008/cluster"
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_patroni_rest_answers_only_certificates_of_the_cluster_ca(
    lab: Lab, stranger: lab_pki.Identity
) -> None:
    address = next(iter(lab.hosts("db").values()))
    assert _rest(address, lab_pki.admin().context()) == 200
    bare = ssl.create_default_context(cafile=str(lab_pki.admin().ca))
    for context in (bare, stranger.context()):  # no certificate; a stranger's
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _rest(address, context)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{address}:8008/cluster", timeout=5)


def _pg(address: str, tls: str) -> str:
    """current_user over one connection to ``address``, or the server's refusal."""
    dsn = (
        f"host={address} port=5432 dbname=parking user=parking "
        f"password={lab_secret('central_db')} connect_timeout=5 {tls}"
    )
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT current_user, ssl FROM pg_stat_ssl JOIN pg_stat_activity"
                " USING (pid) WHERE pid = pg_backend_pid()"
            ).fetchone()
            return f"ok {row}"
    except psycopg.OperationalError as error:
        return f"refused {error}"


def test_postgresql_wants_tls_and_a_client_certificate_of_the_cluster_ca(
    lab: Lab, stranger: lab_pki.Identity
) -> None:
    address = next(iter(lab.hosts("db").values()))
    admin = lab_pki.admin()
    assert _pg(address, admin.libpq()) == "ok ('parking', True)"
    plain = _pg(address, "sslmode=disable")
    assert plain.startswith("refused") and "pg_hba.conf" in plain, plain
    no_cert = _pg(address, f"sslmode=verify-full sslrootcert={admin.ca}")
    assert no_cert.startswith("refused") and "certificate" in no_cert, no_cert
    strange = _pg(address, stranger.libpq())
    assert strange.startswith("refused"), strange


def test_central_answers_only_certificates_of_the_cluster_ca(
    lab: Lab, stranger: lab_pki.Identity
) -> None:
    lb = next(iter(lab.hosts("lb")))
    central = next(iter(lab.hosts("central").values()))
    url = f"https://{central}:8000/api/health/live"
    ca = "--cacert /etc/nginx/tls/parking-ca.crt"
    nginx = "--cert /etc/nginx/tls/nginx-upstream.crt --key /etc/nginx/tls/nginx-upstream.key"
    _only_the_cluster(lab, lb, "central", url, ca, nginx, stranger)
    rc, out = _curl(lab, lb, "", f"http://{central}:8000/api/health/live")
    assert rc != 0 or not out.startswith("200"), f"central answered plain HTTP: {out}"


def test_no_key_of_the_internal_ca_left_any_host(lab: Lab) -> None:
    """The CA's key stays on the controller: no host holds a file with its public key's twin."""
    ca_key = Path(lab.root / ".lab" / "pki" / "ca.key").read_text()
    marker = shlex.quote(ca_key.splitlines()[1][:40])
    for host in lab.hosts("all"):
        found = lab.sh(
            host, f"grep -rlF {marker} /etc /root /opt /home 2>/dev/null | head -1", check=False
        )
        assert not found.stdout.strip(), f"{host} holds the CA's key: {found.stdout}"
