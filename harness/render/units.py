"""systemd units for etcd, flanneld and the Kubernetes components, flags valid for the pinned
release. Each flag that differs from the guide is listed in docs/seed-deviations.md."""

from __future__ import annotations

from harness.lab import Lab, Machine
from harness.pki import FRONT_PROXY_CLIENT
from harness.render import (BIN_DIR, CNI_CONF_DIR, ETCD_SSL_DIR, FLANNEL_DIR, FLANNEL_SUBNET_FILE,
                            K8S_DIR, SSL_DIR)


def _unit(description: str, exec_start: list[str], *, after: str = "network-online.target",
          wants: str = "network-online.target", requires: str = "", service: dict | None = None,
          before: str = "") -> str:
    command = " \\\n  ".join(exec_start)
    lines = ["[Unit]", f"Description={description}", "Documentation=https://kubernetes.io/docs/",
             f"After={after}", f"Wants={wants}"]
    if requires:
        lines.append(f"Requires={requires}")
    if before:
        lines.append(f"Before={before}")
    lines += ["", "[Service]"]
    settings = {"Restart": "on-failure", "RestartSec": "5", "LimitNOFILE": "65536", **(service or {})}
    lines += [f"{key}={value}" for key, value in settings.items()]
    lines += [f"ExecStart={command}", "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def etcd_service(lab: Lab, machine: Machine) -> str:
    ip = machine.ip
    return _unit(f"etcd member {lab.etcd_name(machine)}", [
        f"{BIN_DIR}/etcd",
        f"--name={lab.etcd_name(machine)}",
        "--data-dir=/var/lib/etcd",
        f"--cert-file={ETCD_SSL_DIR}/etcd.pem",
        f"--key-file={ETCD_SSL_DIR}/etcd-key.pem",
        f"--trusted-ca-file={SSL_DIR}/ca.pem",
        f"--peer-cert-file={ETCD_SSL_DIR}/etcd.pem",
        f"--peer-key-file={ETCD_SSL_DIR}/etcd-key.pem",
        f"--peer-trusted-ca-file={SSL_DIR}/ca.pem",
        "--client-cert-auth",
        "--peer-client-cert-auth",
        f"--initial-advertise-peer-urls=https://{ip}:2380",
        f"--listen-peer-urls=https://{ip}:2380",
        f"--listen-client-urls=https://{ip}:2379,https://127.0.0.1:2379",
        f"--advertise-client-urls=https://{ip}:2379",
        f"--initial-cluster-token=etcd-cluster-{lab.name}",
        f"--initial-cluster={lab.etcd_initial_cluster}",
        "--initial-cluster-state=new",
    ], service={"Type": "notify", "WorkingDirectory": "/var/lib/etcd"})


def flanneld_service(lab: Lab, machine: Machine) -> str:
    return _unit("flanneld overlay address etcd agent", [
        f"{BIN_DIR}/flanneld",
        f"--etcd-endpoints={lab.etcd_endpoints}",
        f"--etcd-prefix={lab.flannel.etcd_prefix}",
        f"--etcd-cafile={SSL_DIR}/ca.pem",
        f"--etcd-certfile={FLANNEL_DIR}/ssl/flanneld.pem",
        f"--etcd-keyfile={FLANNEL_DIR}/ssl/flanneld-key.pem",
        f"--iface={machine.ip}",
        f"--public-ip={machine.ip}",
        f"--subnet-file={FLANNEL_SUBNET_FILE}",
        "--ip-masq",
    ], before="containerd.service", service={"Type": "notify"})


def cni_config_service() -> str:
    """Runs mk-cni-conf once flannel has a lease: our mk-docker-opts.sh."""
    return "\n".join([
        "[Unit]", "Description=CNI config from flannel's subnet (the guide's mk-docker-opts.sh)",
        "After=flanneld.service", "Requires=flanneld.service", "Before=containerd.service kubelet.service",
        "", "[Service]", "Type=oneshot", "RemainAfterExit=yes",
        f"ExecStart={BIN_DIR}/mk-cni-conf {FLANNEL_SUBNET_FILE} {CNI_CONF_DIR}/10-flannel.conflist",
        "", "[Install]", "WantedBy=multi-user.target", ""])


def kube_apiserver_service(lab: Lab, machine: Machine) -> str:
    c = lab.cluster
    return _unit("Kubernetes API Server", [
        f"{BIN_DIR}/kube-apiserver",
        f"--advertise-address={machine.ip}",
        "--bind-address=0.0.0.0",
        f"--secure-port={lab.api_port}",
        "--authorization-mode=Node,RBAC",
        "--anonymous-auth=false",
        "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
        "DefaultStorageClass,ResourceQuota,NodeRestriction",
        "--enable-bootstrap-token-auth",
        f"--token-auth-file={K8S_DIR}/token.csv",
        f"--service-cluster-ip-range={c.service_cidr}",
        f"--service-node-port-range={c.node_port_range_str}",
        f"--tls-cert-file={SSL_DIR}/kubernetes.pem",
        f"--tls-private-key-file={SSL_DIR}/kubernetes-key.pem",
        f"--client-ca-file={SSL_DIR}/ca.pem",
        f"--kubelet-client-certificate={SSL_DIR}/apiserver-kubelet-client.pem",
        f"--kubelet-client-key={SSL_DIR}/apiserver-kubelet-client-key.pem",
        # The kubelets' serving certs come from the cluster CA (serverTLSBootstrap, approved by
        # the harness), so the apiserver verifies them, dialling the IP the cert names.
        f"--kubelet-certificate-authority={SSL_DIR}/ca.pem",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        # The aggregation layer (metrics-server): the apiserver proxies with its own client
        # cert from the front-proxy CA and asserts the user in X-Remote-* headers.
        f"--requestheader-client-ca-file={SSL_DIR}/front-proxy-ca.pem",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={SSL_DIR}/{FRONT_PROXY_CLIENT}.pem",
        f"--proxy-client-key-file={SSL_DIR}/{FRONT_PROXY_CLIENT}-key.pem",
        # Masters run flanneld but no kube-proxy: dial the extension apiserver's pod IP, not its
        # ClusterIP.
        "--enable-aggregator-routing=true",
        f"--service-account-key-file={SSL_DIR}/service-account.pem",
        f"--service-account-signing-key-file={SSL_DIR}/service-account-key.pem",
        f"--service-account-issuer=https://kubernetes.default.svc.{lab.dns_domain}",
        f"--etcd-cafile={SSL_DIR}/ca.pem",
        f"--etcd-certfile={SSL_DIR}/kubernetes.pem",
        f"--etcd-keyfile={SSL_DIR}/kubernetes-key.pem",
        f"--etcd-servers={lab.etcd_endpoints}",
        "--allow-privileged=true",
        "--audit-log-maxage=30",
        "--audit-log-maxbackup=3",
        "--audit-log-maxsize=100",
        "--audit-log-path=/var/log/kubernetes/audit.log",
        f"--audit-policy-file={K8S_DIR}/audit-policy.yaml",
        "--event-ttl=1h",
        "--v=2",
    ], after="network-online.target etcd.service", service={"Type": "notify"})


def kube_controller_manager_service(lab: Lab, machine: Machine) -> str:
    kubeconfig = f"{K8S_DIR}/kube-controller-manager.kubeconfig"
    return _unit("Kubernetes Controller Manager", [
        f"{BIN_DIR}/kube-controller-manager",
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--cluster-name=kubernetes",
        f"--service-cluster-ip-range={lab.cluster.service_cidr}",
        f"--cluster-signing-cert-file={SSL_DIR}/ca.pem",
        f"--cluster-signing-key-file={SSL_DIR}/ca-key.pem",
        "--cluster-signing-duration=8760h",
        f"--root-ca-file={SSL_DIR}/ca.pem",
        f"--service-account-private-key-file={SSL_DIR}/service-account-key.pem",
        "--use-service-account-credentials=true",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--allocate-node-cidrs=false",
        "--leader-elect=true",
        # The lab's HPA timing (autoscaling in the lab file); Kubernetes' defaults are 15s and 5m.
        f"--horizontal-pod-autoscaler-sync-period={lab.autoscaling.sync_period_s}s",
        f"--horizontal-pod-autoscaler-downscale-stabilization={lab.autoscaling.downscale_stabilization_s}s",
        "--v=2",
    ], after="network-online.target kube-apiserver.service")


def kube_scheduler_service(lab: Lab, machine: Machine) -> str:
    return _unit("Kubernetes Scheduler", [
        f"{BIN_DIR}/kube-scheduler",
        f"--config={K8S_DIR}/kube-scheduler.yaml",
        f"--authentication-kubeconfig={K8S_DIR}/kube-scheduler.kubeconfig",
        f"--authorization-kubeconfig={K8S_DIR}/kube-scheduler.kubeconfig",
        "--bind-address=127.0.0.1",
        "--v=2",
    ], after="network-online.target kube-apiserver.service")


def kubelet_service(lab: Lab, machine: Machine) -> str:
    return _unit("Kubernetes Kubelet", [
        f"{BIN_DIR}/kubelet",
        f"--bootstrap-kubeconfig={K8S_DIR}/bootstrap.kubeconfig",
        f"--kubeconfig={K8S_DIR}/kubelet.kubeconfig",
        f"--config={K8S_DIR}/kubelet-config.yaml",
        f"--cert-dir={SSL_DIR}",
        f"--hostname-override={machine.node_name}",
        f"--node-ip={machine.ip}",
        "--v=2",
    ], after="containerd.service mk-cni-conf.service", requires="containerd.service",
        service={"WorkingDirectory": "/var/lib/kubelet"})


def service_cidr_reject(lab: Lab) -> str:
    """Refuse what kube-proxy did not translate: a packet to the service range that no Service
    port matched (no DNAT) gets a TCP reset or an ICMP port-unreachable, the way kube-proxy's
    nftables and ipvs modes answer. Without it such a packet follows the default route out of
    the node, and on a docker host the host's own network answered TCP port 80 for any address
    (conformance "Services should serve endpoints on same port and different protocols" saw a
    removed TCP port still answer). -C before -I keeps it idempotent across restarts."""
    rules = []
    for chain in ("FORWARD", "OUTPUT"):
        for proto, reject in (("tcp", "tcp-reset"), ("udp", "icmp-port-unreachable")):
            rule = (f"{chain} -d {lab.cluster.service_cidr} -p {proto} -m conntrack ! --ctstate DNAT "
                    f"-j REJECT --reject-with {reject}")
            rules.append(f"iptables -C {rule} 2>/dev/null || iptables -I {rule}")
    return "/bin/sh -c '" + "; ".join(rules) + "'"


def kube_proxy_service(lab: Lab, machine: Machine) -> str:
    return _unit("Kubernetes Kube-Proxy Server", [
        f"{BIN_DIR}/kube-proxy",
        f"--config={K8S_DIR}/kube-proxy-config.yaml",
        f"--hostname-override={machine.node_name}",
        "--v=2",
    ], service={"WorkingDirectory": "/var/lib/kube-proxy", "ExecStartPre": service_cidr_reject(lab)})


def containerd_dropin() -> str:
    """Debian's containerd unit, told to wait for the CNI config flannel's subnet produces."""
    return "[Unit]\nAfter=mk-cni-conf.service\nWants=mk-cni-conf.service\n"

