"""Keeps a lab's PKI folder in step with the lab: create what is missing, keep what still fits.

A certificate "still fits" when it was signed by the current CA and its subject and SANs equal
what the lab asks for now. Anything else is reissued; `rotate=True` reissues everything, the CA
included. The result says what happened to each file, so a re-run can prove it changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness import pki
from harness.lab import Lab

SA_PUBLIC = "service-account.pem"
SA_PRIVATE = "service-account-key.pem"


@dataclass
class PkiResult:
    directory: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reissued: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.reissued)


def _load_pair(directory: Path, stem: str):
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    if not (cert_path.exists() and key_path.exists()):
        return None, None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert, key


def _fits(cert: x509.Certificate, key, spec: pki.CertSpec, ca: x509.Certificate, key_size: int) -> bool:
    if cert.subject != spec.subject() or not pki.signed_by(cert, ca):
        return False
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        return False
    if key.key_size != key_size:
        return False
    want = spec.san_extension()
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        have = None
    return (set(have) if have else set()) == (set(want) if want else set())


def _ensure_ca(lab: Lab, directory: Path, rotate: bool, result: PkiResult,
               spec: pki.CertSpec = pki.CA_SPEC):
    name = f"{spec.stem}.pem"
    cert, key = (None, None) if rotate else _load_pair(directory, spec.stem)
    if cert is not None and cert.subject == spec.subject() and key.key_size == lab.pki.key_size:
        result.kept.append(name)
        return cert, key
    existed = (directory / name).exists()
    key = pki.new_key(lab.pki.key_size)
    cert = pki.build_ca(lab, key, spec)
    pki.write_private(directory / f"{spec.stem}-key.pem", pki.key_pem(key))
    pki.write_public(directory / name, pki.cert_pem(cert))
    (result.reissued if existed else result.created).append(name)
    return cert, key


def _ensure_service_account(lab: Lab, directory: Path, rotate: bool, result: PkiResult) -> None:
    """A key pair only for signing service-account tokens; the guide reused the CA key."""
    private, public = directory / SA_PRIVATE, directory / SA_PUBLIC
    if private.exists() and public.exists() and not rotate:
        result.kept.append(SA_PUBLIC)
        return
    existed = private.exists()
    key = pki.new_key(lab.pki.key_size)
    pki.write_private(private, pki.key_pem(key))
    pki.write_public(public, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (result.reissued if existed else result.created).append(SA_PUBLIC)


def ensure_pki(lab: Lab, directory: Path, rotate: bool = False) -> PkiResult:
    """Bring `directory` in line with the lab. Idempotent: a second call only keeps."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = PkiResult(directory)
    cas = {spec.stem: _ensure_ca(lab, directory, rotate, result, spec) for spec in pki.CA_SPECS}
    for spec in pki.cert_specs(lab):
        ca, ca_key = cas[spec.ca]
        ca_changed = f"{spec.ca}.pem" in result.created + result.reissued
        cert, key = (None, None) if (rotate or ca_changed) else _load_pair(directory, spec.stem)
        name = f"{spec.stem}.pem"
        if cert is not None and _fits(cert, key, spec, ca, lab.pki.key_size):
            result.kept.append(name)
            continue
        existed = (directory / name).exists()
        key = pki.new_key(lab.pki.key_size)
        leaf = pki.build_leaf(lab, spec, key, ca, ca_key)
        pki.write_private(directory / f"{spec.stem}-key.pem", pki.key_pem(key))
        pki.write_public(directory / name, pki.cert_pem(leaf))
        (result.reissued if existed else result.created).append(name)
    _ensure_service_account(lab, directory, rotate, result)
    return result

