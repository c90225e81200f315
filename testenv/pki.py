"""Certificates and keys for the local control plane, generated with ``cryptography``.

Everything is created fresh for each control plane, in its work directory, and thrown away with it:
a self-signed CA, a serving certificate for the loopback API server (also used by the
controller-manager and scheduler health endpoints so they can be checked against the same CA),
client certificates for the admin and for each component, and the RSA key pair that signs and
verifies ServiceAccount tokens.

Extensions follow RFC 5280 closely (CA: critical basicConstraints, keyCertSign/cRLSign and a subject
key id; leaves: an authority key id) because Python >= 3.13's ``ssl`` verifies strictly and rejects
chains that older OpenSSL defaults let through. Leaf keys are ECDSA P-256 (instant to generate);
the ServiceAccount key is RSA because RS256 is what every token consumer understands.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVING_HOSTS: tuple[str, ...] = (
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
"""Names the API server certificate is valid for (loopback only, plus the in-cluster names)."""

CLIENT_IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ("system:masters",)),
    "kube-scheduler": ("system:kube-scheduler", ("system:masters",)),
    "kwok": ("system:kwok", ("system:masters",)),
}
"""Client certificate per user: (common name = user, organizations = groups).

Each component gets its own user name so audit logs and managedFields say who wrote what (kwok vs
the Job controller vs the operator); all are in system:masters because the controller-manager runs
with ``--use-service-account-credentials=false`` and needs every controller's permissions."""

_VALIDITY = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class PKI:
    """Paths of the generated files (PEM)."""

    directory: Path
    ca: CertPair
    serving: CertPair
    service_account_key: Path
    service_account_pub: Path
    clients: dict[str, CertPair] = field(default_factory=dict)

    @property
    def admin(self) -> CertPair:
        return self.clients["admin"]


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class _Issuer:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key
        self.now = dt.datetime.now(dt.UTC)

    def leaf(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        usage: list[x509.ObjectIdentifier],
        hosts: tuple[str, ...] = (),
    ) -> x509.Certificate:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(minutes=5))
            .not_valid_after(self.now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if hosts:
            builder = builder.add_extension(_san(hosts), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def _make_ca() -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = _name("agentic-testenv-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(cert, key)


def generate_pki(directory: Path, hosts: tuple[str, ...] = SERVING_HOSTS) -> PKI:
    """Create a CA and every certificate/key the control plane needs under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _make_ca()
    ca = CertPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(ca.cert, issuer.cert)
    _write_key(ca.key, issuer.key)

    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = issuer.leaf(
        _name("kube-apiserver"), serving_key, [ExtendedKeyUsageOID.SERVER_AUTH], hosts
    )
    serving = CertPair(directory / "serving.crt", directory / "serving.key")
    _write_cert(serving.cert, serving_cert)
    _write_key(serving.key, serving_key)

    clients: dict[str, CertPair] = {}
    for file_name, (user, groups) in CLIENT_IDENTITIES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issuer.leaf(_name(user, groups), key, [ExtendedKeyUsageOID.CLIENT_AUTH])
        pair = CertPair(directory / f"{file_name}.crt", directory / f"{file_name}.key")
        _write_cert(pair.cert, cert)
        _write_key(pair.key, key)
        clients[file_name] = pair

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path = directory / "service-account.key"
    sa_pub_path = directory / "service-account.pub"
    _write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return PKI(
        directory=directory,
        ca=ca,
        serving=serving,
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
        clients=clients,
    )
