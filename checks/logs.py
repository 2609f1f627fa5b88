"""The logs add-on as a user sees it: a line a pod prints, and the audit entry of a request,
found through VictoriaLogs' HTTP query API (LogsQL over HTTPS, from a master)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import time
import uuid

import yaml

from checks.workloads import MANIFEST_DIR, apply, await_state
from harness.render.check_workloads import NAMESPACE, _pod_spec
from harness.render.logs import AUDIT_SOURCE, CONTAINER_SOURCE
from harness.steps.actions import NotYet, kubectl
from harness.steps.context import StepContext
from harness.steps.logs import query

STEP = "check:logs"
PROBE = "logs-probe"
# The bound: each line found within this long after the pod printed it.
FOUND_WITHIN_S = 15.0


def _time(entry: dict) -> float:
    """An entry's _time (RFC 3339, nanoseconds) as a Unix timestamp."""
    stamp = entry["_time"].rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    seconds = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc).timestamp()
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def probe_pods_yaml(ctx: StepContext, token: str) -> str:
    """One pod per node, pinned by nodeName, that prints `<token> <node>` once and then waits."""
    docs = []
    for node in ctx.lab.nodes:
        spec = _pod_spec(ctx.lab, PROBE, ["sh", "-c", f'echo "{token} {node.node_name}"; exec sleep 600'])
        spec.update(nodeName=node.node_name, restartPolicy="Never",
                    tolerations=[{"operator": "Exists"}])
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{PROBE}-{node.node_name}", "namespace": NAMESPACE,
                                  "labels": {"app": PROBE}},
                     "spec": spec})
    return yaml.safe_dump_all(docs, sort_keys=False)


def _namespace(ctx: StepContext) -> None:
    apply(ctx, "logs-namespace", yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": NAMESPACE}}), STEP)


def _delete_probes(ctx: StepContext, wait: bool = True) -> None:
    """The probe pods deleted; `wait` for them to be gone (before new ones of the same names)."""
    kubectl(ctx, STEP, f"-n {NAMESPACE} delete pod -l app={PROBE} --ignore-not-found --wait={str(wait).lower()}",
            check=False, timeout=120)


def unique_line_from_every_node(ctx: StepContext, within: float = FOUND_WITHIN_S,
                                start_timeout: float = 120.0) -> dict[str, float]:
    """A pod on every node prints a line no one else ever printed; each line is found through
    the query API with its pod, namespace and node, within `within` seconds of its _time (when
    the container wrote it). Returns node -> seconds from printed to first found."""
    __tracebackhide__ = True
    lab = ctx.lab
    token = f"k8s-ha-lab-logs-{uuid.uuid4().hex[:16]}"
    _namespace(ctx)
    _delete_probes(ctx)
    path = f"{MANIFEST_DIR}/{PROBE}.yaml"
    ctx.on(lab.masters[0]).upload(path, probe_pods_yaml(ctx, token).encode(), 0o644)
    kubectl(ctx, STEP, f"create -f {shlex.quote(path)}")
    want = {node.node_name for node in lab.nodes}
    found: dict[str, tuple[float, dict]] = {}
    logsql = (f'_time:15m log_source:={CONTAINER_SOURCE} "{token}" | fields _time, _msg, '
              "kubernetes.pod_name, kubernetes.pod_namespace, kubernetes.pod_node_name")

    def every_line():
        entries = query(ctx, logsql, step=STEP)
        seen = time.time()
        for entry in entries:
            node = entry.get("kubernetes.pod_node_name", "")
            if node in want and node not in found:
                found[node] = (seen, entry)
        if set(found) != want:
            raise NotYet(f"lines found from {sorted(found)}, want {sorted(want)}")
    try:
        await_state(ctx, STEP, f"the probe line of every node in VictoriaLogs ({token})", every_line,
                    timeout=start_timeout, interval=0.5, command=f"LogsQL {logsql}")
    finally:
        _delete_probes(ctx, wait=False)   # the next run's first delete waits for them
    lags = {}
    for node, (seen, entry) in sorted(found.items()):
        assert entry["_msg"] == f"{token} {node}", f"{node}: the entry's _msg is {entry['_msg']!r}"
        assert entry["kubernetes.pod_name"] == f"{PROBE}-{node}", f"{node}: {entry}"
        assert entry["kubernetes.pod_namespace"] == NAMESPACE, f"{node}: {entry}"
        lags[node] = round(seen - _time(entry), 2)
    late = {node: lag for node, lag in lags.items() if lag > within}
    assert not late, f"lines found later than {within:.0f}s after they were printed: {late}"
    return lags


def audit_entry_of_a_request(ctx: StepContext, within: float = FOUND_WITHIN_S) -> dict:
    """Create a ConfigMap with a name no one used before; its `create` is found in the audit
    log store by objectRef.name, with the verb, the user and the status the API returned.
    Returns the entry and how long after the request it was found."""
    __tracebackhide__ = True
    name = f"logs-audit-{uuid.uuid4().hex[:16]}"
    _namespace(ctx)
    asked = time.time()
    created = json.loads(kubectl(ctx, STEP, f"-n {NAMESPACE} create configmap {name} "
                                            f"--from-literal=probe={name} -o json").stdout)
    logsql = (f"_time:15m log_source:={AUDIT_SOURCE} objectRef.name:={name} "
              "objectRef.resource:=configmaps verb:=create")

    def entry():
        entries = query(ctx, logsql, step=STEP)
        if not entries:
            raise NotYet(f"no audit entry with objectRef.name={name}")
        return entries[0], time.time()
    try:
        found, seen = await_state(ctx, STEP, f"the audit entry of creating configmap {name}", entry,
                                  timeout=within + 30, interval=0.5, command=f"LogsQL {logsql}")
    finally:
        kubectl(ctx, STEP, f"-n {NAMESPACE} delete configmap {name} --ignore-not-found", check=False)
    assert found.get("objectRef.namespace") == NAMESPACE, found
    assert found.get("user.username") == "admin", f"audit user {found.get('user.username')!r}, want admin"
    assert found.get("responseStatus.code") == "201", f"audit status {found.get('responseStatus.code')!r}"
    assert found.get("stage") == "ResponseComplete", found
    assert found.get("objectRef.uid", created["metadata"]["uid"]) == created["metadata"]["uid"], found
    assert found.get("machine") in {m.name for m in ctx.lab.masters}, found
    assert seen - asked <= within, f"the audit entry was found {seen - asked:.1f}s after the request"
    return {"entry": found, "found_after_s": round(seen - asked, 2)}


# --- the web UI through the ingress, in a real browser ------------------------------------------
# What the UI's script puts into the page: the app's frame and its title (the served HTML has
# an empty <div id="root"> and the title "UI for VictoriaLogs").
UI_RENDERED = ('<div id="root"><section class="vm-container">', "vm-header-nav-item",
               "<title>Query - UI for VictoriaLogs</title>")


def served_spki_pin(ctx: StepContext, host: str, address: str, port: int = 443) -> str:
    """Connect to address:port asking for `host` (SNI), verify the certificate chain and name
    against the lab's CA, and return the leaf's SPKI sha256 (base64): what Chromium is then told
    to accept, since it cannot be given the lab CA without NSS tools."""
    import base64
    import hashlib
    import socket
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    tls = ssl.create_default_context(cafile=str(ctx.pki_dir / "ca.pem"))
    try:
        with socket.create_connection((address, port), timeout=10) as raw, \
                tls.wrap_socket(raw, server_hostname=host) as conn:
            der = conn.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise AssertionError(f"https://{host} at {address}:{port}: not a certificate from the lab CA "
                             f"for that name: {exc}") from None
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def ui_renders_in_chromium(ctx: StepContext, out_dir, browser: str = "chromium") -> dict:
    """Headless Chromium on the host opens https://logs.<ingress domain>/select/vmui/ through the
    ingress on a node (the host cannot resolve lab names: --host-resolver-rules maps it to the
    node's IP from the lab). The DOM after the scripts ran holds the app; the screenshot
    (written to out_dir) is not blank. The certificate is first verified against the lab CA."""
    __tracebackhide__ = True
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    import matplotlib.image

    lab = ctx.lab
    host, node = lab.ingress_host("logs"), lab.nodes[0]
    pin = served_spki_pin(ctx, host, str(node.ip))
    url = f"https://{host}/select/vmui/"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / "logs-ui.png"

    profile = tempfile.mkdtemp(prefix="k8s-ha-lab-chromium-")   # a fresh profile, not kept

    def chromium(*args: str) -> subprocess.CompletedProcess:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--hide-scrollbars", f"--user-data-dir={profile}",
                   f"--host-resolver-rules=MAP {host} {node.ip}",
                   f"--ignore-certificate-errors-spki-list={pin}", "--window-size=1280,900",
                   "--virtual-time-budget=15000", *args, url]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr[-1500:]}"
        return proc
    try:
        dom = chromium("--dump-dom").stdout
        chromium(f"--screenshot={shot}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    (out_dir / "logs-ui.html").write_text(dom)
    missing = [marker for marker in UI_RENDERED if marker not in dom]
    assert not missing, f"{url}: the page after its scripts ran lacks {missing}: {dom[:600]!r}"
    # The UI ran its default query (`*`, the last 5 minutes) through the ingress and listed logs.
    returned = re.search(r"Total logs returned: <b>(\d+)<", dom)
    assert returned and int(returned[1]) > 0, f"{url}: the UI's query listed no logs ({returned and returned[0]})"
    assert shot.exists() and shot.stat().st_size > 10_000, f"{shot}: no screenshot or a tiny one"
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 1200, f"{shot}: {pixels.shape}"
    assert pixels[..., :3].std() > 0.05, f"{shot}: a blank page (pixel std {pixels[..., :3].std():.3f})"
    return {"url": url, "node": node.name, "spki_sha256": pin, "screenshot": str(shot),
            "dom_bytes": len(dom), "logs_listed": int(returned[1])}
