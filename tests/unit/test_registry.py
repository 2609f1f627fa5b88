"""The registry add-on offline: its rendered files (containerd's trust, sshd's jail, the sshfs
unit, the manifest), its per-lab secrets, the checks' parsers and the failover scenario's logic.
The live behaviour (push, pull by digest on every node, anonymous push refused, the pod moved)
is checks/registry.py's, run on a lab."""

from __future__ import annotations

import base64
import json
import stat
from types import SimpleNamespace

import pytest
import yaml

from checks.registry import parse_duration, pulled_in
from harness.failover import bounds, registry_scenario
from harness.pki import cert_specs
from harness.render import SSL_DIR, UNIT_DIR
from harness.render import registry as reg
from harness.render.configs import CERTS_D, containerd_config, registry_trust
from harness.steps.registry import load_registry_secrets


def _docs(text: str) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text)}


def test_containerd_trusts_the_registry_by_the_lab_ca_and_nothing_insecure(seed_lab, rendered_seed):
    config = rendered_seed.text("node01", "/etc/containerd/config.toml")
    assert f'config_path = "{CERTS_D}"' in config
    hosts = rendered_seed.text("node01", f"{CERTS_D}/{seed_lab.registry_host}/hosts.toml")
    assert f'server = "https://{seed_lab.registry_host}"' in hosts
    assert f'ca = "{SSL_DIR}/ca.pem"' in hosts
    for word in ("skip_verify", "insecure", "http://"):
        assert word not in hosts and word not in config
    # only on nodes: masters that are not nodes run no containerd
    assert not [f for f in rendered_seed.files if f.machine == "master01" and f.path.startswith(CERTS_D)]


def test_no_registry_addon_means_no_trust_file(seed_lab):
    from dataclasses import replace
    lab = replace(seed_lab, addons=("dns",))
    assert registry_trust(lab) == []
    assert f'config_path = "{CERTS_D}"' in containerd_config(lab)   # harmless without a file


def test_the_certificate_names_the_registry_host_and_service_ip(seed_lab):
    spec = next(s for s in cert_specs(seed_lab) if s.stem == "registry")
    assert seed_lab.registry_host in spec.sans
    assert str(seed_lab.registry.service_ip) in spec.sans
    assert spec.ca == "ca"


def test_sshd_jails_the_storage_user_to_sftp_with_one_key(seed_lab):
    dropin = reg.sshd_dropin()
    assert dropin.splitlines()[1] == f"Match User {reg.SFTP_USER}"
    for line in (f"ChrootDirectory {reg.EXPORT_ROOT}", "ForceCommand internal-sftp",
                 f"AuthorizedKeysFile {reg.AUTHORIZED_KEYS}", "PasswordAuthentication no",
                 "AllowTcpForwarding no", "PermitTTY no"):
        assert f"    {line}" in dropin
    keys = reg.authorized_keys(seed_lab, "ssh-ed25519 AAAAC3Nza k8s-ha-lab-registry-storage\n")
    assert keys.startswith(f'from="{",".join(str(m.ip) for m in seed_lab.nodes)}",restrict ssh-ed25519 ')
    sources = keys.split('"')[1].split(",")
    assert str(reg.storage_server(seed_lab).ip) not in sources      # master02 is not a node
    assert str(seed_lab.machine("master01").ip) not in sources


def test_every_node_mounts_the_storage_servers_export_strictly(seed_lab):
    unit = reg.mount_service(seed_lab)
    server = reg.storage_server(seed_lab)
    assert server.name == seed_lab.registry.storage_server and not server.has("node")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f"{reg.SFTP_USER}@{server.ip}:/ {reg.MOUNT}")
    for option in ("StrictHostKeyChecking=yes", f"IdentityFile={reg.SFTP_KEY}", "allow_other", "reconnect",
                   f"UserKnownHostsFile={reg.KNOWN_HOSTS}"):
        assert option in exec_start
    assert "Restart=always" in unit and "Before=kubelet.service" in unit
    known = reg.known_hosts(seed_lab, "ssh-ed25519 AAAAkey root@master02\n")
    assert known == f"{server.ip} ssh-ed25519 AAAAkey\n"


def test_the_manifest_serves_tls_htpasswd_and_the_shared_storage(seed_lab):
    docs = _docs(reg.registry_yaml(seed_lab, b"CERT", b"KEY", "s3cret", "hmac"))
    service = docs["Service/registry"]["spec"]
    assert service["clusterIP"] == str(seed_lab.registry.service_ip)
    assert service["ports"][0]["port"] == 443 and service["ports"][0]["targetPort"] == reg.PORT
    pod = docs["Deployment/registry"]["spec"]["template"]["spec"]
    assert docs["Deployment/registry"]["spec"]["strategy"]["type"] == "Recreate"
    storage = next(v for v in pod["volumes"] if v["name"] == "storage")
    assert storage["hostPath"] == {"path": reg.HOST_PATH, "type": "Directory"}
    assert reg.HOST_PATH.startswith(reg.MOUNT + "/")
    tolerations = {t["key"]: t["tolerationSeconds"] for t in pod["tolerations"]}
    assert tolerations == {"node.kubernetes.io/unreachable": reg.TOLERATION_S,
                           "node.kubernetes.io/not-ready": reg.TOLERATION_S}
    init = pod["initContainers"][0]
    assert init["command"][:2] == ["/usr/bin/htpasswd", "-B"]
    assert "s3cret" not in json.dumps(pod)                     # the password only in the Secret
    image = seed_lab.versions.registry.image_ref
    assert {c["image"] for c in [init, *pod["containers"]]} == {image}
    assert all(c["imagePullPolicy"] == "Never" for c in [init, *pod["containers"]])
    config = yaml.safe_load(docs["ConfigMap/registry-config"]["data"]["config.yml"])
    assert config["http"]["tls"]["certificate"] and config["auth"]["htpasswd"]["path"] == "/auth/htpasswd"
    creds = docs["Secret/registry-credentials"]["data"]
    assert base64.b64decode(creds["password"]).decode() == "s3cret"
    pull = json.loads(base64.b64decode(docs[f"Secret/{reg.PULL_SECRET}"]["data"][".dockerconfigjson"]))
    auth = pull["auths"][seed_lab.registry_host]
    assert base64.b64decode(auth["auth"]).decode() == f"{reg.USERNAME}:s3cret"
    assert docs[f"Secret/{reg.PULL_SECRET}"]["type"] == "kubernetes.io/dockerconfigjson"


def test_a_new_password_or_certificate_rolls_the_pod(seed_lab):
    def rollout(*args):
        doc = _docs(reg.registry_yaml(seed_lab, *args))["Deployment/registry"]
        return doc["spec"]["template"]["metadata"]["annotations"]["k8s-ha-lab/config-sha256"]
    base = rollout(b"C", b"K", "p", "h")
    assert base == rollout(b"C", b"K", "p", "h")
    assert len({base, rollout(b"C2", b"K", "p", "h"), rollout(b"C", b"K", "p2", "h")}) == 3


def test_registry_secrets_are_made_once_per_lab_and_private(tmp_path):
    first = load_registry_secrets(tmp_path)
    again = load_registry_secrets(tmp_path)
    assert first == again
    assert len(first.password) >= 24 and first.sftp_public.startswith("ssh-ed25519 ")
    assert first.sftp_private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    folder = tmp_path / "registry"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("password", "http-secret", "sftp-key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    other = load_registry_secrets(tmp_path / "other-lab")
    assert other.password != first.password and other.sftp_public != first.sftp_public


@pytest.mark.parametrize("text, seconds", [("1.234s", 1.234), ("523ms", 0.523), ("1m2.5s", 62.5),
                                           ("12.3µs", 12.3e-6)])
def test_go_durations_from_the_kubelet(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1.2", "3 s", "1.2sx"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_pull_time_comes_from_the_pods_pulled_event():
    events = {"items": [
        # an earlier pod of the same name: its event must not be taken for the new pod's
        {"involvedObject": {"name": "p", "uid": "old"}, "reason": "Pulled",
         "message": 'Successfully pulled image "r/lab/check@sha256:00" in 9.9s (9.9s including waiting).'},
        {"involvedObject": {"name": "p", "uid": "a"}, "reason": "Pulling", "message": 'Pulling image "x"'},
        {"involvedObject": {"name": "p", "uid": "a"}, "reason": "Pulled",
         "message": 'Successfully pulled image "r/lab/check@sha256:ab" in 1.5s (1.5s including waiting). '
                    'Image size: 123 bytes.'},
        {"involvedObject": {"name": "q", "uid": "b"}, "reason": "Pulled",
         "message": 'Container image "x" already present on machine'}]}
    assert pulled_in(events, "a") == 1.5
    assert pulled_in(events, "old") == 9.9
    assert pulled_in(events, "b") is None
    assert pulled_in(events, "c") is None


def test_the_node_lost_bound_adds_up_the_labs_timers():
    bound = registry_scenario.bound(None)
    want = (bounds.NODE_MONITOR_GRACE_S + bounds.NODE_MONITOR_PERIOD_S + reg.TOLERATION_S
            + registry_scenario.POD_START_S + reg.READY_PERIOD_S + registry_scenario.KUBE_PROXY_SYNC_S)
    assert bound.seconds == want
    assert f"tolerationSeconds for unreachable {reg.TOLERATION_S}s" in bound.formula
    assert bound.formula.endswith(f"= {want:g}s")
    # the toleration is what makes it short: Kubernetes' default would be 300 s
    assert bound.seconds < 300


def test_the_victim_is_a_worker_only_node(seed_lab):
    assert registry_scenario.pick_victim(seed_lab, "node01") == ("node01", False)
    # node03 is master03: it would take an etcd member down too, so the pod moves to a worker
    assert registry_scenario.pick_victim(seed_lab, "node03") == ("node02", True)


@pytest.mark.parametrize("facts, expect", [
    ({"pull_works_again_s": None}, "never served"),
    ({"pull_works_again_s": 60, "powered_off": "node02", "registry_now_on": "node02",
      "pulled_by_digest_on": ["node01", "node03"]}, "not on a node that is up"),
    ({"pull_works_again_s": 60, "powered_off": "node02", "registry_now_on": "node01",
      "pulled_by_digest_on": []}, "not pulled again"),
])
def test_node_lost_invariants_catch_each_failure(facts, expect):
    problems = registry_scenario.invariants(facts, {})
    assert any(expect in p for p in problems), problems


def test_node_lost_invariants_pass_a_good_run():
    facts = {"pull_works_again_s": 61.0, "powered_off": "node02", "registry_now_on": "node01",
             "pulled_by_digest_on": ["node01", "node03"]}
    assert registry_scenario.invariants(facts, {}) == []


def test_the_scenario_is_registered_with_its_explanation():
    from pathlib import Path

    from harness.failover.scenarios import SCENARIOS
    scenario = SCENARIOS[registry_scenario.NAME]
    assert scenario.measure == "pull_works_again_s"
    docs = (Path(__file__).resolve().parents[2] / "docs" / "scenarios.md").read_text()
    assert f"## `{registry_scenario.NAME}`" in docs


def test_the_image_recipe_changes_with_its_binary(tmp_path, monkeypatch):
    from harness.artifacts.images import registry_image

    monkeypatch.setattr(type(registry_image.DEBS), "digest_into", lambda self, digest, scratch: digest.update(b"debs"))
    one, two = tmp_path / "a", tmp_path / "b"
    one.write_bytes(b"registry 1")
    two.write_bytes(b"registry 2")
    assert registry_image.recipe_key("v3.1.2", one, tmp_path) != registry_image.recipe_key("v3.1.2", two, tmp_path)
    assert registry_image.recipe_key("v3.1.2", one, tmp_path) == registry_image.recipe_key("v3.1.2", one, tmp_path)


def test_go_recipes_stamp_the_pinned_versions():
    from harness.artifacts.go_recipes import GO_RECIPES

    registry = GO_RECIPES["registry"]
    assert registry.packages == {"registry": "github.com/distribution/distribution/v3/cmd/registry"}
    assert "-X github.com/distribution/distribution/v3/version.version=v3.1.2" in registry.ldflags_for("v3.1.2")
    crane = GO_RECIPES["crane"]
    assert "cmd/crane/cmd.Version=v0.22.1" in crane.ldflags_for("v0.22.1")


def test_the_step_files_land_where_the_units_expect(seed_lab, tmp_path):
    from harness.steps import registry as step

    keys = load_registry_secrets(tmp_path)
    ctx = SimpleNamespace(lab=seed_lab)
    server = reg.storage_server(seed_lab)
    files = {f.path: f for f in step.server_files(ctx, server, keys)}
    assert set(files) == {reg.SSHD_DROPIN, reg.AUTHORIZED_KEYS}
    assert keys.sftp_public.split()[1] in files[reg.AUTHORIZED_KEYS].content.decode()
    unit = reg.mount_service(seed_lab)
    assert reg.SFTP_KEY in unit and reg.KNOWN_HOSTS in unit
    assert f"{UNIT_DIR}/{reg.MOUNT_UNIT}".startswith("/etc/systemd/system/")
