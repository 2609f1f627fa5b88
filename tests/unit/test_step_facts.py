"""The facts a step reads before it starts (harness.steps.facts): the real shell script runs here
on files in a temporary folder, and its output is parsed as a step would see it."""

import hashlib
import os
import subprocess

from harness.steps import actions, facts


def run_script(tmp_path, monkeypatch, files, binaries):
    monkeypatch.setattr(actions, "STAMP_DIR", str(tmp_path / "stamps"))
    script = facts.facts_script([str(p) for p in files], [str(p) for p in binaries], ["etcd"])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    return facts.parse_facts(out, [str(p) for p in files], [str(p) for p in binaries])


def stamp(tmp_path, monkeypatch, *binaries):
    monkeypatch.setattr(actions, "STAMP_DIR", str(tmp_path / "stamps"))
    subprocess.run(["sh", "-c", actions.remote_state_script([str(b) for b in binaries], stamped=True)], check=True)


def test_files_binaries_and_absent_paths(tmp_path, monkeypatch):
    conf = tmp_path / "etcd.conf"
    conf.write_bytes(b"name: m1\n")
    conf.chmod(0o600)
    etcd, kubelet = tmp_path / "etcd", tmp_path / "kubelet"
    etcd.write_bytes(b"etcd v3")
    etcd.chmod(0o755)
    kubelet.write_bytes(b"kubelet")
    kubelet.chmod(0o755)
    stamp(tmp_path, monkeypatch, etcd, kubelet)
    fresh = tmp_path / "kubelet.partial"
    fresh.write_bytes(b"kubelet 2")
    os.replace(fresh, kubelet)                     # replaced since its stamp: a new inode
    got = run_script(tmp_path, monkeypatch, [conf, tmp_path / "absent.conf"], [etcd, kubelet, tmp_path / "nope"])
    assert got.state([str(conf), str(tmp_path / "absent.conf")]) == {
        str(conf): (hashlib.sha256(b"name: m1\n").hexdigest(), "600")}
    assert got.state([str(etcd), str(tmp_path / "nope")]) == {
        str(etcd): (hashlib.sha256(b"etcd v3").hexdigest(), "755")}
    assert got.state([str(kubelet)]) is None       # a stale stamp is not trusted: the step hashes it


def test_the_stamp_is_what_is_read_not_the_bytes(tmp_path, monkeypatch):
    etcd = tmp_path / "etcd"
    etcd.write_bytes(b"etcd")
    stamp(tmp_path, monkeypatch, etcd)
    path = next((tmp_path / "stamps").iterdir())
    path.write_text("e" * 64 + " " + path.read_text().split(" ", 1)[1])
    assert run_script(tmp_path, monkeypatch, [], [etcd]).state([str(etcd)])[str(etcd)][0] == "e" * 64


def test_units_from_systemctl_show():
    text = ("--- sha256\n--- stat\n--- stamps\n--- units\n"
            "Id=etcd.service\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=no\n\n"
            "Id=kubelet.service\nActiveState=inactive\nUnitFileState=\nNeedDaemonReload=no\n\n"
            "NeedDaemonReload=yes\nId=haproxy.service\nActiveState=active\nUnitFileState=enabled\n")
    got = facts.parse_facts(text, [], [])
    assert got.running("etcd") and not got.running("kubelet") and not got.running("containerd")
    assert not got.reload_needed(["etcd", "kubelet"])
    assert got.reload_needed(["haproxy"]) and got.reload_needed(["containerd"])   # due, or never asked
    got.forget("/etc/systemd/system/etcd.service")
    assert got.reload_needed(["etcd"])
