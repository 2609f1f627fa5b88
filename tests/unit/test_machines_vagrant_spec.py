"""The JSON the Vagrantfile reads: every address comes from the lab file, nothing else."""

import ipaddress
import json

import pytest

from harness import REPO_ROOT, vagrant_spec


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_STATE", str(tmp_path / "state"))
    # what the harness passes after its probe; keeps these tests away from docker
    monkeypatch.setenv("K8S_HA_LAB_DOCKER_CREATE_ARGS", json.dumps(["--cap-add=ALL"]))
    monkeypatch.setenv("K8S_HA_LAB_IMAGE", "k8s-ha-lab/node:test")


def _spec(capsys, lab_file):
    assert vagrant_spec.main([str(REPO_ROOT / lab_file)]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_spec_has_the_guides_machines(capsys):
    spec = _spec(capsys, "labs/seed.yaml")
    by_name = {m["name"]: m for m in spec["machines"]}
    assert list(by_name) == ["master01", "master02", "master03", "node01", "node02"]
    assert by_name["master01"]["ip"] == "192.168.220.100"
    assert by_name["node02"]["ip"] == "192.168.220.201"
    assert by_name["master03"]["roles"] == ["etcd", "master", "node"]
    assert all(m["hostname"] == m["name"] for m in spec["machines"])
    assert all(m["netmask"] == "255.255.255.0" and m["prefixlen"] == 24 for m in spec["machines"])
    assert (by_name["master01"]["cpus"], by_name["master01"]["memory"]) == (2, 2048)
    assert (by_name["node01"]["cpus"], by_name["node01"]["memory"]) == (1, 1024)
    assert spec["docker"]["create_args"] == ["--cap-add=ALL"]
    assert spec["docker"]["image"] == "k8s-ha-lab/node:test"
    assert spec["docker"]["names"]["master01"] == "k8s-ha-lab-seed-master01"


def test_small_spec_follows_its_own_address_plan(capsys):
    spec = _spec(capsys, "labs/small.yaml")
    text = json.dumps(spec)
    assert "192.168.220" not in text
    network = ipaddress.IPv4Network(spec["network"])
    assert str(network) == "10.240.0.0/24"
    assert [m["name"] for m in spec["machines"]] == ["ctl1", "ctl2", "ctl3"]
    assert all(ipaddress.IPv4Address(m["ip"]) in network for m in spec["machines"])
    assert spec["docker"]["names"]["ctl1"] == "k8s-ha-lab-small-ctl1"


def test_spec_carries_the_lab_key(capsys, tmp_path):
    spec = _spec(capsys, "labs/small.yaml")
    key_path = spec["ssh"]["private_key_path"]
    assert key_path.startswith(str(tmp_path / "state" / "small"))
    assert spec["ssh"]["public_key"].startswith("ssh-ed25519 ")
    assert spec["ssh"]["username"] == "root"


def test_vm_providers_get_no_docker_section(capsys, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_PROVIDER", "virtualbox")
    spec = _spec(capsys, "labs/seed.yaml")
    assert "docker" not in spec
    assert "openssh-server" in spec["packages"]


def test_bad_lab_file_is_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO_ROOT / "labs/small.yaml").read_text().replace("10.240.0.12", "10.9.9.9"))
    assert vagrant_spec.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "machines[1].ip" in err


def test_create_args_from_the_environment_must_be_a_list(capsys, monkeypatch):
    monkeypatch.setenv("K8S_HA_LAB_DOCKER_CREATE_ARGS", '"--privileged"')
    assert vagrant_spec.main([str(REPO_ROOT / "labs/seed.yaml")]) == 2
    assert "K8S_HA_LAB_DOCKER_CREATE_ARGS" in capsys.readouterr().err
