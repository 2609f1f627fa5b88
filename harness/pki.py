"""The lab's certificates, built with `cryptography` the way the guide builds them with cfssl.

The guide's ca-config has one profile, `kubernetes`: expiry 876000h and the usages signing, key
encipherment, server auth and client auth. Every leaf here gets that profile, as cfssl would give
it. Files keep the guide's names (ca.pem, ca-key.pem, etcd.pem, ...); certificates that differ per
machine carry the machine name in the folder (`etcd-master01.pem` here, `etcd.pem` on master01).

Re-running keeps every certificate whose subject, SANs and CA still match the lab; it reissues only
what changed, and everything when asked to rotate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.lab import Lab, Machine

# The guide's CSR "names" block, shared by the CA and every leaf.
GUIDE_NAMES = {"C": "CN", "ST": "BeiJing", "L": "BeiJing", "OU": "System"}
_OIDS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
         "L": NameOID.LOCALITY_NAME, "O": NameOID.ORGANIZATION_NAME,
         "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}
_ORDER = ("C", "ST", "L", "O", "OU", "CN")


@dataclass(frozen=True)
class CertSpec:
    """One certificate: what the guide's CSR JSON says, plus the local file stem."""

    stem: str                      # local file stem: <stem>.pem and <stem>-key.pem
    cn: str
    org: str
    sans: tuple[str, ...] = ()
    ca: str = "ca"                 # the stem of the CA that signs it

    def subject(self) -> x509.Name:
        values = {**GUIDE_NAMES, "O": self.org, "CN": self.cn}
        return x509.Name([x509.NameAttribute(_OIDS[k], values[k]) for k in _ORDER])

    def san_extension(self) -> x509.SubjectAlternativeName | None:
        if not self.sans:
            return None
        names: list[x509.GeneralName] = []
        for san in self.sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        return x509.SubjectAlternativeName(names)


CA_SPEC = CertSpec("ca", "kubernetes", "k8s")
# Not in the guide: the aggregation layer's own CA. The apiserver trusts only certificates from it
# for the X-Remote-User headers it forwards to extension apiservers (metrics-server), so a client
# cert from the cluster CA can never impersonate users through them. Its key never leaves the
# harness's state folder: nothing in the cluster signs with it.
FRONT_PROXY_CA_SPEC = CertSpec("front-proxy-ca", "front-proxy-ca", "k8s")
CA_SPECS = (CA_SPEC, FRONT_PROXY_CA_SPEC)
FRONT_PROXY_CLIENT = "front-proxy-client"


def metrics_server_sans(lab: Lab) -> tuple[str, ...]:
    """The names the aggregator dials metrics-server by (its Service in kube-system)."""
    return ("metrics-server.kube-system.svc", f"metrics-server.kube-system.svc.{lab.dns_domain}")


def apiserver_sans(lab: Lab, master: Machine) -> tuple[str, ...]:
    """The guide's kubernetes-csr hosts, plus the VIP that haproxy fronts."""
    domain = lab.dns_domain
    sans = ["127.0.0.1", str(master.ip), lab.master_url, str(lab.vip),
            str(lab.cluster.kubernetes_service_ip), "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", f"kubernetes.default.svc.{domain.split('.')[0]}",
            f"kubernetes.default.svc.{domain}"]
    return tuple(dict.fromkeys(sans))


def cert_specs(lab: Lab) -> list[CertSpec]:
    """Every leaf the lab needs, in the guide's order, then what a current Kubernetes adds."""
    specs = [CertSpec(f"etcd-{m.name}", "etcd", "k8s", ("127.0.0.1", str(m.ip)))
             for m in lab.etcd_members]
    specs.append(CertSpec("admin", "admin", "system:masters"))
    specs.append(CertSpec("flanneld", "flanneld", "k8s"))
    specs += [CertSpec(f"kubernetes-{m.name}", "kubernetes", "k8s", apiserver_sans(lab, m))
              for m in lab.masters]
    specs.append(CertSpec("kube-proxy", "system:kube-proxy", "k8s"))
    # Not in the guide: 1.8's insecure port let these two talk plain HTTP on localhost.
    specs.append(CertSpec("kube-controller-manager", "system:kube-controller-manager",
                          "system:kube-controller-manager"))
    specs.append(CertSpec("kube-scheduler", "system:kube-scheduler", "system:kube-scheduler"))
    specs.append(CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "k8s"))
    # The aggregation layer (metrics-server): the apiserver's proxy client, and metrics-server's
    # serving certificate, which the APIService trusts through the cluster CA's bundle.
    specs.append(CertSpec(FRONT_PROXY_CLIENT, FRONT_PROXY_CLIENT, "k8s", ca=FRONT_PROXY_CA_SPEC.stem))
    if lab.has_addon("metrics"):
        specs.append(CertSpec("metrics-server", "metrics-server", "k8s", metrics_server_sans(lab)))
    if lab.has_addon("logs"):
        # VictoriaLogs' HTTPS listener: its Service names, and the storage node the masters'
        # collectors write to (harness.render.logs).
        from harness.render.logs import victorialogs_sans
        specs.append(CertSpec("victorialogs", "victorialogs", "k8s", victorialogs_sans(lab)))
    if lab.has_addon("registry"):
        # The registry's HTTPS: the name containerd and crane dial, and its fixed service IP.
        from harness.render.registry import registry_sans
        specs.append(CertSpec("registry", "registry", "k8s", registry_sans(lab)))
    if lab.has_addon("ingress"):
        # traefik's default certificate: every app it publishes, as <app>.<ingress domain>.
        from harness.render.ingress import INGRESS_CERT, ingress_sans, wildcard
        specs.append(CertSpec(INGRESS_CERT, wildcard(lab), "k8s", ingress_sans(lab)))
    return specs


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key(size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def build_ca(lab: Lab, key: rsa.RSAPrivateKey, spec: CertSpec = CA_SPEC) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder().subject_name(spec.subject()).issuer_name(spec.subject())
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(hours=lab.pki.expiry_hours))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))


def build_leaf(lab: Lab, spec: CertSpec, key: rsa.RSAPrivateKey, ca: x509.Certificate,
               ca_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """A leaf with the guide's `kubernetes` profile: signing, key encipherment, server+client auth."""
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (x509.CertificateBuilder().subject_name(spec.subject()).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_now() - dt.timedelta(minutes=5))
               .not_valid_after(min(_now() + dt.timedelta(hours=lab.pki.expiry_hours), ca.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=True, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False))
    san = spec.san_extension()
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def write_private(path: Path, data: bytes) -> None:
    """Write a private key 0600 from the first byte, never world-readable even briefly."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when `ca`'s key made `cert`'s signature and `cert` names `ca` as its issuer."""
    if cert.issuer != ca.subject:
        return False
    try:
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                               cert.signature_hash_algorithm)
    except Exception:  # noqa: BLE001 - any failure means "not signed by this CA"
        return False
    return True
