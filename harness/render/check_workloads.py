"""What the add-on checks run in the cluster, all in one namespace so one delete removes it:

- `toolbox`: a DaemonSet of the toolbox image (dig, host, getent, busybox), one pod per node,
  from which DNS is asked, plus a headless Service that selects those same pods;
- `cpu-burner`: a Deployment whose every HTTP request burns CPU (a busybox CGI), with a
  HorizontalPodAutoscaler, and `load` (a Deployment of wget loops) that the HPA check scales
  between 0 and 1 to make load from inside the lab only.
"""

from __future__ import annotations

import yaml

from harness.lab import Lab

NAMESPACE = "lab-checks"
TOOLBOX = "toolbox"
HEADLESS = "toolbox-headless"
BURNER = "cpu-burner"
LOAD = "load"
# The HPA's target and range: one replica at rest, at least two under the load below.
HPA_TARGET_CPU_PERCENT = 50
HPA_MAX = 4
BURNER_CPU_REQUEST = "100m"
# Each request counts to this in sh: about 0.1-0.3 s of one core on these hosts.
BURN_LOOPS = 20000

BURN_CGI = f"""#!/bin/sh
echo "Content-Type: text/plain"
echo
i=0
while [ $i -lt {BURN_LOOPS} ]; do i=$((i + 1)); done
echo "burned $i on $(hostname)"
"""


def _pod_spec(lab: Lab, name: str, command: list[str], **extra) -> dict:
    container = {"name": name, "image": lab.versions.toolbox.image_ref, "imagePullPolicy": "Never",
                 "command": command,
                 "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    container.update(extra)
    return {"terminationGracePeriodSeconds": 1, "containers": [container],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534}}


def toolbox_yaml(lab: Lab) -> str:
    labels = {"app": TOOLBOX}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": TOOLBOX, "namespace": NAMESPACE},
                 "spec": {"selector": {"matchLabels": labels},
                          "template": {"metadata": {"labels": labels},
                                       "spec": _pod_spec(lab, TOOLBOX, ["sleep", "2147483647"])}}}
    headless = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": HEADLESS, "namespace": NAMESPACE},
                "spec": {"clusterIP": "None", "selector": labels,
                         "ports": [{"name": "none", "port": 9, "protocol": "TCP"}]}}
    return yaml.safe_dump_all([namespace, daemonset, headless], sort_keys=False)


def autoscaling_yaml(lab: Lab, load_replicas: int) -> str:
    burner_labels, load_labels = {"app": BURNER}, {"app": LOAD}
    cgi = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": BURNER, "namespace": NAMESPACE},
           "data": {"burn": BURN_CGI}}
    burner_spec = _pod_spec(lab, BURNER, ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                            ports=[{"containerPort": 8080}],
                            resources={"requests": {"cpu": BURNER_CPU_REQUEST}, "limits": {"cpu": "500m"}},
                            volumeMounts=[{"name": "cgi", "mountPath": "/www/cgi-bin"}],
                            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 2})
    burner_spec["volumes"] = [{"name": "cgi", "configMap": {"name": BURNER, "defaultMode": 0o555}}]
    burner = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": BURNER, "namespace": NAMESPACE},
              "spec": {"selector": {"matchLabels": burner_labels},
                       "template": {"metadata": {"labels": burner_labels}, "spec": burner_spec}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": BURNER, "namespace": NAMESPACE},
               "spec": {"selector": burner_labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": BURNER, "namespace": NAMESPACE},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": BURNER},
                    "minReplicas": 1, "maxReplicas": HPA_MAX,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": HPA_TARGET_CPU_PERCENT}}}]}}
    # Four loops of requests, each answered by a CGI that spins: far above 50% of 100m. The name
    # is resolved through the cluster DNS (getent); busybox's nc speaks the HTTP (the static
    # busybox's wget cannot: its glibc NSS lookups crash in a static binary).
    request = "GET /cgi-bin/burn HTTP/1.0\\r\\n\\r\\n"
    loop = (f"while :; do ip=$(getent hosts {BURNER} | cut -d' ' -f1); "
            f"printf '{request}' | nc -w 5 \"$ip\" 80 >/dev/null; done")
    load = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": LOAD, "namespace": NAMESPACE},
            "spec": {"replicas": load_replicas, "selector": {"matchLabels": load_labels},
                     "template": {"metadata": {"labels": load_labels},
                                  "spec": _pod_spec(lab, LOAD, ["sh", "-c", " & ".join([loop] * 4) + " & wait"])}}}
    return yaml.safe_dump_all([cgi, burner, service, hpa, load], sort_keys=False)
