"""The lab model: the seed layout parses into the guide's machines, roles and variables."""

import ipaddress

from harness.labfile import load_lab
from tests.unit.conftest import SMALL


def test_seed_layout_matches_the_guide(seed_lab):
    by_name = {m.name: m for m in seed_lab.machines}
    assert {n: str(m.ip) for n, m in by_name.items()} == {
        "master01": "192.168.220.100", "master02": "192.168.220.101", "master03": "192.168.220.102",
        "node01": "192.168.220.200", "node02": "192.168.220.201"}
    assert str(seed_lab.vip) == "192.168.220.224"
    assert [m.name for m in seed_lab.etcd_members] == ["master01", "master02", "master03"]
    assert [m.name for m in seed_lab.lbs] == ["master01", "master02"]
    assert [m.node_name for m in seed_lab.nodes] == ["node03", "node01", "node02"]
    assert seed_lab.machine("node03").name == "master03"


def test_seed_variables_match_env_sh(seed_lab):
    c = seed_lab.cluster
    assert str(c.service_cidr) == "10.254.0.0/16" and str(c.cluster_cidr) == "172.30.0.0/16"
    assert c.node_port_range == (30000, 32766)
    assert str(c.kubernetes_service_ip) == "10.254.0.1" and str(c.dns_service_ip) == "10.254.0.2"
    assert seed_lab.master_url == "k8s-api.virtual.local"
    assert seed_lab.flannel.etcd_prefix == "/kubernetes/network"
    assert seed_lab.etcd_endpoints == ("https://192.168.220.100:2379,https://192.168.220.101:2379,"
                                       "https://192.168.220.102:2379")
    assert seed_lab.flannel_network_config == {"Network": "172.30.0.0/16", "SubnetLen": 24,
                                               "Backend": {"Type": "vxlan"}}


def test_keepalived_master_is_highest_priority(seed_lab):
    assert seed_lab.keepalived.priorities == {"master01": 100, "master02": 99}
    assert [seed_lab.vrrp_state(m) for m in seed_lab.lbs] == ["MASTER", "BACKUP"]
    assert seed_lab.keepalived.advert_int == 1 and seed_lab.keepalived.virtual_router_id == 51


def test_versions_come_from_the_versions_file(seed_lab):
    assert seed_lab.versions.kubernetes.version.startswith("v1.")
    assert seed_lab.versions.pause.image_ref.endswith(":" + seed_lab.versions.pause.version)


def test_small_lab_uses_its_own_addresses():
    lab = load_lab(SMALL)
    assert all(ip in ipaddress.ip_network("10.240.0.0/24") for ip in (m.ip for m in lab.machines))
    assert len(lab.machines) == 3 and len(lab.etcd_members) == 3
    # default priorities, in lab order, as the guide numbers them
    assert lab.keepalived.priorities == {"ctl1": 100, "ctl2": 99}
    assert lab.api_address == lab.vip
