"""The logs add-on (the guide's log collection): VictoriaLogs, vlagent on every node for the
containers' logs, vlagent on every master for the apiservers' audit logs, and the web UI through
the ingress. Every name, address and port comes from the lab.

- The store: one victoria-logs pod, pinned to the storage node (the first worker) with its data
  on that node's disk (hostPath), so it survives pod restarts and node reboots.
- It listens twice: plain HTTP inside the cluster for the ingress (traefik terminates the lab's
  TLS) and HTTPS with a cert from the cluster CA, which the collectors and the checks use. The
  HTTPS port is also a NodePort, for the masters, which are outside Kubernetes.
- The containers' logs: a vlagent DaemonSet reading the kubelet's files under /var/log/pods,
  adding the pod, namespace and node of each line from the API.
- The audit logs: master01 and master02 are not nodes, so the DaemonSet cannot reach them; a
  systemd unit runs vlagent's file collector on every master, writing to the NodePort on the
  storage node (the store is down exactly when that node is, whichever path is used).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex

import yaml

from harness.lab import Lab, Machine
from harness.render import BIN_DIR, SSL_DIR
from harness.render.addons import object_meta

NAMESPACE = "kube-system"
STORE = "victorialogs"                     # Deployment, Services, Secret, certificate stem
STORE_NODEPORT_SERVICE = "victorialogs-collectors"
AGENT = "vlagent"                          # DaemonSet, ServiceAccount, ClusterRole
HTTP_PORT, HTTPS_PORT = 9428, 9443         # the store: for the ingress / for collectors and checks
AGENT_PORT = 9429                          # vlagent's own /metrics and /health
DATA_DIR = "/var/lib/victoria-logs"        # on the storage node
# Checkpoints and the send buffer: the pods' and the audit unit's apart (master03 runs both).
AGENT_DIR = "/var/lib/vlagent/pods"
AUDIT_AGENT_DIR = "/var/lib/vlagent/audit"
RETENTION = "7d"
MAX_DISK = "2GiB"                          # oldest days dropped beyond this
AUDIT_LOG = "/var/log/kubernetes/audit.log"  # units.kube_apiserver_service's --audit-log-path
AUDIT_UNIT = "vlagent-audit.service"
AUDIT_SOURCE = "kube-apiserver-audit"      # the log_source field of every audit entry
CONTAINER_SOURCE = "containers"
UI_PATH = "/select/vmui/"                  # the web UI compiled into victoria-logs


def storage_node(lab: Lab) -> Machine:
    """Where the store and its data live: the first worker (a node that is not a master)."""
    workers = [m for m in lab.nodes if not m.has("master")]
    return (workers or lab.nodes)[0]


def node_port(lab: Lab) -> int:
    """The NodePort of the store's HTTPS listener: the top of the lab's NodePort range, so it
    moves with the range and never meets the low end where Kubernetes allocates first."""
    return lab.cluster.node_port_range[1]


def victorialogs_sans(lab: Lab) -> tuple[str, ...]:
    node = storage_node(lab)
    names = [f"{STORE}.{NAMESPACE}.svc", f"{STORE}.{NAMESPACE}.svc.{lab.dns_domain}",
             node.name, node.node_name, str(node.ip)]
    return tuple(dict.fromkeys(names))


def https_url(lab: Lab) -> str:
    """The store as the masters (and the checks, from a master) reach it."""
    return f"https://{storage_node(lab).name}:{node_port(lab)}"


def cluster_url(lab: Lab) -> str:
    """The store as pods reach it: its Service, over HTTPS."""
    return f"https://{STORE}.{NAMESPACE}.svc.{lab.dns_domain}:{HTTPS_PORT}"


def _hardened(container: dict) -> dict:
    container["securityContext"] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    return container


def _store(lab: Lab, cert_pem: bytes, key_pem: bytes) -> list[dict]:
    labels = {"app.kubernetes.io/name": STORE}
    tls_dir = "/etc/victorialogs/tls"
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": object_meta(f"{STORE}-tls", **labels),
              "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)}}
    container = _hardened({
        "name": STORE, "image": lab.versions.victorialogs.image_ref, "imagePullPolicy": "Never",
        "command": ["/victoria-logs"],
        "args": [f"-storageDataPath={DATA_DIR}", f"-retentionPeriod={RETENTION}",
                 f"-retention.maxDiskSpaceUsageBytes={MAX_DISK}",
                 f"-httpListenAddr=:{HTTP_PORT},:{HTTPS_PORT}", "-tls=false,true",
                 f"-tlsCertFile={tls_dir}/tls.crt,{tls_dir}/tls.crt",
                 f"-tlsKeyFile={tls_dir}/tls.key,{tls_dir}/tls.key",
                 "-tlsMinVersion=TLS12,TLS12"],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "https", "containerPort": HTTPS_PORT}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR},
                         {"name": "tls", "mountPath": tls_dir, "readOnly": True}],
    })
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": object_meta(STORE, **labels),
        # One writer per data directory: the old pod is gone before the new one opens it.
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels, "annotations": {
                     "k8s-ha-lab/tls-sha256": hashlib.sha256(cert_pem + key_pem).hexdigest()}}, "spec": {
                     "nodeSelector": {"kubernetes.io/hostname": storage_node(lab).node_name},
                     "containers": [container],
                     "volumes": [{"name": "data", "hostPath": {"path": DATA_DIR, "type": "DirectoryOrCreate"}},
                                 {"name": "tls", "secret": {"secretName": f"{STORE}-tls"}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": object_meta(STORE, **labels),
               "spec": {"selector": labels,
                        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                                  {"name": "https", "port": HTTPS_PORT, "targetPort": "https"}]}}
    collectors = {"apiVersion": "v1", "kind": "Service", "metadata": object_meta(STORE_NODEPORT_SERVICE, **labels),
                  "spec": {"type": "NodePort", "selector": labels,
                           "ports": [{"name": "https", "port": HTTPS_PORT, "targetPort": "https",
                                      "nodePort": node_port(lab)}]}}
    return [secret, deployment, service, collectors]


def _agent(lab: Lab) -> list[dict]:
    labels = {"app.kubernetes.io/name": AGENT}
    rbac = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta(AGENT)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": object_meta(AGENT, None),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": object_meta(AGENT, None),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AGENT},
         "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": NAMESPACE}]},
    ]
    container = _hardened({
        "name": AGENT, "image": lab.versions.victorialogs.image_ref, "imagePullPolicy": "Never",
        "command": ["/vlagent"],
        "args": ["-kubernetesCollector", "-kubernetesCollector.logsPath=/var/log/containers",
                 f"-kubernetesCollector.checkpointsPath={AGENT_DIR}/kubernetes-checkpoints.json",
                 f"-kubernetesCollector.extraFields={json.dumps({'log_source': CONTAINER_SOURCE})}",
                 f"-tmpDataPath={AGENT_DIR}", f"-httpListenAddr=:{AGENT_PORT}",
                 f"-remoteWrite.url={cluster_url(lab)}/insert/native",
                 "-remoteWrite.tlsCAFile=/etc/vlagent/ca/ca.crt"],
        "ports": [{"name": "http", "containerPort": AGENT_PORT}],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "volumeMounts": [{"name": "varlog", "mountPath": "/var/log", "readOnly": True},
                         {"name": "data", "mountPath": AGENT_DIR},
                         {"name": "ca", "mountPath": "/etc/vlagent/ca", "readOnly": True}],
    })
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": object_meta(AGENT, **labels),
        "spec": {"selector": {"matchLabels": labels},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "serviceAccountName": AGENT,
                     "priorityClassName": "system-node-critical",
                     # Every node, whatever its taints: a node whose logs are not collected is a hole.
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [container],
                     "volumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}},
                                 {"name": "data", "hostPath": {"path": AGENT_DIR, "type": "DirectoryOrCreate"}},
                                 {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}]}}}}
    return [*rbac, daemonset]


def ingress(lab: Lab) -> dict:
    """The web UI and the query API at logs.<ingress domain>. Only /select (the UI lives at
    /select/vmui) and the landing page: the write endpoints stay inside the cluster."""
    from harness.render.ingress import INGRESS_CLASS

    backend = {"service": {"name": STORE, "port": {"number": HTTP_PORT}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": object_meta(STORE, **{"app.kubernetes.io/name": STORE}),
            "spec": {"ingressClassName": INGRESS_CLASS,
                     "rules": [{"host": lab.ingress_host("logs"), "http": {"paths": [
                         {"path": "/select", "pathType": "Prefix", "backend": backend},
                         {"path": "/", "pathType": "Exact", "backend": backend}]}}]}}


def logs_yaml(lab: Lab, cert_pem: bytes, key_pem: bytes) -> str:
    docs = [*_store(lab, cert_pem, key_pem), *_agent(lab)]
    if lab.has_addon("ingress"):
        docs.append(ingress(lab))
    return yaml.safe_dump_all(docs, sort_keys=False)


def audit_agent_service(lab: Lab, master: Machine) -> str:
    """vlagent's file collector on a master: each line of the apiserver's audit log (one JSON
    event) becomes an entry whose fields are the event's (objectRef.name, verb, user.username,
    ...), with its stageTimestamp as the time. Listens on localhost only."""
    extra = json.dumps({"log_source": AUDIT_SOURCE, "machine": master.name}, separators=(",", ":"))
    args = [f"-fileCollector.glob={AUDIT_LOG}",
            f"-fileCollector.checkpointsPath={AUDIT_AGENT_DIR}/audit-checkpoints.json",
            "-fileCollector.timeField=stageTimestamp", "-fileCollector.msgField=requestURI",
            f"-fileCollector.extraFields={extra}", "-fileCollector.streamFields=log_source,machine",
            f"-tmpDataPath={AUDIT_AGENT_DIR}", f"-httpListenAddr=127.0.0.1:{AGENT_PORT}",
            f"-remoteWrite.url={https_url(lab)}/insert/native",
            f"-remoteWrite.tlsCAFile={SSL_DIR}/ca.pem"]
    exec_start = " \\\n  ".join([f"{BIN_DIR}/vlagent", *(shlex.quote(a) for a in args)])
    return f"""\
[Unit]
Description=vlagent: the kube-apiserver audit log to VictoriaLogs
After=network-online.target
Wants=network-online.target

[Service]
ExecStartPre=/bin/mkdir -p {AUDIT_AGENT_DIR}
ExecStart={exec_start}
Restart=always
RestartSec=5
MemoryMax=256M

[Install]
WantedBy=multi-user.target
"""
