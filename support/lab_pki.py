"""The lab machine's own identities under the lab's internal CA (roles/pki, in .lab/pki).

Inside the cluster every hop wants a client certificate the internal CA signed (etcd,
Patroni's REST API, PostgreSQL, central behind nginx). The benches and lab tests dial some of
them from the machine itself, standing in for a central or an operator: this module gives
them a certificate of their own (``lab-admin``, issued here on first use with the CA's key,
which lives on this machine like any controller's), and, to prove the opposite, one from a
CA the cluster has never seen.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[1]
PKI = REPO / ".lab" / "pki"


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path
    ca: Path

    def context(self) -> ssl.SSLContext:
        """TLS that trusts the lab's CA only and shows this certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def libpq_params(self) -> dict[str, str]:
        """libpq parameters: the server's certificate and name checked, ours shown."""
        return {
            "sslmode": "verify-full",
            "sslrootcert": str(self.ca),
            "sslcert": str(self.cert),
            "sslkey": str(self.key),
        }

    def libpq(self) -> str:
        """The same as a conninfo fragment."""
        return " ".join(f"{name}={value}" for name, value in self.libpq_params().items())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)  # libpq refuses a key others may read


def _issue(
    name: str, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, days: int = 30
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    return cert, key


def admin(name: str = "lab-admin") -> Identity:
    """The machine's client certificate from the lab's CA (made once, renewed when near expiry)."""
    ca_cert_path, ca_key_path = PKI / "ca.crt", PKI / "ca.key"
    if not ca_key_path.exists():
        raise FileNotFoundError(f"{ca_key_path}: no lab CA yet (converge the lab first)")
    issued = PKI / "issued"
    cert_path, key_path = issued / f"{name}.crt", issued / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        if fresh and cert.issuer == ca.subject:
            return Identity(cert_path, key_path, ca_cert_path)
    ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the lab CA's key is not an EC key")
    cert, key = _issue(name, ca.subject, ca_key)
    issued.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(cert_path, key_path, ca_cert_path)


def outsider(directory: Path) -> Identity:
    """A certificate from a CA of its own (not the cluster's): what a stranger could show.
    ``ca`` is the cluster's CA, so the stranger does check the servers it dials."""
    directory.mkdir(parents=True, exist_ok=True)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parking 24/7 internal CA")])
    cert, key = _issue("lab-admin", rogue, rogue_key)
    cert_path, key_path = directory / "outsider.crt", directory / "outsider.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(cert_path, key_path, PKI / "ca.crt")
