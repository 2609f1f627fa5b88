"""Assertions on observed state, shared by the pytest suites and `python -m harness check`.

Each check takes a StepContext, looks at the real machines (etcdctl output, interfaces, HTTP
bodies) and raises AssertionError with a message that says what was seen. `__tracebackhide__`
keeps pytest's report pointing at the test that called it.
"""

from __future__ import annotations

import importlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Collection, Iterator

from harness.errors import StepError
from harness.transport import CommandFailed

# The core checks, in the guide's order: (name, "module:function"). `python -m harness check`
# and the scenarios' "the lab converged back" step run exactly this list.
CORE_CHECKS = (
    ("etcd endpoint health", "etcd:endpoint_health"),
    ("etcd cluster members", "etcd:cluster_members"),
    ("etcd refuses a client without a cert", "etcd:client_without_cert_is_rejected"),
    ("flannel network config", "flannel:network_config"),
    ("flannel leases", "flannel:leases"),
    ("VIP on the VRRP master only", "vip:vip_on_vrrp_master"),
    ("componentstatuses", "control_plane:componentstatuses"),
    ("nodes Ready", "control_plane:nodes_ready"),
    ("node CSRs approved", "control_plane:csrs_approved"),
    ("kubelet certs from the cluster CA", "control_plane:kubelet_certs_from_cluster_ca"),
    ("kubelet serving certs from the cluster CA", "control_plane:kubelet_serving_certs_from_cluster_ca"),
    ("nginx pod per node", "nginx:pods_per_node"),
    ("pod to pod across nodes", "flannel:pod_to_pod"),
    ("nginx on the ClusterIP", "nginx:cluster_ip_from_every_machine"),
    ("nginx on every NodePort", "nginx:node_port_from_every_machine"),
    ("anonymous API access denied", "security:anonymous_is_denied"),
    ("kube-proxy cannot list secrets", "security:kube_proxy_cannot_list_secrets"),
    ("etcd refuses a foreign cert", "security:etcd_refuses_foreign_cert"),
    ("CA key only on masters", "security:ca_key_only_on_masters"),
)


# The add-ons' checks: (name, "module:function", add-on). The quick ones join the core checks
# wherever the lab has the add-on; the slow ones (a pod deleted, an HPA scaling both ways) run in
# `python -m harness check` and the full-cluster suite, not after every failover scenario.
ADDON_CHECKS = (
    ("DNS from a pod on every node", "dns:resolution_from_every_node", "dns"),
    ("kubectl top nodes", "metrics:top_nodes", "metrics"),
    ("kubectl top pods includes CoreDNS", "metrics:top_pods_include_coredns", "metrics"),
    ("ingress: nginx by name over HTTP and HTTPS from every machine", "ingress:by_name_from_every_machine", "ingress"),
    ("ingress: an unknown host gets 404", "ingress:unknown_host_is_404", "ingress"),
    ("ingress: traefik on each node's address, as nobody", "ingress:listens_on_node_address_as_nobody", "ingress"),
    ("a pod's unique line from every node in VictoriaLogs within 15 s", "logs:unique_line_from_every_node", "logs"),
    ("the audit entry of a ConfigMap create in VictoriaLogs", "logs:audit_entry_of_a_request", "logs"),
    ("registry: an image built in the lab, pushed with crane, pulled by digest on every node", "registry:push_and_pull_by_digest_on_every_node", "registry"),
    ("registry: an anonymous push is refused", "registry:anonymous_push_is_refused", "registry"),
)
SLOW_CHECKS = (
    ("DNS answers while a CoreDNS pod is deleted", "dns:answers_while_a_coredns_pod_is_deleted", "dns"),
    ("HPA scales up under load and back down", "metrics:hpa_scales_up_and_down", "metrics"),
    ("registry pod moved to another node serves the same digest", "registry:pod_moves_and_serves_the_same_digest", "registry"),
    ("ingress answers while a traefik pod is deleted", "ingress:answers_while_a_traefik_pod_is_deleted", "ingress"),
)


def checks_for(lab, slow: bool = False, addons: Collection[str] | None = None) -> tuple[tuple[str, str], ...]:
    """The checks that apply to this lab: the core ones, then its add-ons' (and the slow ones).
    With `addons`, only those add-ons' (None: all of the lab's)."""
    extra = ADDON_CHECKS + (SLOW_CHECKS if slow else ())
    return CORE_CHECKS + tuple((name, target) for name, target, addon in extra
                               if lab.has_addon(addon) and (addons is None or addon in addons))


def resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(f"checks.{module}"), function)


# Lanes: checks in different lanes run at once, checks in one lane one after another, in list
# order. Each core check only reads state and writes only its own scratch files, so it is a lane
# of its own. An add-on's quick checks share that add-on's workloads (the registry's pull pods,
# the logs' probe pods), so they form one lane per add-on; different add-ons share nothing. The
# slow checks delete pods and load the nodes on purpose, so they run after everything else,
# alone. The wall time is the slowest lane's, not the sum. --serial (cmd_check) runs one at a time.
CONCURRENT = frozenset(target for _, target in CORE_CHECKS)
ADDON_LANES = {target: addon for _, target, addon in ADDON_CHECKS}
WORKERS = 8   # threads; the SSH channels they open are capped per machine (harness.transport)


def _lane(target: str) -> str | None:
    """The lane a check runs in, or None: run alone, after the lanes."""
    return target if target in CONCURRENT else ADDON_LANES.get(target)


def _in_lanes(selected, run: Callable[[str], object], serial: bool = False) -> Iterator[tuple[str, object]]:
    """(name, run(target)) for each check, in list order, each as soon as it and those before it
    are done. An error that run() raises is raised here, at its check; the rest of its lane is
    not started."""
    lanes: dict[str, list[str]] = {}
    for _, target in () if serial else selected:
        if _lane(target) is not None:
            lanes.setdefault(_lane(target), []).append(target)
    outcomes = {target: Future() for lane in lanes.values() for target in lane}

    def drive(lane):
        for index, target in enumerate(lane):
            try:
                outcomes[target].set_result(run(target))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller at its check
                outcomes[target].set_exception(exc)
                for rest in lane[index + 1:]:
                    outcomes[rest].cancel()
                return
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        # the add-ons' lanes are the long ones: they start first, the core checks fill in
        for key in sorted(lanes, key=lambda key: key in CONCURRENT):
            pool.submit(drive, lanes[key])
        for name, target in selected:
            yield name, outcomes[target].result() if target in outcomes else run(target)


def run_checks(ctx, selected, report: Callable[[str, float, Exception | None], None],
               serial: bool = False, catch: type[Exception] = AssertionError) -> None:
    """Runs the checks in their lanes and calls report(name, seconds, error or None) for each,
    in list order. Errors of type `catch` are reported; others propagate (a trainee's verify
    catches every one: a broken lab fails checks in many ways)."""
    def one(target):
        started = time.monotonic()
        try:
            resolve(target)(ctx)
            return time.monotonic() - started, None
        except catch as exc:
            return time.monotonic() - started, exc
    for name, (seconds, error) in _in_lanes(selected, one, serial):
        report(name, seconds, error)


# What a lab that is still settling shows: a check's assertion, or a command of a check that
# failed (a push through a VIP that is moving back, a pod not scheduled yet). A bug (TypeError),
# an interrupted run or an unreachable machine is not retried.
NOT_YET = (AssertionError, StepError, CommandFailed)


def converge(ctx, timeout: float = 180.0, interval: float = 3.0,
             addons: Collection[str] | None = None) -> dict[str, float]:
    """Every core check and the add-ons' quick checks (with `addons`, only those add-ons'),
    each retried until it passes or `timeout` runs out: after a machine
    restarts, pods restart and flannel re-learns leases, which takes a while. The add-ons'
    lanes run beside the core checks, so they see the lab settling too: a failed command is
    retried like a failed assertion. Returns how long each check took to pass; raises the first
    check's last error at the deadline."""
    def until_it_passes(target):
        check, started = resolve(target), time.monotonic()
        while True:
            try:
                check(ctx)
                return round(time.monotonic() - started, 1)
            except NOT_YET:
                if time.monotonic() - started > timeout:
                    raise
                time.sleep(interval)
    return dict(_in_lanes(checks_for(ctx.lab, addons=addons), until_it_passes))
