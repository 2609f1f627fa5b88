"""The ingress add-on (the guide's traefik): traefik on ports 80 and 443 of every node.

A DaemonSet on the nodes with hostNetwork. Each pod binds its own node's address (status.hostIP),
never 0.0.0.0: in a lab where one machine is both lb and node, haproxy holds the VIP's port 443
there. It runs as nobody with a read-only root and only NET_BIND_SERVICE (the binary carries it as
a file capability, see harness.artifacts.images.filecaps), reads Ingresses of class INGRESS_CLASS
through its own ServiceAccount, and serves every app over HTTP and over HTTPS with one default
certificate for *.<ingress domain> signed by the lab CA. Other add-ons publish their apps with an
Ingress of class INGRESS_CLASS; `app_ingress` writes one.

Every name, address and port comes from the lab.
"""

from __future__ import annotations

import base64
import hashlib

import yaml

from harness.lab import Lab
from harness.render import K8S_DIR
from harness.render.addons import object_meta

# The IngressClass traefik answers for; every Ingress in the lab names it.
INGRESS_CLASS = "traefik"
# The controller name traefik's Kubernetes Ingress provider looks for in IngressClasses.
CONTROLLER = "traefik.io/ingress-controller"
NAMESPACE = "kube-system"
# The manifest on the first master, and the certificate's stem in the lab's PKI folder.
MANIFEST = f"{K8S_DIR}/addons/ingress.yaml"
INGRESS_CERT = "ingress"
APP = "traefik"
TLS_SECRET = "traefik-default-tls"
DYNAMIC_CONFIG = "traefik-dynamic"
# traefik's own entry point for /ping (the probes), on the node's address like the others.
PING_PORT = 8082
# The probe: how soon a traefik that stopped answering is marked unready.
READY_PERIOD_S, READY_FAILURES = 2, 2
NOBODY = 65534
# The entry points: plain HTTP and HTTPS (TLS on every router of that entry point).
WEB, WEBSECURE, PING = "web", "websecure", "traefik"
# nginx-ds, published by the ingress add-on itself (harness.render.manifests).
NGINX_APP, NGINX_SERVICE, NGINX_NAMESPACE, NGINX_PORT = "nginx", "nginx-ds", "default", 80

_CONF_DIR = "/etc/traefik"


def wildcard(lab: Lab) -> str:
    return f"*.{lab.ingress.domain.rstrip('.')}"


def ingress_sans(lab: Lab) -> tuple[str, ...]:
    """The default certificate's names: every <app>.<ingress domain>, one label deep."""
    return (wildcard(lab),)


def dynamic_yaml() -> str:
    """traefik's file provider: the default certificate for every TLS router, and TLS 1.2 at
    least. Unknown hosts get this certificate too, then traefik's 404."""
    tls_dir = f"{_CONF_DIR}/tls"
    return yaml.safe_dump({"tls": {
        "stores": {"default": {"defaultCertificate": {"certFile": f"{tls_dir}/tls.crt",
                                                      "keyFile": f"{tls_dir}/tls.key"}}},
        "options": {"default": {"minVersion": "VersionTLS12", "sniStrict": False}},
    }}, sort_keys=False)


def traefik_args(lab: Lab) -> list[str]:
    """traefik's static configuration as flags. $(HOST_IP) is the node's address, which the
    kubelet substitutes from the pod's environment."""
    ing = lab.ingress
    return [
        f"--entryPoints.{WEB}.address=$(HOST_IP):{ing.http_port}",
        f"--entryPoints.{WEB}.asDefault=true",
        f"--entryPoints.{WEBSECURE}.address=$(HOST_IP):{ing.https_port}",
        f"--entryPoints.{WEBSECURE}.asDefault=true",
        f"--entryPoints.{WEBSECURE}.http.tls=true",
        f"--entryPoints.{PING}.address=$(HOST_IP):{PING_PORT}",
        "--ping=true",
        f"--ping.entryPoint={PING}",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressClass={INGRESS_CLASS}",
        f"--providers.file.filename={_CONF_DIR}/dynamic/dynamic.yaml",
        "--providers.file.watch=false",
        # No internet in the lab, and nothing to report to anyone.
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
        "--log.noColor=true",   # plain text for kubectl logs and the log collector
    ]


def _rbac() -> list[dict]:
    """Read-only, and only what the Kubernetes Ingress provider's informers watch: Ingresses and
    IngressClasses, the Services and EndpointSlices behind them, Secrets (an Ingress's own
    spec.tls), Nodes (its NodePort load balancing). No write verb at all: it does not publish an
    Ingress status."""
    read = ["get", "list", "watch"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": object_meta(APP, None),
            "rules": [{"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": list(read)},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": list(read)},
                      {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
                       "verbs": list(read)}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": object_meta(APP, None),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": APP},
               "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": NAMESPACE}]}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta(APP)}
    return [account, role, binding]


def ingress_class() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": INGRESS_CLASS},
            "spec": {"controller": CONTROLLER}}


def app_ingress(lab: Lab, app: str, namespace: str, service: str, port: int | str,
                path: str = "/") -> dict:
    """An Ingress publishing a Service at <app>.<ingress domain>, over HTTP and HTTPS (the
    default certificate covers the name; no Secret of its own)."""
    number = {"number": port} if isinstance(port, int) else {"name": port}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": object_meta(app, namespace),
            "spec": {"ingressClassName": INGRESS_CLASS,
                     "rules": [{"host": lab.ingress_host(app), "http": {"paths": [
                         {"path": path, "pathType": "Prefix",
                          "backend": {"service": {"name": service, "port": number}}}]}}]}}


def daemonset(lab: Lab, tls_sha: str, config_sha: str) -> dict:
    labels = {"app": APP}
    ing = lab.ingress
    container = {
        "name": APP,
        "image": lab.versions.traefik.image_ref,
        "imagePullPolicy": "Never",
        "args": traefik_args(lab),
        "env": [{"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
        "ports": [{"name": WEB, "containerPort": ing.http_port, "protocol": "TCP"},
                  {"name": WEBSECURE, "containerPort": ing.https_port, "protocol": "TCP"},
                  {"name": "ping", "containerPort": PING_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": PING_PORT},
                           "periodSeconds": READY_PERIOD_S, "failureThreshold": READY_FAILURES,
                           "timeoutSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/ping", "port": PING_PORT},
                          "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        "volumeMounts": [{"name": "tls", "mountPath": f"{_CONF_DIR}/tls", "readOnly": True},
                         {"name": "dynamic", "mountPath": f"{_CONF_DIR}/dynamic", "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": object_meta(APP, **labels),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            # One node at a time: clients fail over to the others meanwhile.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            # traefik reads its certificate and file provider only at start: a change rolls it.
            "template": {"metadata": {"labels": labels, "annotations": {
                "k8s-ha-lab/tls-sha256": tls_sha, "k8s-ha-lab/dynamic-sha256": config_sha}}, "spec": {
                "serviceAccountName": APP,
                "hostNetwork": True,
                "dnsPolicy": "Default",   # it resolves nothing; the node's resolver if it did
                "priorityClassName": "system-node-critical",
                "terminationGracePeriodSeconds": 30,
                # fsGroup: the Secret's files are group-readable by nobody, by no one else.
                "securityContext": {"runAsNonRoot": True, "runAsUser": NOBODY, "runAsGroup": NOBODY,
                                    "fsGroup": NOBODY, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
                "volumes": [{"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}},
                            {"name": "dynamic", "configMap": {"name": DYNAMIC_CONFIG}}],
            }},
        },
    }


def ingress_yaml(lab: Lab, cert_pem: bytes, key_pem: bytes) -> str:
    """Everything the step applies: RBAC, the IngressClass, the certificate's Secret, the file
    provider's ConfigMap, the DaemonSet, and the Ingress of nginx-ds."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    dynamic = dynamic_yaml()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": object_meta(TLS_SECRET, app=APP),
              "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object_meta(DYNAMIC_CONFIG, app=APP),
              "data": {"dynamic.yaml": dynamic}}
    docs = [*_rbac(), ingress_class(), secret, config,
            daemonset(lab, hashlib.sha256(cert_pem + key_pem).hexdigest(),
                      hashlib.sha256(dynamic.encode()).hexdigest()),
            app_ingress(lab, NGINX_APP, NGINX_NAMESPACE, NGINX_SERVICE, NGINX_PORT)]
    return yaml.safe_dump_all(docs, sort_keys=False)
