"""Which machine gets which file, with which mode, installed by which step.

This is the distribution plan the guide leaves to `scp`: each machine gets only what its roles
need. The CA private key goes to masters alone (the controller-manager signs kubelet CSRs with
it); etcd-only and node-only machines never see it.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness import pki_store
from harness.lab import Lab, Machine
from harness.pki import FRONT_PROXY_CLIENT
from harness.render import (BIN_DIR, ETCD_SSL_DIR, FLANNEL_DIR, K8S_DIR, SSL_DIR, UNIT_DIR,
                            RenderedFile, addons, configs, env, lb, logs, manifests, units)
from harness.render import ingress as ingress_render
from harness.render.kubeconfig import kubeconfig
from harness.state import LabSecrets

PUBLIC, SECRET, EXEC = 0o644, 0o600, 0o755
LOCAL_API = "https://127.0.0.1:{port}"


class _Plan:
    def __init__(self, lab: Lab, pki_dir: Path):
        self.lab, self.pki_dir, self.files = lab, Path(pki_dir), []

    def add(self, machine: Machine, step: str, path: str, content: str | bytes, mode: int = PUBLIC) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.files.append(RenderedFile(machine.name, path, data, mode, step))

    def pem(self, name: str) -> bytes:
        return (self.pki_dir / name).read_bytes()

    def cert_kubeconfig(self, server: str, user: str, stem: str) -> str:
        return kubeconfig(server, user, self.pem("ca.pem"), cert_pem=self.pem(f"{stem}.pem"),
                          key_pem=self.pem(f"{stem}-key.pem"))


def build_plan(lab: Lab, pki_dir: Path, secrets: LabSecrets) -> list[RenderedFile]:
    """Every file for every machine, in the guide's step order."""
    plan = _Plan(lab, pki_dir)
    local_api = LOCAL_API.format(port=lab.api_port)
    for m in lab.machines:
        # hosts: env.sh, the MASTER_URL record, sysctls
        plan.add(m, "hosts", f"{K8S_DIR}/env.sh", env.env_sh(lab, m))
        plan.add(m, "hosts", "/etc/k8s-ha-lab/hosts", env.hosts_block(lab, m))
        plan.add(m, "hosts", "/etc/sysctl.d/90-k8s-ha-lab.conf", env.sysctl_conf(lab, m))
        # pki: the CA certificate everywhere, its key on masters only
        plan.add(m, "pki", f"{SSL_DIR}/ca.pem", plan.pem("ca.pem"))
        if m.has("master"):
            plan.add(m, "pki", f"{SSL_DIR}/ca-key.pem", plan.pem("ca-key.pem"), SECRET)
        if m.has("etcd"):
            plan.add(m, "etcd", f"{ETCD_SSL_DIR}/etcd.pem", plan.pem(f"etcd-{m.name}.pem"))
            plan.add(m, "etcd", f"{ETCD_SSL_DIR}/etcd-key.pem", plan.pem(f"etcd-{m.name}-key.pem"), SECRET)
            plan.add(m, "etcd", f"{UNIT_DIR}/etcd.service", units.etcd_service(lab, m))
        if m.has("master"):
            plan.add(m, "kubectl", "/root/.kube/config",
                     plan.cert_kubeconfig(lab.api_url, "admin", "admin"), SECRET)
        # flannel runs on every machine, as in the guide (5 leases)
        plan.add(m, "flannel", f"{FLANNEL_DIR}/ssl/flanneld.pem", plan.pem("flanneld.pem"))
        plan.add(m, "flannel", f"{FLANNEL_DIR}/ssl/flanneld-key.pem", plan.pem("flanneld-key.pem"), SECRET)
        plan.add(m, "flannel", f"{UNIT_DIR}/flanneld.service", units.flanneld_service(lab, m))
        if m is lab.etcd_members[0]:
            plan.add(m, "flannel", f"{FLANNEL_DIR}/network-config.json", manifests.flannel_network_json(lab))
        if m.has("master"):
            _master_files(plan, m, secrets, local_api)
        if m.has("lb"):
            plan.add(m, "api-ha", "/etc/haproxy/haproxy.cfg",
                     lb.haproxy_cfg(lab, secrets.haproxy_stats_password), SECRET)
            plan.add(m, "api-ha", lb.CHECK_HAPROXY, lb.check_haproxy_sh(), EXEC)
            plan.add(m, "api-ha", lb.CHECK_LAB_NETWORK, lb.check_lab_network_sh(lab, m), EXEC)
            plan.add(m, "api-ha", "/etc/keepalived/keepalived.conf",
                     lb.keepalived_conf(lab, m, secrets.vrrp_auth_pass), SECRET)
            plan.add(m, "api-ha", f"{UNIT_DIR}/{lb.KEEPALIVED_DROPIN}", lb.keepalived_dropin(lab))
        if m.has("node"):
            _node_files(plan, m, secrets)
    return plan.files


def _master_files(plan: _Plan, m: Machine, secrets: LabSecrets, local_api: str) -> None:
    lab = plan.lab
    for src, dst, mode in ((f"kubernetes-{m.name}.pem", "kubernetes.pem", PUBLIC),
                           (f"kubernetes-{m.name}-key.pem", "kubernetes-key.pem", SECRET),
                           ("apiserver-kubelet-client.pem", "apiserver-kubelet-client.pem", PUBLIC),
                           ("apiserver-kubelet-client-key.pem", "apiserver-kubelet-client-key.pem", SECRET),
                           ("front-proxy-ca.pem", "front-proxy-ca.pem", PUBLIC),
                           (f"{FRONT_PROXY_CLIENT}.pem", f"{FRONT_PROXY_CLIENT}.pem", PUBLIC),
                           (f"{FRONT_PROXY_CLIENT}-key.pem", f"{FRONT_PROXY_CLIENT}-key.pem", SECRET),
                           (pki_store.SA_PUBLIC, pki_store.SA_PUBLIC, PUBLIC),
                           (pki_store.SA_PRIVATE, pki_store.SA_PRIVATE, SECRET)):
        plan.add(m, "masters", f"{SSL_DIR}/{dst}", plan.pem(src), mode)
    plan.add(m, "masters", f"{K8S_DIR}/token.csv", configs.token_csv(secrets.bootstrap_token), SECRET)
    plan.add(m, "masters", f"{K8S_DIR}/audit-policy.yaml", configs.audit_policy())
    plan.add(m, "masters", f"{K8S_DIR}/kube-controller-manager.kubeconfig",
             plan.cert_kubeconfig(local_api, "system:kube-controller-manager", "kube-controller-manager"), SECRET)
    plan.add(m, "masters", f"{K8S_DIR}/kube-scheduler.kubeconfig",
             plan.cert_kubeconfig(local_api, "system:kube-scheduler", "kube-scheduler"), SECRET)
    plan.add(m, "masters", f"{K8S_DIR}/kube-scheduler.yaml", configs.kube_scheduler_config())
    plan.add(m, "masters", f"{UNIT_DIR}/kube-apiserver.service", units.kube_apiserver_service(lab, m))
    plan.add(m, "masters", f"{UNIT_DIR}/kube-controller-manager.service",
             units.kube_controller_manager_service(lab, m))
    plan.add(m, "masters", f"{UNIT_DIR}/kube-scheduler.service", units.kube_scheduler_service(lab, m))
    plan.add(m, "masters", f"{K8S_DIR}/addons/rbac.yaml", manifests.rbac_yaml())
    plan.add(m, "workload", f"{K8S_DIR}/addons/nginx-ds.yaml", manifests.nginx_ds_yaml(lab))
    if lab.has_addon("ingress") and m is lab.masters[0]:
        # Holds the ingress certificate's key in a Secret: root-only, on the master kubectl runs on.
        cert = ingress_render.INGRESS_CERT
        plan.add(m, "ingress", ingress_render.MANIFEST,
                 ingress_render.ingress_yaml(lab, plan.pem(f"{cert}.pem"), plan.pem(f"{cert}-key.pem")), SECRET)
    if lab.has_addon("dns"):
        plan.add(m, "dns", f"{K8S_DIR}/addons/coredns.yaml", addons.coredns_yaml(lab))
    if lab.has_addon("metrics"):
        # Holds metrics-server's serving key in a Secret: root-only on the master.
        plan.add(m, "metrics", f"{K8S_DIR}/addons/metrics-server.yaml",
                 addons.metrics_server_yaml(lab, plan.pem("ca.pem"), plan.pem("metrics-server.pem"),
                                            plan.pem("metrics-server-key.pem")), SECRET)
    if lab.has_addon("logs"):
        # Holds VictoriaLogs' serving key in a Secret: root-only on the master.
        if m is lab.masters[0]:
            plan.add(m, "logs", f"{K8S_DIR}/addons/logs.yaml",
                     logs.logs_yaml(lab, plan.pem("victorialogs.pem"), plan.pem("victorialogs-key.pem")), SECRET)
        plan.add(m, "logs", f"{UNIT_DIR}/{logs.AUDIT_UNIT}", logs.audit_agent_service(lab, m))


def _node_files(plan: _Plan, m: Machine, secrets: LabSecrets) -> None:
    lab = plan.lab
    ca = plan.pem("ca.pem")
    plan.add(m, "nodes", f"{K8S_DIR}/bootstrap.kubeconfig",
             kubeconfig(lab.api_url, "kubelet-bootstrap", ca, token=secrets.bootstrap_token), SECRET)
    plan.add(m, "nodes", f"{K8S_DIR}/kube-proxy.kubeconfig",
             plan.cert_kubeconfig(lab.api_url, "kube-proxy", "kube-proxy"), SECRET)
    plan.add(m, "nodes", f"{K8S_DIR}/kubelet-config.yaml", configs.kubelet_config(lab, m))
    plan.add(m, "nodes", f"{K8S_DIR}/kube-proxy-config.yaml", configs.kube_proxy_config(lab, m))
    plan.add(m, "nodes", "/etc/containerd/config.toml", configs.containerd_config(lab))
    for path, content in configs.registry_trust(lab):
        plan.add(m, "nodes", path, content)
    plan.add(m, "nodes", f"{BIN_DIR}/mk-cni-conf", configs.mk_cni_conf(lab), EXEC)
    plan.add(m, "nodes", f"{UNIT_DIR}/mk-cni-conf.service", units.cni_config_service())
    plan.add(m, "nodes", f"{UNIT_DIR}/containerd.service.d/10-k8s-ha-lab.conf", units.containerd_dropin())
    plan.add(m, "nodes", f"{UNIT_DIR}/kubelet.service", units.kubelet_service(lab, m))
    plan.add(m, "nodes", f"{UNIT_DIR}/kube-proxy.service", units.kube_proxy_service(lab, m))


def write_tree(files: list[RenderedFile], out: Path) -> int:
    """Write the plan as OUT/<machine>/<path>, with each file's mode. Returns the file count."""
    out = Path(out)
    for f in files:
        target = out / f.machine / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(f.content)
        os.chmod(tmp, f.mode)
        os.replace(tmp, target)
    return len(files)
