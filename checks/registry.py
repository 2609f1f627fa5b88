"""The lab registry, end to end: an image built in the lab and pushed with crane, pulled by digest
by a pod on every node (imagePullPolicy Always, the pull secret, containerd verifying TLS with
the lab CA); an anonymous push refused; the registry pod moved to another node, serving the
same digest from the shared storage.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid

from checks.workloads import apply, await_state
from harness.render import registry as reg
from harness.steps.actions import NotYet, kubectl, run
from harness.steps.context import StepContext
from harness.steps.registry import CRANE, CRANE_ENV

STEP = "check:registry"
PULL_APP = "registry-pull-check"
BASE_REPO = "lab/toolbox"          # the toolbox image, the check images' base (it has a shell)
CHECK_REPO = "lab/check"
WORK = "/var/lib/k8s-ha-lab/registry-check"
MANIFEST_TIMEOUT_S = 3


def _sh(ctx: StepContext, machine, command: str, check: bool = True, timeout: float = 300.0):
    return run(ctx, STEP, machine, command, check=check, timeout=timeout)


def witness(ctx: StepContext, avoid: str | None = None):
    """The node crane runs on: the first node that is not `avoid` (a node being broken)."""
    return next(m for m in ctx.lab.nodes if m.node_name != avoid)


def ensure_base(ctx: StepContext, machine) -> str:
    """The toolbox image in the registry (pushed from the artifact cache's OCI layout once)."""
    from harness.steps.actions import push_file

    lab = ctx.lab
    ref = reg.image_name(lab, f"{BASE_REPO}:{lab.versions.toolbox.version}")
    if _sh(ctx, machine, f"{CRANE_ENV} {CRANE} digest {shlex.quote(ref)}", check=False).exit_status == 0:
        return ref
    archive = ctx.image_archive("toolbox")
    remote = f"{WORK}/toolbox.oci.tar"
    push_file(ctx, machine, archive, remote, mode=0o600)
    _sh(ctx, machine, f"rm -rf {WORK}/toolbox && mkdir -p {WORK}/toolbox && tar -xf {remote} -C {WORK}/toolbox "
                      f"&& {CRANE_ENV} {CRANE} push {WORK}/toolbox {shlex.quote(ref)} && rm -rf {remote} {WORK}/toolbox")
    return ref


def build_and_push(ctx: StepContext, machine, payload_bytes: int = 0) -> dict:
    """A new image built on `machine`: the toolbox base plus one layer with a fresh nonce (and
    `payload_bytes` of random data), pushed with crane. Returns its reference by digest, the
    nonce and the push's seconds (the append, measured on the machine)."""
    base = ensure_base(ctx, machine)
    nonce = uuid.uuid4().hex
    tag = reg.image_name(ctx.lab, f"{CHECK_REPO}:{nonce[:12]}")
    build = f"{WORK}/{nonce}"
    payload = f"head -c {payload_bytes} /dev/urandom > {build}/root/check/payload && " if payload_bytes else ""
    out = _sh(ctx, machine, f"mkdir -p {build}/root/check && echo {nonce} > {build}/root/check/nonce && {payload}"
                            f"tar -C {build}/root -cf {build}/layer.tar check && "
                            f"start=$(date +%s.%N) && {CRANE_ENV} {CRANE} append -b {shlex.quote(base)} -f {build}/layer.tar "
                            f"-t {shlex.quote(tag)} >/dev/null && end=$(date +%s.%N) && "
                            f"{CRANE_ENV} {CRANE} digest {shlex.quote(tag)} && echo \"$start $end\"; rc=$?; rm -rf {build}; exit $rc")
    digest, times = out.stdout.split()[-3], out.stdout.split()[-2:]
    assert digest.startswith("sha256:"), f"crane digest {tag} printed {out.stdout!r}"
    return {"ref": reg.image_name(ctx.lab, f"{CHECK_REPO}@{digest}"), "tag": tag, "nonce": nonce,
            "push_s": round(float(times[1]) - float(times[0]), 2)}


def pull_pods_yaml(ctx: StepContext, ref: str, nodes: list[str]) -> str:
    docs = []
    for node in nodes:
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{PULL_APP}-{node}", "namespace": reg.NAMESPACE, "labels": {"app": PULL_APP}},
            "spec": {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "automountServiceAccountToken": False,
                     "imagePullSecrets": [{"name": reg.PULL_SECRET}],
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
                     "containers": [{"name": "check", "image": ref, "imagePullPolicy": "Always",
                                     "command": ["sh", "-c", "cat /check/nonce; sleep 3600"],
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}})
    return "\n---\n".join(json.dumps(d) for d in docs)


def delete_pull_pods(ctx: StepContext, wait: bool = True) -> None:
    """The pull pods deleted; `wait` for them to be gone (before new ones of the same names)."""
    kubectl(ctx, STEP, f"-n {reg.NAMESPACE} delete pod -l app={PULL_APP} --ignore-not-found "
                       f"--wait={str(wait).lower()} --grace-period=1", timeout=120)


def parse_duration(text: str) -> float:
    """A Go duration as the kubelet prints it (1m2.5s, 1.234s, 523ms, 12.3µs) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([\d.]+)(ms|us|µs|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def pulled_in(events: dict, pod_uid: str) -> float | None:
    """The kubelet's own pull time for a pod (by uid: an earlier pod of the same name has its
    own events), from its Pulled event."""
    for item in events.get("items", []):
        if item.get("involvedObject", {}).get("uid") == pod_uid and item.get("reason") == "Pulled":
            match = re.search(r"Successfully pulled image \S+ in (\S+?)(?: |$)", item.get("message", ""))
            if match:
                return round(parse_duration(match.group(1)), 3)
    return None


def pull_on_every_node(ctx: StepContext, image: dict, timeout: float = 180.0,
                       nodes: list[str] | None = None) -> dict[str, dict]:
    """A pod per node runs the image by digest (Always: the kubelet asks the registry) and must
    print the image's nonce; node -> its imageID and the kubelet's pull time."""
    nodes = nodes or [m.node_name for m in ctx.lab.nodes]
    delete_pull_pods(ctx)
    apply(ctx, PULL_APP, pull_pods_yaml(ctx, image["ref"], nodes), STEP)
    digest = image["ref"].split("@", 1)[1]

    def all_running():
        pods = json.loads(kubectl(ctx, STEP, f"-n {reg.NAMESPACE} get pods -l app={PULL_APP} -o json").stdout)
        seen = {}
        for pod in pods["items"]:
            statuses = pod["status"].get("containerStatuses") or [{}]
            state = statuses[0].get("state", {})
            if "running" not in state:
                waiting = state.get("waiting", {})
                raise NotYet(f"{pod['metadata']['name']}: {waiting.get('reason', pod['status'].get('phase'))} "
                             f"{waiting.get('message', '')[:200]}")
            seen[pod["spec"]["nodeName"]] = (pod["metadata"]["name"], pod["metadata"]["uid"],
                                             statuses[0].get("imageID", ""))
        if sorted(seen) != sorted(nodes):
            raise NotYet(f"running on {sorted(seen)}, want {sorted(nodes)}")
        return seen
    seen = await_state(ctx, STEP, f"a pod on every node running {image['ref']}", all_running, timeout=timeout,
                       interval=2, command=f"kubectl -n {reg.NAMESPACE} get pods -l app={PULL_APP}")

    def every_pull_posted():
        # The kubelet posts a pod's status and its Pulled event separately; on a busy host the
        # pod may show Running seconds before the event is there, so wait for every pod's event.
        events = json.loads(kubectl(ctx, STEP, f"-n {reg.NAMESPACE} get events -o json").stdout)
        missing = [pod for pod, uid, _ in seen.values() if pulled_in(events, uid) is None]
        if missing:
            raise NotYet(f"no kubelet Pulled event yet for {', '.join(sorted(missing))}")
        return events
    events = await_state(ctx, STEP, "a kubelet Pulled event for every pull pod", every_pull_posted,
                         timeout=60, interval=2, command=f"kubectl -n {reg.NAMESPACE} get events")
    result = {}
    for node, (pod, uid, image_id) in seen.items():
        logs = ""
        for _ in range(10):
            logs = kubectl(ctx, STEP, f"-n {reg.NAMESPACE} logs {pod}", check=False).stdout.strip()
            if logs:
                break
            time.sleep(1)
        assert logs == image["nonce"], f"{pod} on {node} printed {logs!r}, not the image's nonce {image['nonce']}"
        assert image_id.endswith(digest), f"{pod} on {node} runs {image_id!r}, not {digest}"
        result[node] = {"image_id": image_id, "pulled_in_s": pulled_in(events, uid)}
    assert all(r["pulled_in_s"] is not None for r in result.values()), \
        f"no kubelet Pulled event for some pods (imagePullPolicy Always must pull): {result}"
    delete_pull_pods(ctx, wait=False)   # the next run's first delete waits for them
    return result


def tls_only_with_the_lab_ca(ctx: StepContext, machine) -> dict:
    """The registry's certificate verifies against the lab CA and against nothing else: curl with
    the machine's own trust store fails verification (exit 60), with the lab CA it reaches the
    registry (401: it asks for credentials)."""
    url = shlex.quote(f"https://{ctx.lab.registry_host}/v2/")
    system = _sh(ctx, machine, f"curl -s -o /dev/null -w '%{{http_code}}' {url}; echo \" rc=$?\"", check=False).stdout
    lab_ca = _sh(ctx, machine, f"curl -s -o /dev/null -w '%{{http_code}}' --cacert /etc/kubernetes/ssl/ca.pem {url}",
                 check=False).stdout.strip()
    assert system.strip().endswith("rc=60"), f"curl without the lab CA did not fail verification: {system!r}"
    assert lab_ca == "401", f"curl with the lab CA got HTTP {lab_ca!r}, want 401"
    return {"system_trust": system.strip(), "lab_ca": lab_ca}


def push_and_pull_by_digest_on_every_node(ctx: StepContext) -> dict:
    __tracebackhide__ = True
    machine = witness(ctx)
    tls = tls_only_with_the_lab_ca(ctx, machine)
    image = build_and_push(ctx, machine)
    return {"ref": image["ref"], "push_s": image["push_s"], "tls": tls, "nodes": pull_on_every_node(ctx, image)}


def anonymous_push_is_refused(ctx: StepContext) -> dict:
    """Without credentials the registry refuses the upload (crane and a bare POST both see 401),
    while the same push with the lab's credentials succeeds (the positive control)."""
    __tracebackhide__ = True
    machine = witness(ctx)
    host = ctx.lab.registry_host
    nonce = uuid.uuid4().hex[:12]
    work = f"{WORK}/anon-{nonce}"
    tag = reg.image_name(ctx.lab, f"lab/anonymous:{nonce}")
    layer = f"mkdir -p {work}/root/a {work}/empty && echo {nonce} > {work}/root/a/x && tar -C {work}/root -cf {work}/l.tar a"
    anonymous = _sh(ctx, machine, f"{layer} && DOCKER_CONFIG={work}/empty SSL_CERT_FILE=/etc/kubernetes/ssl/ca.pem "
                                  f"{CRANE} append -f {work}/l.tar -t {shlex.quote(tag)} 2>&1; echo rc=$?", check=False).stdout
    post = _sh(ctx, machine, f"curl -s -o /dev/null -w '%{{http_code}}' -X POST --cacert /etc/kubernetes/ssl/ca.pem "
                             f"{shlex.quote(f'https://{host}/v2/lab/anonymous/blobs/uploads/')}", check=False).stdout.strip()
    absent = _sh(ctx, machine, f"{CRANE_ENV} {CRANE} digest {shlex.quote(tag)} 2>&1; echo rc=$?", check=False).stdout
    allowed = _sh(ctx, machine, f"{CRANE_ENV} {CRANE} append -f {work}/l.tar -t {shlex.quote(tag)} >/dev/null 2>&1; echo rc=$?; "
                                f"rm -rf {work}", check=False).stdout.strip()
    assert anonymous.strip().endswith("rc=1") and re.search(r"401 Unauthorized|UNAUTHORIZED", anonymous), \
        f"an anonymous crane push was not refused with 401: {anonymous[-400:]}"
    assert post == "401", f"an anonymous upload POST got HTTP {post!r}, want 401"
    assert not absent.strip().endswith("rc=0"), f"the refused push left {tag} in the registry: {absent[-300:]}"
    assert allowed.endswith("rc=0"), f"the same push with the lab's credentials failed ({allowed}): the refusal proves nothing"
    return {"crane": anonymous.strip().splitlines()[-2][-200:], "post_status": post}


# --- the pod moved ---------------------------------------------------------------------------------
def registry_pod(ctx: StepContext, step: str = STEP) -> dict | None:
    """The registry's Running and Ready pod (not terminating), or None."""
    pods = json.loads(kubectl(ctx, step, f"-n {reg.NAMESPACE} get pods -l app={reg.APP} -o json").stdout)
    for pod in pods["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if ready and not pod["metadata"].get("deletionTimestamp"):
            return pod
    return None


def manifest_served(ctx: StepContext, machine, ref: str, step: str = STEP) -> bool:
    """The registry answers for the image by digest (through the name, TLS and credentials)."""
    # `timeout`: a request to a pod on a powered-off node would hang for a TCP connect timeout.
    return run(ctx, step, machine, f"{CRANE_ENV} timeout {MANIFEST_TIMEOUT_S} {CRANE} manifest "
                                   f"{shlex.quote(ref)} >/dev/null", check=False, timeout=30).exit_status == 0


def pod_moves_and_serves_the_same_digest(ctx: StepContext, timeout: float = 180.0) -> dict:
    """Push, pull everywhere; then cordon the registry pod's node and delete the pod: the new pod
    starts on another node, and every node pulls the same digest again from the shared storage."""
    __tracebackhide__ = True
    before = registry_pod(ctx)
    assert before, "no Ready registry pod to move"
    old_node, old_name = before["spec"]["nodeName"], before["metadata"]["name"]
    crane_on = witness(ctx, avoid=old_node)
    image = build_and_push(ctx, crane_on)
    first = pull_on_every_node(ctx, image)
    kubectl(ctx, STEP, f"cordon {old_node}")
    try:
        started = time.monotonic()
        kubectl(ctx, STEP, f"-n {reg.NAMESPACE} delete pod {old_name} --wait=false")

        def moved():
            pod = registry_pod(ctx)
            if not pod or pod["metadata"]["name"] == old_name:
                raise NotYet("no new Ready registry pod yet")
            if not manifest_served(ctx, crane_on, image["ref"]):
                raise NotYet(f"{pod['metadata']['name']} is Ready but {image['ref']} is not served yet")
            return pod
        after = await_state(ctx, STEP, "the registry back on another node, serving the digest", moved,
                            timeout=timeout, interval=0.5, command=f"kubectl -n {reg.NAMESPACE} get pods")
        back_s = round(time.monotonic() - started, 2)
        assert after["spec"]["nodeName"] != old_node, f"the new pod runs on the cordoned {old_node}"
        again = pull_on_every_node(ctx, image)
    finally:
        kubectl(ctx, STEP, f"uncordon {old_node}")
    return {"from": old_node, "to": after["spec"]["nodeName"], "back_after_s": back_s, "ref": image["ref"],
            "first_pull": first, "pull_after_move": again}
