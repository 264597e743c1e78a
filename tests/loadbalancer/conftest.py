"""Real things on loopback for the load balancer tests: a throwaway PostgreSQL, two central
processes sharing it (``parking-central serve``), a test CA, and Debian's nginx started by
hand with the site template roles/nginx renders (nginx/parking.conf.j2, jinja2 with the role's
defaults).

Needs nginx and openssl (``scripts/ensure-nginx.sh``) and PostgreSQL
(``scripts/ensure-postgres.sh``); ``make test-loadbalancer`` installs them.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import yaml

from support.central import CentralProcess
from support.pg import PgCluster, free_port
from support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "nginx"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
CHECKER = ROLE / "files" / "parking-nginx-check"
NGINX = Path(os.environ.get("PARKING_NGINX", "/usr/sbin/nginx"))
SERVER_NAME = "parking.test"
# The name every central's certificate carries and nginx checks (roles/nginx's default).
CENTRAL_TLS_NAME: str = DEFAULTS["nginx_central_tls_name"]
PASSWORD = "correct-horse-battery"
JWT_SECRET = "loadbalancer-test-secret-" + "x" * 32
WS_PING_S = 1.0


def site_template() -> Path:
    """The file roles/nginx renders: its ``nginx_site_template`` default, ``role_path`` being
    the role's folder (nginx/parking.conf.j2)."""
    default = str(DEFAULTS["nginx_site_template"])
    return Path(default.replace("{{ role_path }}", str(ROLE))).resolve()


def render_site(variables: dict[str, Any]) -> str:
    """roles/nginx's site template with the role's defaults, overridden by ``variables``."""
    context: dict[str, Any] = {**DEFAULTS, **variables}
    template = site_template()
    env = jinja2.Environment(  # noqa: S701 - renders nginx config, not HTML
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    # Defaults that are themselves templates (inventory lookups) must be overridden.
    for key, value in context.items():
        if isinstance(value, str) and "{{" in value and key not in variables:
            context[key] = None
    return env.get_template(template.name).render(
        ansible_managed="Ansible managed (test)", **context
    )


def check_site(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(CHECKER), str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PARKING_NGINX": str(NGINX)},
        check=False,
    )


@dataclass
class TestPki:
    ca: Path
    cert: Path
    key: Path
    # The hop nginx -> central: the centrals' server certificate (the shared name roles/nginx
    # checks) and nginx's client certificate, both from the same CA.
    central_cert: Path
    central_key: Path
    upstream_cert: Path
    upstream_key: Path

    def central_tls(self) -> dict[str, str]:
        """A central's settings for HTTPS that answers only this CA's client certificates."""
        return {
            "PARKING_TLS_CERT_FILE": str(self.central_cert),
            "PARKING_TLS_KEY_FILE": str(self.central_key),
            "PARKING_TLS_CLIENT_CA_FILE": str(self.ca),
        }

    def upstream_context(self) -> ssl.SSLContext:
        """What nginx shows a central: its client certificate, the CA for the central's."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.upstream_cert), str(self.upstream_key))
        return context


def make_pki(root: Path) -> TestPki:
    """A throwaway CA and a server certificate for parking.test and 127.0.0.1."""
    root.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, cwd=root)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=Parking test CA",
    )
    (root / "san.ext").write_text(
        f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )

    def issue(name: str, subject: str, extensions: str) -> None:
        (root / f"{name}.ext").write_text(extensions)
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        )  # fmt: skip

    issue("server", f"/CN={SERVER_NAME}", (root / "san.ext").read_text())
    issue(
        "central",
        "/CN=central",
        f"subjectAltName=DNS:{CENTRAL_TLS_NAME},IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    issue(
        "nginx-upstream",
        "/CN=lb",
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    return TestPki(
        root / "ca.crt",
        root / "server.crt",
        root / "server.key",
        root / "central.crt",
        root / "central.key",
        root / "nginx-upstream.crt",
        root / "nginx-upstream.key",
    )


@dataclass
class Stack:
    root: Path
    pki: TestPki
    pg: PgCluster
    database_url: str
    active: CentralProcess
    standby: CentralProcess
    nginx_conf: Path
    site: Path
    https_port: int
    http_port: int
    status_port: int
    camera_key: str
    lot_id: str
    nginx: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"https://{SERVER_NAME}:{self.https_port}"

    @property
    def access_log(self) -> Path:
        return self.root / "logs" / "parking.access.log"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca))

    def client(self, **kwargs: Any) -> httpx.Client:
        """HTTPS to nginx by name (parking.test resolves to loopback through the transport)."""
        transport = httpx.HTTPTransport(verify=self.ssl_context(), retries=0)
        return httpx.Client(
            base_url=self.base,
            transport=transport,
            timeout=kwargs.pop("timeout", 15),
            **kwargs,
        )

    def ensure_centrals(self) -> None:
        for central in (self.active, self.standby):
            if not central.running():
                central.start()


def _resolve_test_name_to_loopback() -> None:
    """parking.test -> 127.0.0.1 for this process, so TLS checks the certificate's name."""
    import socket

    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (SERVER_NAME, CENTRAL_TLS_NAME):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def _nginx_main_conf(root: Path, site: Path) -> Path:
    conf = root / "nginx.conf"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes 2;\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        f"    client_body_temp_path {root}/tmp/body;\n"
        f"    proxy_temp_path {root}/tmp/proxy;\n"
        f"    fastcgi_temp_path {root}/tmp/fastcgi;\n"
        f"    uwsgi_temp_path {root}/tmp/uwsgi;\n"
        f"    scgi_temp_path {root}/tmp/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not NGINX.exists() or shutil.which("openssl") is None:
        pytest.fail(
            "nginx/openssl missing: run scripts/ensure-nginx.sh (make test-loadbalancer does)"
        )
    _resolve_test_name_to_loopback()
    root = tmp_path_factory.mktemp("lb")
    for sub in ("logs", "tmp", "a", "b"):
        (root / sub).mkdir()
    pki = make_pki(root / "pki")
    pg = PgCluster().init()
    pg.start()
    try:
        url = pg.create_database("parking_lb")
        env = {
            "PARKING_DATABASE_URL": url,
            "PARKING_JWT_SECRET": JWT_SECRET,
            "PARKING_WS_PING_INTERVAL_S": str(WS_PING_S),
            "PARKING_CAMERA_RATE_PER_S": "100000",
            "PARKING_CAMERA_BURST": "100000",
            "PARKING_LOGIN_ATTEMPTS_PER_MIN": "100000",
            "PARKING_LOG_JSON": "false",
            "PARKING_LOG_LEVEL": "WARNING",
            **pki.central_tls(),
        }
        active, standby = (
            CentralProcess(
                data_dir=root / sub,
                port=free_port(),
                env_extra=env,
                stop_timeout_s=25,
                name=name,
                log_file=root / "logs" / f"{name}.log",
                up_path="/api/health/ready",
                tls=pki.upstream_context(),
                tls_name=CENTRAL_TLS_NAME,
            )
            for name, sub in (("central-a", "a"), ("central-b", "b"))
        )
        active.cli("migrate")
        key = active.create_camera("lane-in", "entry", "lot-lb")
        active.cli("create-user", "admin", "--role", "admin", stdin=PASSWORD + "\n")
        https_port, http_port, status_port = free_port(), free_port(), free_port()
        site = root / "parking.conf"
        site.write_text(
            render_site(
                {
                    "_nginx_central_active": active.address,
                    "_nginx_central_backups": [standby.address],
                    "nginx_ws_ping_interval_s": WS_PING_S,
                    "_nginx_tls_cert": str(pki.cert),
                    "_nginx_tls_key": str(pki.key),
                    "nginx_server_names": [SERVER_NAME],
                    "nginx_https_port": https_port,
                    "nginx_http_port": http_port,
                    "nginx_status_port": status_port,
                    "nginx_log_dir": str(root / "logs"),
                    "nginx_pki_dir": str(root / "pki"),
                    # To the centrals over TLS with nginx's client certificate (vars/main.yml).
                    "_nginx_upstream_scheme": "https",
                    "_nginx_ca_cert": str(pki.ca),
                    "nginx_tls_dir": str(root / "pki"),
                }
            )
        )
        stack = Stack(
            root=root,
            pki=pki,
            pg=pg,
            database_url=url,
            active=active,
            standby=standby,
            nginx_conf=_nginx_main_conf(root, site),
            site=site,
            https_port=https_port,
            http_port=http_port,
            status_port=status_port,
            camera_key=key,
            lot_id="lot-lb",
        )
        active.start()
        standby.start()
        stack.nginx = subprocess.Popen(
            [str(NGINX), "-p", str(root), "-c", str(stack.nginx_conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def nginx_answers() -> bool:
            assert stack.nginx is not None
            if stack.nginx.poll() is not None:
                stderr = stack.nginx.stderr.read().decode() if stack.nginx.stderr else ""
                raise AssertionError(f"nginx exited: {stderr}")
            try:
                with stack.client(timeout=2) as client:
                    return client.get("/api/health/live").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(nginx_answers, timeout=20, what="nginx answering over TLS")
        yield stack
    finally:
        found = locals().get("stack")
        if isinstance(found, Stack):
            if found.nginx is not None and found.nginx.poll() is None:
                found.nginx.terminate()
                found.nginx.wait(timeout=10)
            found.active.stop()
            found.standby.stop()
        pg.destroy()
