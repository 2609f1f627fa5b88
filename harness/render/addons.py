"""The add-ons the guide's intro promises, as manifests: CoreDNS (its kubedns) and metrics-server
(its heapster). Both images were imported into every node's containerd; nothing is pulled.

Every name, address and zone comes from the lab, so the small lab gets its own service IP,
domain and reverse zones without a line changed here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import yaml

from harness.lab import Lab

DNS_APP = "kube-dns"              # the label and Service name every resolver and test expects
DNS_SERVICE = "kube-dns"
METRICS_APP = "metrics-server"
NAMESPACE = "kube-system"
# CoreDNS's own ports: /health answers while the process lives, /ready once the kubernetes
# plugin has synced with the API.
DNS_HEALTH_PORT, DNS_READY_PORT, DNS_METRICS_PORT = 8080, 8181, 9153
METRICS_PORT = 10250
# CoreDNS's readiness probe: how soon a dead replica leaves the Service (failover bounds read it).
DNS_READY_PERIOD_S, DNS_READY_FAILURES, DNS_READY_TIMEOUT_S = 2, 2, 2
# Unprivileged users in the CoreDNS container: binding :53 needs no capability once the pod's
# own network namespace allows it (a namespaced, "safe" sysctl).
NONROOT = 65532


def reverse_zones(network: ipaddress.IPv4Network) -> list[str]:
    """The in-addr.arpa zones covering a network, one per octet-aligned block (a /12 is 16
    zones of a /16; a /24 is one)."""
    aligned = max(8, -(-network.prefixlen // 8) * 8)
    zones = []
    for block in network.subnets(new_prefix=aligned) if aligned > network.prefixlen else [network]:
        octets = str(block.network_address).split(".")[: aligned // 8]
        zones.append(".".join(reversed(octets)) + ".in-addr.arpa")
    return zones


def object_meta(name: str, namespace: str | None = NAMESPACE, **labels: str) -> dict:
    """metadata for an add-on's object: kube-system unless told otherwise (None: cluster-scoped)."""
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _cluster_role(name: str, rules: list[dict], labels: dict | None = None) -> dict:
    meta = object_meta(name, None)
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta, "rules": rules}


def _binding(kind: str, name: str, role_kind: str, role: str, account: str,
             namespace: str | None = None) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": object_meta(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _hardened(container: dict) -> dict:
    container["securityContext"] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    return container


# --- CoreDNS -------------------------------------------------------------------------------------
def lab_hosts(lab: Lab) -> list[tuple[str, str]]:
    """(ip, name) for every machine, its node name, and MASTER_URL: what pods may resolve
    outside the cluster domain."""
    entries = []
    for m in lab.machines:
        entries.append((str(m.ip), m.name))
        if m.node_name != m.name:
            entries.append((str(m.ip), m.node_name))
    entries.append((str(lab.api_address), lab.master_url))
    return entries


def corefile(lab: Lab) -> str:
    """Three server blocks, chosen by the most specific zone of each question:
    - the cluster: authoritative for the domain and for the reverse zones of the service and pod
      networks (the kubernetes plugin);
    - the lab: each machine's name, MASTER_URL and the machine network's reverse zone, from the
      lab file (the hosts plugin);
    - everything else: NXDOMAIN at once. The lab has no upstream resolver, so there is no
      `forward` at all, and so no forwarding loop: the node's resolv.conf is never consulted."""
    domain = lab.dns_domain
    cluster_zones = [domain, *reverse_zones(lab.cluster.service_cidr), *reverse_zones(lab.cluster.cluster_cidr)]
    entries = lab_hosts(lab)
    lab_zones = list(dict.fromkeys([name for _, name in entries] + reverse_zones(lab.network)))
    hosts = "\n".join(f"        {ip} {name}" for ip, name in entries)
    return f"""\
# The cluster: {domain} and the reverse zones of SERVICE_CIDR and CLUSTER_CIDR.
{' '.join(f'{z}:53' for z in cluster_zones)} {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {' '.join(cluster_zones)} {{
        pods insecure
        ttl 30
    }}
    prometheus :{DNS_METRICS_PORT}
    cache 30
    loop
    reload
    loadbalance
}}
# The lab's machines and MASTER_URL, from the lab file.
{' '.join(f'{z}:53' for z in lab_zones)} {{
    errors
    hosts {{
{hosts}
        ttl 30
    }}
    prometheus :{DNS_METRICS_PORT}
    cache 30
    reload
}}
# Everything else: no upstream in the lab, no forward; NXDOMAIN at once instead of a timeout.
.:53 {{
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
    prometheus :{DNS_METRICS_PORT}
    reload
}}
"""


def coredns_yaml(lab: Lab, replicas: int = 2) -> str:
    labels = {"k8s-app": DNS_APP}
    rbac = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta("coredns")},
        _cluster_role("system:coredns", [
            _rule([""], ["endpoints", "services", "pods", "namespaces"], ["list", "watch"]),
            _rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch"])]),
        _binding("ClusterRoleBinding", "system:coredns", "ClusterRole", "system:coredns", "coredns"),
    ]
    core = corefile(lab)
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object_meta("coredns"),
              "data": {"Corefile": core}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {**object_meta(DNS_SERVICE, **labels, **{"kubernetes.io/name": "CoreDNS"}),
                            "annotations": {"prometheus.io/port": str(DNS_METRICS_PORT),
                                            "prometheus.io/scrape": "true"}},
               "spec": {"selector": labels, "clusterIP": str(lab.cluster.dns_service_ip),
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                  {"name": "metrics", "port": DNS_METRICS_PORT, "protocol": "TCP"}]}}
    container = _hardened({
        "name": "coredns",
        "image": lab.versions.coredns.image_ref,
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": DNS_METRICS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
        "livenessProbe": {"httpGet": {"path": "/health", "port": DNS_HEALTH_PORT},
                          "initialDelaySeconds": 30, "timeoutSeconds": 5, "periodSeconds": 10,
                          "failureThreshold": 5},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": DNS_READY_PORT},
                           "periodSeconds": DNS_READY_PERIOD_S, "timeoutSeconds": DNS_READY_TIMEOUT_S,
                           "failureThreshold": DNS_READY_FAILURES},
    })
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": object_meta("coredns", **labels),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": labels},
            # A changed Corefile rolls the pods (one at a time) instead of waiting for `reload`.
            "template": {"metadata": {"labels": labels, "annotations": {
                "k8s-ha-lab/corefile-sha256": hashlib.sha256(core.encode()).hexdigest()}}, "spec": {
                "priorityClassName": "system-cluster-critical",
                "serviceAccountName": "coredns",
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                # Two replicas on one node would die together with it.
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}},
                "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT, "runAsGroup": NONROOT,
                                    "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                 "value": "53"}]},
                "dnsPolicy": "Default",
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
            }},
        },
    }
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": object_meta("coredns"),
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}
    return yaml.safe_dump_all([*rbac, config, service, deployment, budget], sort_keys=False)


# --- metrics-server ------------------------------------------------------------------------------
def metrics_server_yaml(lab: Lab, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> str:
    """metrics-server behind the aggregation layer. It serves a cert from the cluster CA (the
    APIService's caBundle) and verifies every kubelet's serving cert against the same CA, read
    from the kube-root-ca.crt ConfigMap: no --kubelet-insecure-tls."""
    labels = {"k8s-app": METRICS_APP}
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta("metrics-server", **labels)},
        _cluster_role("system:aggregated-metrics-reader",
                      [_rule(["metrics.k8s.io"], ["pods", "nodes"], ["get", "list", "watch"])],
                      {"rbac.authorization.k8s.io/aggregate-to-admin": "true",
                       "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                       "rbac.authorization.k8s.io/aggregate-to-view": "true"}),
        _cluster_role("system:metrics-server", [
            _rule([""], ["nodes/metrics"], ["get"]),
            _rule([""], ["pods", "nodes"], ["get", "list", "watch"])]),
        _binding("RoleBinding", "metrics-server-auth-reader", "Role",
                 "extension-apiserver-authentication-reader", "metrics-server", NAMESPACE),
        _binding("ClusterRoleBinding", "metrics-server:system:auth-delegator", "ClusterRole",
                 "system:auth-delegator", "metrics-server"),
        _binding("ClusterRoleBinding", "system:metrics-server", "ClusterRole",
                 "system:metrics-server", "metrics-server"),
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": object_meta("metrics-server-tls", **labels),
         "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": object_meta("metrics-server", **labels),
         "spec": {"selector": labels,
                  "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}},
    ]
    container = _hardened({
        "name": "metrics-server",
        "image": lab.versions.metrics_server.image_ref,
        "imagePullPolicy": "Never",
        "args": [f"--secure-port={METRICS_PORT}", "--cert-dir=/tmp",
                 "--tls-cert-file=/etc/metrics-server/tls/tls.crt",
                 "--tls-private-key-file=/etc/metrics-server/tls/tls.key",
                 "--kubelet-certificate-authority=/etc/metrics-server/ca/ca.crt",
                 "--kubelet-preferred-address-types=InternalIP",
                 "--kubelet-use-node-status-port",
                 "--metric-resolution=15s"],
        "ports": [{"name": "https", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"memory": "300Mi"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"},
                          "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": "tls", "mountPath": "/etc/metrics-server/tls", "readOnly": True},
                         {"name": "ca", "mountPath": "/etc/metrics-server/ca", "readOnly": True}],
    })
    # metrics-server reads its serving cert only at start: a new one rolls the pod.
    tls_sha = hashlib.sha256(cert_pem + key_pem).hexdigest()
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": object_meta("metrics-server", **labels),
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels,
                                           "annotations": {"k8s-ha-lab/tls-sha256": tls_sha}}, "spec": {
                     "priorityClassName": "system-cluster-critical",
                     "serviceAccountName": "metrics-server",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
                     "containers": [container],
                     "volumes": [{"name": "tmp", "emptyDir": {}},
                                 {"name": "tls", "secret": {"secretName": "metrics-server-tls"}},
                                 {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}]}}}})
    docs.append({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
        "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "caBundle": b64(ca_pem),
                 "service": {"name": "metrics-server", "namespace": NAMESPACE, "port": 443}}})
    return yaml.safe_dump_all(docs, sort_keys=False)
