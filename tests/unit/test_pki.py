"""The PKI mirrors the guide's CSRs and profile, chains to the CA, and stays put on re-runs."""

import datetime as dt
import ipaddress
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from harness import pki, pki_store
from harness.labfile import load_lab
from tests.unit.conftest import SEED


def _cert(pki_dir, stem):
    return x509.load_pem_x509_certificate((pki_dir / f"{stem}.pem").read_bytes())


def _attr(cert, oid):
    return [a.value for a in cert.subject.get_attributes_for_oid(oid)]


def _sans(cert):
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in ext}


def test_ca_subject_and_profile(rendered_seed):
    ca = _cert(rendered_seed.pki_dir, "ca")
    assert _attr(ca, NameOID.COMMON_NAME) == ["kubernetes"]
    assert _attr(ca, NameOID.ORGANIZATION_NAME) == ["k8s"]
    assert _attr(ca, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["System"]
    assert _attr(ca, NameOID.COUNTRY_NAME) == ["CN"]
    assert _attr(ca, NameOID.STATE_OR_PROVINCE_NAME) == ["BeiJing"]
    assert _attr(ca, NameOID.LOCALITY_NAME) == ["BeiJing"]
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert abs(life - dt.timedelta(hours=876000, minutes=5)) < dt.timedelta(minutes=1)
    assert ca.public_key().key_size == 2048


def _leaf_stems(lab):
    return [s.stem for s in pki.cert_specs(lab)]


def test_every_leaf_chains_to_its_ca_with_openssl(rendered_seed):
    pki_dir = rendered_seed.pki_dir
    for spec in pki.cert_specs(rendered_seed.lab):
        for purpose in ("sslserver", "sslclient"):
            proc = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile",
                                   str(pki_dir / f"{spec.ca}.pem"), str(pki_dir / f"{spec.stem}.pem")],
                                  capture_output=True, text=True)
            assert proc.returncode == 0 and proc.stdout.strip().endswith(": OK"), (spec.stem, proc.stdout + proc.stderr)


def test_the_front_proxy_client_is_trusted_only_through_the_front_proxy_ca(rendered_seed):
    """The aggregation layer's CA is its own: a cert from it is no cluster client, and the
    cluster CA cannot mint a front-proxy client."""
    pki_dir = rendered_seed.pki_dir
    client = _cert(pki_dir, pki.FRONT_PROXY_CLIENT)
    assert pki.signed_by(client, _cert(pki_dir, "front-proxy-ca"))
    assert not pki.signed_by(client, _cert(pki_dir, "ca"))
    assert _cert(pki_dir, "front-proxy-ca").subject != _cert(pki_dir, "ca").subject
    proc = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki_dir / "ca.pem"),
                           str(pki_dir / f"{pki.FRONT_PROXY_CLIENT}.pem")], capture_output=True, text=True)
    assert proc.returncode != 0


def test_metrics_server_serves_its_service_names(rendered_seed):
    lab, pki_dir = rendered_seed.lab, rendered_seed.pki_dir
    leaf = _cert(pki_dir, "metrics-server")
    for name in pki.metrics_server_sans(lab):
        PolicyBuilder().store(Store([_cert(pki_dir, "ca")])).build_server_verifier(x509.DNSName(name)).verify(leaf, [])


def test_server_certs_verify_for_their_addresses_with_cryptography(rendered_seed):
    lab, pki_dir = rendered_seed.lab, rendered_seed.pki_dir
    store = Store([_cert(pki_dir, "ca")])
    for m in lab.etcd_members:
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(m.ip))
        chain = verifier.verify(_cert(pki_dir, f"etcd-{m.name}"), [])
        assert chain[-1].subject == _cert(pki_dir, "ca").subject
    for m in lab.masters:
        leaf = _cert(pki_dir, f"kubernetes-{m.name}")
        for name in (x509.DNSName(lab.master_url), x509.IPAddress(lab.vip), x509.IPAddress(m.ip),
                     x509.IPAddress(lab.cluster.kubernetes_service_ip),
                     x509.DNSName("kubernetes.default.svc.cluster.local")):
            PolicyBuilder().store(store).build_server_verifier(name).verify(leaf, [])


def test_a_foreign_ca_does_not_verify(rendered_seed, rendered_small):
    foreign = Store([_cert(rendered_small.pki_dir, "ca")])
    leaf = _cert(rendered_seed.pki_dir, "etcd-master01")
    verifier = PolicyBuilder().store(foreign).build_server_verifier(
        x509.IPAddress(ipaddress.ip_address("192.168.220.100")))
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(leaf, [])


def test_leaf_subjects_sans_and_usages(rendered_seed):
    lab, pki_dir = rendered_seed.lab, rendered_seed.pki_dir
    expected = {"admin": ("admin", "system:masters"), "flanneld": ("flanneld", "k8s"),
                "kube-proxy": ("system:kube-proxy", "k8s"),
                "kube-controller-manager": ("system:kube-controller-manager", "system:kube-controller-manager"),
                "kube-scheduler": ("system:kube-scheduler", "system:kube-scheduler"),
                "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "k8s")}
    for stem, (cn, org) in expected.items():
        cert = _cert(pki_dir, stem)
        assert (_attr(cert, NameOID.COMMON_NAME), _attr(cert, NameOID.ORGANIZATION_NAME)) == ([cn], [org]), stem
    for m in lab.etcd_members:
        assert _sans(_cert(pki_dir, f"etcd-{m.name}")) == {"127.0.0.1", str(m.ip)}
    for m in lab.masters:
        assert _sans(_cert(pki_dir, f"kubernetes-{m.name}")) == {
            "127.0.0.1", str(m.ip), "k8s-api.virtual.local", "192.168.220.224", "10.254.0.1",
            "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local"}
    for stem in _leaf_stems(lab):
        cert = _cert(pki_dir, stem)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign, stem
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}, stem
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_service_account_key_is_not_the_ca_key(rendered_seed):
    pki_dir = rendered_seed.pki_dir
    sa = serialization.load_pem_private_key((pki_dir / pki_store.SA_PRIVATE).read_bytes(), None)
    ca = serialization.load_pem_private_key((pki_dir / "ca-key.pem").read_bytes(), None)
    assert sa.public_key().public_numbers() != ca.public_key().public_numbers()
    public = serialization.load_pem_public_key((pki_dir / pki_store.SA_PUBLIC).read_bytes())
    assert public.public_numbers() == sa.public_key().public_numbers()


def test_key_files_are_0600_and_certs_0644(rendered_seed):
    for path in rendered_seed.pki_dir.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        secret = path.name.endswith("-key.pem")
        assert mode == (0o600 if secret else 0o644), (path.name, oct(mode))


def test_rerun_keeps_everything(tmp_path):
    lab = load_lab(SEED)
    first = pki_store.ensure_pki(lab, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = pki_store.ensure_pki(lab, tmp_path)
    assert first.changed and not second.changed
    assert second.created == [] and second.reissued == [] and len(second.kept) == len(first.created)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_changed_address_reissues_only_what_names_it(tmp_path, seed_data, write_lab):
    pki_store.ensure_pki(load_lab(SEED), tmp_path)
    seed_data["machines"][1]["ip"] = "192.168.220.111"
    result = pki_store.ensure_pki(load_lab(write_lab(seed_data)), tmp_path)
    assert sorted(result.reissued) == ["etcd-master02.pem", "kubernetes-master02.pem"]
    assert "ca.pem" in result.kept and "admin.pem" in result.kept


def test_rotate_reissues_the_ca_and_all_leaves(tmp_path):
    lab = load_lab(SEED)
    pki_store.ensure_pki(lab, tmp_path)
    old_ca = (tmp_path / "ca.pem").read_bytes()
    result = pki_store.ensure_pki(lab, tmp_path, rotate=True)
    assert "ca.pem" in result.reissued and not result.kept
    assert (tmp_path / "ca.pem").read_bytes() != old_ca
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"),
                           str(tmp_path / "admin.pem")], capture_output=True, text=True)
    assert proc.returncode == 0


def test_expiry_is_configurable(tmp_path, seed_data, write_lab):
    seed_data["pki"]["expiry_hours"] = 24
    lab = load_lab(write_lab(seed_data))
    pki_store.ensure_pki(lab, tmp_path / "pki")
    leaf = _cert(tmp_path / "pki", "admin")
    assert leaf.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < dt.timedelta(hours=24, minutes=1)

