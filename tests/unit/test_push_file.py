"""push_file and its gzip sidecar (the fast loop, issue 14): a binary travels compressed and lands
byte for byte, with its stamp; the sidecar is made once per build of the binary."""

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from harness.lab import SshLogin
from harness.steps import actions
from harness.transport import Transport
from tests.unit import fake_ssh


@pytest.fixture
def remote_host(tmp_path, monkeypatch):
    """A fake machine whose files are this host's (under tmp_path) and whose commands run here;
    chown to root is left out so the test runs as any user."""
    local = fake_ssh.run_locally()
    seen = []

    def answer(command):
        seen.append(command)
        return local(command.replace("chown root:root", "true"))
    fake = fake_ssh.Machine(Path("/"), answer, home=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    transport = Transport("node01", SshLogin(address="10.0.0.1", user="root", port=22, key=Path("/k")),
                          connect=fake.connect)
    monkeypatch.setattr(actions, "STAMP_DIR", str(tmp_path / "stamps"))
    ctx = type("Ctx", (), {"on": lambda self, m: transport})()
    return ctx, seen


def binary(tmp_path, content: bytes) -> Path:
    path = tmp_path / "cache" / "kubelet"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_compressed_upload_lands_byte_for_byte_with_its_stamp(tmp_path, remote_host):
    ctx, seen = remote_host
    content = os.urandom(4096) + b"\0" * 200_000
    local, remote = binary(tmp_path, content), str(tmp_path / "bin" / "kubelet")
    digest = hashlib.sha256(content).hexdigest()
    actions.push_file(ctx, None, local, remote, digest=digest, compress=True)
    assert Path(remote).read_bytes() == content and oct(os.stat(remote).st_mode & 0o777) == "0o755"
    assert any("gunzip -c" in c for c in seen)
    assert not list((tmp_path / "home").iterdir())                  # nothing staged is left
    stamp = Path(actions.stamp_path(remote)).read_text().split()
    assert stamp[0] == digest
    assert gzip.decompress(local.with_name("kubelet.gz").read_bytes()) == content


def test_the_sidecar_is_made_once_per_build(tmp_path):
    local = binary(tmp_path, b"v1" * 1000)
    first = actions.compressed(local)
    made = first.stat().st_mtime_ns, first.stat().st_ino
    assert actions.compressed(local) == first and (first.stat().st_mtime_ns, first.stat().st_ino) == made
    local.write_bytes(b"v2" * 1000)                                   # rebuilt: a new mtime
    os.utime(local, (1_000_000, 1_000_000))
    assert gzip.decompress(actions.compressed(local).read_bytes()) == b"v2" * 1000


def test_an_unwritable_cache_sends_the_plain_file(tmp_path, remote_host, monkeypatch):
    ctx, seen = remote_host
    local, remote = binary(tmp_path, b"plain" * 100), str(tmp_path / "bin" / "kubelet")
    monkeypatch.setattr(actions, "compressed", lambda path: None)
    actions.push_file(ctx, None, local, remote, compress=True)
    assert Path(remote).read_bytes() == b"plain" * 100 and not any("gunzip" in c for c in seen)
