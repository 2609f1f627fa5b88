"""The guide's outcomes, asserted on the real cluster (`tox -e full-cluster`).

Each test asks for the step it depends on; the fixtures in conftest.py run the guide's steps in
order. The VIP failover runs last: it powers master01 off, then brings it back and checks that
the whole lab converges again.
"""

from __future__ import annotations

import pytest

import checks
from checks import (control_plane, dns as dns_checks, etcd as etcd_checks, flannel as flannel_checks,
                    metrics as metrics_checks, nginx, security, vip)

pytestmark = pytest.mark.cluster


# --- etcd (guide §2) -----------------------------------------------------------------------------
def test_etcd_endpoint_health_on_every_member(etcd):
    health = etcd_checks.endpoint_health(etcd)
    assert len(health) == len(etcd.lab.etcd_members)


def test_etcd_cluster_has_every_member(etcd):
    assert len(etcd_checks.cluster_members(etcd)) == len(etcd.lab.etcd_members)


def test_etcd_rejects_a_client_without_a_cert(etcd):
    etcd_checks.client_without_cert_is_rejected(etcd)


# --- flannel (guide §4) --------------------------------------------------------------------------
def test_flannel_network_config_in_etcd_is_the_labs(flannel):
    assert flannel_checks.network_config(flannel) == flannel.lab.flannel_network_config


def test_flannel_one_lease_per_machine_matching_flannel_1(flannel):
    subnets = flannel_checks.leases(flannel)
    assert len(set(subnets.values())) == len(flannel.lab.machines)


# --- masters and API HA (guide §5, §6) ----------------------------------------------------------
def test_vip_is_on_the_vrrp_master_only(api_ha):
    vip.vip_on_vrrp_master(api_ha)


def test_componentstatuses_through_master_url(api_ha):
    statuses = control_plane.componentstatuses(api_ha)
    assert {"scheduler", "controller-manager"} <= set(statuses)


# --- nodes (guide §7) ----------------------------------------------------------------------------
def test_nodes_are_ready(nodes):
    assert set(control_plane.nodes_ready(nodes)) == {m.node_name for m in nodes.lab.nodes}


def test_node_csrs_were_approved(nodes):
    control_plane.csrs_approved(nodes)


def test_kubelet_client_certs_come_from_the_cluster_ca(nodes):
    control_plane.kubelet_certs_from_cluster_ca(nodes)


def test_kubelet_serving_certs_come_from_the_cluster_ca(nodes):
    assert len(control_plane.kubelet_serving_certs_from_cluster_ca(nodes)) == len(nodes.lab.nodes)


# --- workload (guide §8) -------------------------------------------------------------------------
def test_one_nginx_pod_per_node(workload):
    assert len(nginx.pods_per_node(workload)) == len(workload.lab.nodes)


def test_pods_reach_pods_on_every_other_node(workload):
    reached = flannel_checks.pod_to_pod(workload)
    assert all(len(others) == len(workload.lab.nodes) - 1 for others in reached.values())


def test_nginx_answers_on_the_cluster_ip(workload):
    nginx.cluster_ip_from_every_machine(workload)


def test_nginx_answers_on_every_node_port_from_every_machine(workload):
    seen = nginx.node_port_from_every_machine(workload)
    assert len(seen) == len(workload.lab.machines) * len(workload.lab.nodes)


# --- the intro's add-ons: DNS (kubedns -> CoreDNS), metrics (heapster -> metrics-server) ---------
def test_dns_answers_from_a_pod_on_every_node(dns):
    assert len(dns_checks.resolution_from_every_node(dns)) == len(dns.lab.nodes)


def test_dns_keeps_answering_while_a_coredns_pod_is_deleted(dns):
    report = dns_checks.answers_while_a_coredns_pod_is_deleted(dns)
    assert report["failures"] == 0


def test_kubectl_top_nodes_lists_every_node(metrics):
    assert len(metrics_checks.top_nodes(metrics)) == len(metrics.lab.nodes)


def test_kubectl_top_pods_includes_coredns(metrics):
    assert metrics_checks.top_pods_include_coredns(metrics)


def test_hpa_scales_a_cpu_bound_deployment_up_and_back_down(metrics):
    report = metrics_checks.hpa_scales_up_and_down(metrics)
    assert report["peak_ready"] >= 2


# --- the ingress add-on (the guide's traefik) -----------------------------------------------------
def test_nginx_answers_by_name_through_the_ingress_from_every_machine(ingress):
    from checks import ingress as ingress_checks
    seen = ingress_checks.by_name_from_every_machine(ingress)
    assert set(seen) == {m.name for m in ingress.lab.machines}


def test_an_unknown_host_gets_404_from_the_ingress(ingress):
    from checks import ingress as ingress_checks
    assert ingress_checks.unknown_host_is_404(ingress)


def test_traefik_listens_on_each_nodes_own_address_as_nobody(ingress):
    from checks import ingress as ingress_checks
    assert set(ingress_checks.listens_on_node_address_as_nobody(ingress)) == {m.name for m in ingress.lab.nodes}


def test_the_name_keeps_answering_while_a_traefik_pod_is_deleted(ingress):
    from checks import ingress as ingress_checks
    report = ingress_checks.answers_while_a_traefik_pod_is_deleted(ingress)
    assert report["failures_while_down"] <= ingress_checks.IN_FLIGHT_ALLOWANCE, report


# --- the registry add-on (the guide's harbor on NFS -> Distribution on an sshfs export) -----------
def test_an_image_built_in_the_lab_is_pushed_and_pulled_by_digest_on_every_node(registry):
    from checks import registry as registry_checks
    report = registry_checks.push_and_pull_by_digest_on_every_node(registry)
    assert set(report["nodes"]) == {m.node_name for m in registry.lab.nodes}


def test_an_anonymous_push_is_refused(registry):
    from checks import registry as registry_checks
    assert registry_checks.anonymous_push_is_refused(registry)["post_status"] == "401"


def test_the_registry_pod_moved_to_another_node_serves_the_same_digest(registry):
    from checks import registry as registry_checks
    report = registry_checks.pod_moves_and_serves_the_same_digest(registry)
    assert report["to"] != report["from"]


# --- the logs add-on (the guide's log collection -> VictoriaLogs and vlagent) --------------------
def test_a_line_printed_on_every_node_is_found_in_the_log_store(logs):
    from checks import logs as logs_checks
    lags = logs_checks.unique_line_from_every_node(logs)
    assert set(lags) == {m.node_name for m in logs.lab.nodes}


def test_the_audit_entry_of_a_request_is_found_in_the_log_store(logs):
    from checks import logs as logs_checks
    assert logs_checks.audit_entry_of_a_request(logs)["entry"]["verb"] == "create"


def test_the_log_ui_renders_in_headless_chromium_through_the_ingress(logs, request):
    import shutil

    from checks import logs as logs_checks
    from harness.pytest_plugin import artifacts_dir
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed (bin/setup-host installs it)"
    report = logs_checks.ui_renders_in_chromium(logs, artifacts_dir(request.config) / "logs-ui", browser)
    assert report["dom_bytes"] > 0


# --- security --------------------------------------------------------------------------------------
def test_anonymous_requests_are_denied(api_ha):
    security.anonymous_is_denied(api_ha)


def test_kube_proxy_cannot_list_secrets(api_ha):
    security.kube_proxy_cannot_list_secrets(api_ha)


def test_etcd_refuses_a_cert_from_another_ca(etcd):
    security.etcd_refuses_foreign_cert(etcd)


def test_ca_key_only_on_masters(workload):
    security.ca_key_only_on_masters(workload)


# --- idempotence: a second run of every step changes nothing --------------------------------------
def test_rerunning_every_step_changes_nothing(deployed):
    workload = deployed
    from harness.steps.runner import run_steps

    before = {step: list(changes) for step, changes in workload.changes.items()}
    run_steps(workload)
    after = {step: changes[len(before.get(step, [])):] for step, changes in workload.changes.items()}
    assert {step: c for step, c in after.items() if c} == {}


# --- VIP failover (guide §6's check), last because it powers master01 off ---------------------------
def test_vip_moves_when_the_master_stops_and_comes_back(deployed, lab_provider):
    workload = deployed
    from harness.steps.actions import NotYet, wait_until
    from harness.steps.runner import run_steps

    ctx = workload
    master = vip.vrrp_master(ctx)
    backup = next(m for m in ctx.lab.lbs if m is not master)
    vip.vip_only_on(ctx, master.name)
    others = [m for m in ctx.lab.lbs if m is not master]

    ctx.on(master).close()
    lab_provider.halt(master.name)
    try:
        def moved():
            try:
                vip.vip_only_on(ctx, backup.name, candidates=others)
            except AssertionError as exc:
                raise NotYet(str(exc)) from None
        wait_until(ctx, "check:vip", backup, f"the VIP on {backup.name}", moved, timeout=30, interval=0.5)
        assert "node/" in vip.api_answers_through_master_url(ctx, backup)
    finally:
        lab_provider.up(master.name)
    # master01 is back: re-running the steps converges the lab, then every core check passes
    ctx.on(master).close()
    run_steps(ctx)
    vip.vip_only_on(ctx, master.name)
    checks.converge(ctx)
