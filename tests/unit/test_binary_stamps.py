"""The stamped digest of a remote binary: read from its stamp while the file is untouched,
taken again when it changes. The shell runs for real here, on files in a temporary folder."""

import hashlib
import os
import subprocess

from harness.steps import actions


def state(tmp_path, monkeypatch, *paths):
    monkeypatch.setattr(actions, "STAMP_DIR", str(tmp_path / "stamps"))
    out = subprocess.run(["sh", "-c", actions.remote_state_script([str(p) for p in paths], stamped=True)],
                         capture_output=True, text=True, check=True).stdout
    return {line.split(" ", 2)[2]: tuple(line.split(" ", 2)[:2]) for line in out.splitlines()}


def test_first_look_hashes_and_a_missing_file_is_left_out(tmp_path, monkeypatch):
    binary = tmp_path / "etcd"
    binary.write_bytes(b"etcd v3")
    binary.chmod(0o755)
    got = state(tmp_path, monkeypatch, binary, tmp_path / "absent")
    assert got == {str(binary): (hashlib.sha256(b"etcd v3").hexdigest(), "755")}


def test_an_untouched_file_is_not_hashed_again(tmp_path, monkeypatch):
    binary = tmp_path / "kubelet"
    binary.write_bytes(b"kubelet")
    state(tmp_path, monkeypatch, binary)
    stamp = next((tmp_path / "stamps").iterdir())
    stamp.write_text("f" * 64 + " " + stamp.read_text().split(" ", 1)[1])  # a digest only the stamp has
    assert state(tmp_path, monkeypatch, binary)[str(binary)][0] == "f" * 64


def test_a_replaced_file_is_hashed_again(tmp_path, monkeypatch):
    binary = tmp_path / "kube-proxy"
    binary.write_bytes(b"old")
    state(tmp_path, monkeypatch, binary)
    fresh = tmp_path / "kube-proxy.partial"
    fresh.write_bytes(b"new")
    os.replace(fresh, binary)  # how every install lands: a new inode
    assert state(tmp_path, monkeypatch, binary)[str(binary)][0] == hashlib.sha256(b"new").hexdigest()
