"""Rendered files pass the real tools' own checks and carry the lab's values, nothing else."""

import base64
import json
import os
import shutil
import stat
import subprocess

import pytest
import yaml

from harness.render import configs, env


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_haproxy_cfg_passes_haproxy_c(rendered_seed):
    for lb in rendered_seed.lab.lbs:
        path = rendered_seed.out / lb.name / "etc/haproxy/haproxy.cfg"
        proc = _run(["haproxy", "-c", "-f", str(path)])
        assert proc.returncode == 0 and "Configuration file is valid" in proc.stdout + proc.stderr, proc.stderr


def test_haproxy_fronts_every_master_from_the_vip(rendered_seed):
    cfg = rendered_seed.text("master01", "/etc/haproxy/haproxy.cfg")
    assert "bind 192.168.220.224:443" in cfg and "bind *:9000" in cfg
    servers = [line.split()[1:3] for line in cfg.splitlines() if line.strip().startswith("server ")]
    assert servers == [["master01", "192.168.220.100:6443"], ["master02", "192.168.220.101:6443"],
                       ["master03", "192.168.220.102:6443"]]
    assert ":8080" not in cfg and "bind 192.168.220.224:80\n" not in cfg
    assert f"stats auth admin:{rendered_seed.secrets.haproxy_stats_password}" in cfg


def test_a_broken_haproxy_cfg_is_refused(rendered_seed, tmp_path):
    """The check above can fail: haproxy -c rejects a damaged copy."""
    broken = rendered_seed.text("master01", "/etc/haproxy/haproxy.cfg").replace("balance roundrobin", "balance sideways")
    (tmp_path / "bad.cfg").write_text(broken)
    assert _run(["haproxy", "-c", "-f", str(tmp_path / "bad.cfg")]).returncode != 0


KEEPALIVED_TEST = """set -e
ip link add {iface} type veth peer name {iface}peer
mkdir -p /etc/keepalived
mount --bind {conf_dir} /etc/keepalived
keepalived -t -f /etc/keepalived/keepalived.conf
"""


def _keepalived_test(conf_dir, iface):
    # keepalived -t insists that the VRRP interface and the track script exist; a private network
    # and mount namespace give it both without touching the host.
    return _run(["unshare", "-n", "-m", "sh", "-c", KEEPALIVED_TEST.format(iface=iface, conf_dir=conf_dir)])


@pytest.mark.skipif(os.geteuid() != 0, reason="keepalived -t runs in a private netns, which needs root")
def test_keepalived_conf_passes_keepalived_t(rendered_seed, tmp_path):
    for lb in rendered_seed.lab.lbs:
        proc = _keepalived_test(rendered_seed.out / lb.name / "etc/keepalived", rendered_seed.lab.interface)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "keepalived"
    shutil.copytree(rendered_seed.out / "master01/etc/keepalived", bad)
    conf = (bad / "keepalived.conf").read_text().replace("virtual_router_id 51", "virtual_router_id 300")
    (bad / "keepalived.conf").write_text(conf)
    assert _keepalived_test(bad, rendered_seed.lab.interface).returncode != 0


def test_keepalived_master_backup_and_unicast(rendered_seed):
    m1 = rendered_seed.text("master01", "/etc/keepalived/keepalived.conf")
    m2 = rendered_seed.text("master02", "/etc/keepalived/keepalived.conf")
    assert "state MASTER" in m1 and "priority 100" in m1
    assert "state BACKUP" in m2 and "priority 99" in m2
    assert "unicast_src_ip 192.168.220.100" in m1 and "        192.168.220.101\n" in m1
    assert "unicast_src_ip 192.168.220.101" in m2 and "        192.168.220.100\n" in m2
    for conf in (m1, m2):
        assert "192.168.220.224/24 dev eth1" in conf and "check_haproxy" in conf
        assert "advert_int 1" in conf and "virtual_router_id 51" in conf


def _kubeconfig(rendered, machine, path):
    doc = yaml.safe_load(rendered.text(machine, path))
    cluster = doc["clusters"][0]["cluster"]
    user = doc["users"][0]["user"]
    return doc, cluster, user


@pytest.mark.parametrize("machine,path,server,stem", [
    ("master01", "/root/.kube/config", "https://k8s-api.virtual.local:443", "admin"),
    ("node01", "/etc/kubernetes/kube-proxy.kubeconfig", "https://k8s-api.virtual.local:443", "kube-proxy"),
    ("master02", "/etc/kubernetes/kube-controller-manager.kubeconfig", "https://127.0.0.1:6443",
     "kube-controller-manager"),
    ("master03", "/etc/kubernetes/kube-scheduler.kubeconfig", "https://127.0.0.1:6443", "kube-scheduler"),
])
def test_kubeconfigs_embed_the_right_certs(rendered_seed, machine, path, server, stem):
    doc, cluster, user = _kubeconfig(rendered_seed, machine, path)
    pki_dir = rendered_seed.pki_dir
    assert doc["current-context"] == "default" and cluster["server"] == server
    assert base64.b64decode(cluster["certificate-authority-data"]) == (pki_dir / "ca.pem").read_bytes()
    assert base64.b64decode(user["client-certificate-data"]) == (pki_dir / f"{stem}.pem").read_bytes()
    assert base64.b64decode(user["client-key-data"]) == (pki_dir / f"{stem}-key.pem").read_bytes()


def test_bootstrap_kubeconfig_carries_the_token(rendered_seed):
    doc, cluster, user = _kubeconfig(rendered_seed, "node02", "/etc/kubernetes/bootstrap.kubeconfig")
    token = rendered_seed.secrets.bootstrap_token
    assert user == {"token": token} and cluster["server"] == "https://k8s-api.virtual.local:443"
    assert rendered_seed.text("master01", "/etc/kubernetes/token.csv") == \
        f'{token},kubelet-bootstrap,10001,"system:kubelet-bootstrap"\n'


def test_ca_key_goes_to_masters_only(rendered_seed):
    holders = {f.machine for f in rendered_seed.files if f.path.endswith("/ca-key.pem")}
    assert holders == {m.name for m in rendered_seed.lab.masters}
    for f in rendered_seed.files:
        if f.machine in ("node01", "node02"):
            assert b"PRIVATE KEY" not in f.content or f.path.endswith(("flanneld-key.pem", ".kubeconfig")), f.path


def test_each_machine_gets_only_its_roles_files(rendered_seed):
    by_machine = {}
    for f in rendered_seed.files:
        by_machine.setdefault(f.machine, set()).add(f.path)
    assert "/etc/etcd/ssl/etcd-key.pem" not in by_machine["node01"]
    assert "/etc/systemd/system/kube-apiserver.service" not in by_machine["node02"]
    assert "/etc/systemd/system/kubelet.service" not in by_machine["master01"]
    assert "/etc/haproxy/haproxy.cfg" not in by_machine["master03"]
    assert {"/etc/systemd/system/kubelet.service", "/etc/systemd/system/etcd.service",
            "/etc/systemd/system/kube-apiserver.service"} <= by_machine["master03"]
    for machine, paths in by_machine.items():
        assert "/etc/systemd/system/flanneld.service" in paths, machine


def test_secret_files_are_0600_on_disk(rendered_seed):
    for f in rendered_seed.files:
        mode = stat.S_IMODE((rendered_seed.out / f.machine / f.path.lstrip("/")).stat().st_mode)
        assert mode == f.mode, f.path
        if f.path.endswith(("-key.pem", "token.csv", ".kubeconfig", "/root/.kube/config", "keepalived.conf")):
            assert mode == 0o600, f.path


def _systemd_problems(unit):
    """systemd-analyze's findings, minus the one expected here: the binaries live on the
    machines, not on this host, so it reports each ExecStart as "not executable"."""
    proc = _run(["systemd-analyze", "verify", "--man=no", str(unit)])
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and "is not executable: No such file or directory" not in line]


def test_systemd_units_pass_systemd_analyze(rendered_seed, tmp_path):
    units = sorted((rendered_seed.out / "master03/etc/systemd/system").glob("*.service"))
    assert len(units) == 9  # the 8 of the guide, and the logs add-on's vlagent-audit
    for unit in units:
        assert _systemd_problems(unit) == [], unit.name
    broken = tmp_path / "etcd.service"
    broken.write_text(units[0].read_text().replace("[Service]", "[Service]\nRestartt=always"))
    assert any("Unknown key" in line for line in _systemd_problems(broken))


def test_etcd_unit_names_the_whole_cluster(rendered_seed):
    unit = rendered_seed.text("master02", "/etc/systemd/system/etcd.service")
    assert "--name=etcd02" in unit
    assert ("--initial-cluster=etcd01=https://192.168.220.100:2380,etcd02=https://192.168.220.101:2380,"
            "etcd03=https://192.168.220.102:2380") in unit
    assert "--listen-client-urls=https://192.168.220.101:2379,https://127.0.0.1:2379" in unit
    assert "--client-cert-auth" in unit and "--peer-client-cert-auth" in unit


def test_apiserver_flags_follow_the_lab(rendered_seed):
    unit = rendered_seed.text("master01", "/etc/systemd/system/kube-apiserver.service")
    for flag in ("--authorization-mode=Node,RBAC", "--anonymous-auth=false",
                 "--service-cluster-ip-range=10.254.0.0/16", "--service-node-port-range=30000-32766",
                 "--enable-bootstrap-token-auth", "--token-auth-file=/etc/kubernetes/token.csv",
                 "--service-account-signing-key-file=/etc/kubernetes/ssl/service-account-key.pem",
                 "--audit-policy-file=/etc/kubernetes/audit-policy.yaml", "--advertise-address=192.168.220.100"):
        assert flag in unit
    for gone in ("--insecure", "--admission-control=", "--experimental", "--apiserver-count"):
        assert gone not in unit
    # etcd is compacted at the apiserver's default interval again: flannel v0.28 survives it
    assert "--etcd-compaction-interval" not in unit


def test_kubelet_and_proxy_share_the_node_name(rendered_seed):
    kubelet = rendered_seed.text("master03", "/etc/systemd/system/kubelet.service")
    proxy = yaml.safe_load(rendered_seed.text("master03", "/etc/kubernetes/kube-proxy-config.yaml"))
    assert "--hostname-override=node03" in kubelet and proxy["hostnameOverride"] == "node03"
    assert proxy["mode"] == "iptables" and proxy["clusterCIDR"] == "172.30.0.0/16"
    kubelet_cfg = yaml.safe_load(rendered_seed.text("node01", "/etc/kubernetes/kubelet-config.yaml"))
    assert kubelet_cfg["clusterDNS"] == ["10.254.0.2"] and kubelet_cfg["authentication"]["anonymous"]["enabled"] is False


def test_flannel_config_and_units(rendered_seed):
    cfg = json.loads(rendered_seed.text("master01", "/etc/flanneld/network-config.json"))
    assert cfg == {"Network": "172.30.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}
    unit = rendered_seed.text("node02", "/etc/systemd/system/flanneld.service")
    assert "--etcd-prefix=/kubernetes/network" in unit and "--iface=192.168.220.201" in unit


def test_mk_cni_conf_turns_flannel_subnet_into_a_conflist(rendered_seed, tmp_path):
    script = rendered_seed.out / "node01/usr/local/bin/mk-cni-conf"
    assert os.access(script, os.X_OK)
    (tmp_path / "subnet.env").write_text("FLANNEL_NETWORK=172.30.0.0/16\nFLANNEL_SUBNET=172.30.41.1/24\n"
                                         "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    proc = _run([str(script), str(tmp_path / "subnet.env"), str(tmp_path / "net.d/10-flannel.conflist")])
    assert proc.returncode == 0, proc.stderr
    produced = json.loads((tmp_path / "net.d/10-flannel.conflist").read_text())
    assert produced == json.loads(configs.cni_conflist(rendered_seed.lab, "172.30.41.0/24", 1450))
    (tmp_path / "empty.env").write_text("")
    assert _run([str(script), str(tmp_path / "empty.env"), str(tmp_path / "x")]).returncode != 0


def test_containerd_never_pulls_the_sandbox(rendered_seed):
    cfg = rendered_seed.text("node01", "/etc/containerd/config.toml")
    assert f'sandbox_image = "{rendered_seed.lab.versions.pause.image_ref}"' in cfg
    docs = list(yaml.safe_load_all(rendered_seed.text("master01", "/etc/kubernetes/addons/nginx-ds.yaml")))
    container = docs[1]["spec"]["template"]["spec"]["containers"][0]
    assert docs[0]["spec"]["type"] == "NodePort" and docs[1]["apiVersion"] == "apps/v1"
    assert container["imagePullPolicy"] == "Never" and container["image"] == rendered_seed.lab.versions.nginx.image_ref


def test_hosts_record_points_master_url_at_the_vip(rendered_seed):
    block = rendered_seed.text("node01", "/etc/k8s-ha-lab/hosts")
    assert "192.168.220.224 k8s-api.virtual.local\n" in block
    merged = env.merge_hosts("127.0.0.1 localhost\n", block)
    assert env.merge_hosts(merged, block) == merged  # idempotent
    assert merged.startswith("127.0.0.1 localhost\n")
    sysctl = rendered_seed.text("master01", "/etc/sysctl.d/90-k8s-ha-lab.conf")
    assert "net.ipv4.ip_nonlocal_bind = 1" in sysctl and "net.ipv4.ip_forward = 1" in sysctl


def test_env_sh_has_the_guide_variables_but_no_token(rendered_seed):
    text = rendered_seed.text("node01", "/etc/kubernetes/env.sh")
    assert 'SERVICE_CIDR="10.254.0.0/16"' in text and 'MASTER_URL="k8s-api.virtual.local"' in text
    assert rendered_seed.secrets.bootstrap_token not in text


def test_small_lab_renders_without_a_seed_address(rendered_small):
    assert rendered_small.files
    for f in rendered_small.files:
        assert b"192.168.220" not in f.content, f"{f.machine}:{f.path}"
    for path in rendered_small.out.rglob("*"):
        if path.is_file():
            assert b"192.168.220" not in path.read_bytes(), path
    cfg = rendered_small.text("ctl1", "/etc/haproxy/haproxy.cfg")
    assert "bind 10.240.0.250:443" in cfg and "10.240.0.13:6443" in cfg


def test_rendering_twice_gives_the_same_bytes(rendered_seed):
    from harness.render.plan import build_plan
    again = build_plan(rendered_seed.lab, rendered_seed.pki_dir, rendered_seed.secrets)
    assert [(f.machine, f.path, f.content) for f in again] == \
        [(f.machine, f.path, f.content) for f in rendered_seed.files]


def test_kube_proxy_refuses_untranslated_service_traffic(seed_lab):
    from harness.render.units import kube_proxy_service
    unit = kube_proxy_service(seed_lab, seed_lab.machine("node01"))
    pre = next(line for line in unit.splitlines() if line.startswith("ExecStartPre="))
    for chain in ("FORWARD", "OUTPUT"):
        for proto, reject in (("tcp", "tcp-reset"), ("udp", "icmp-port-unreachable")):
            rule = (f"{chain} -d {seed_lab.cluster.service_cidr} -p {proto} -m conntrack ! --ctstate DNAT "
                    f"-j REJECT --reject-with {reject}")
            assert f"iptables -C {rule} 2>/dev/null || iptables -I {rule}" in pre


def test_kubelet_never_garbage_collects_the_imported_images(seed_lab):
    import yaml
    from harness.render.configs import kubelet_config
    config = yaml.safe_load(kubelet_config(seed_lab, seed_lab.machine("node01")))
    assert config["imageGCHighThresholdPercent"] == 100  # 100 turns disk-based image GC off
    assert set(config["evictionHard"]) == {"memory.available"}
