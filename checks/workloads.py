"""The pods the add-on checks ask from: applied on demand (idempotent), then awaited."""

from __future__ import annotations

import json
import shlex

from harness.render import K8S_DIR
from harness.render.check_workloads import NAMESPACE, TOOLBOX, toolbox_yaml
from harness.steps.actions import NotYet, kubectl, kubectl_apply, wait_until
from harness.steps.context import StepContext

STEP = "check:workloads"
MANIFEST_DIR = f"{K8S_DIR}/addons/checks"


def apply(ctx: StepContext, name: str, content: str, step: str = STEP) -> bool:
    """Put a manifest on the first master and apply it; True when anything changed."""
    path = f"{MANIFEST_DIR}/{name}.yaml"
    ctx.on(ctx.lab.masters[0]).upload(path, content.encode(), 0o644)
    return kubectl_apply(ctx, step, path)


def await_state(ctx: StepContext, step: str, what: str, probe, *, timeout: float, interval: float = 3.0,
                command: str = ""):
    """wait_until for a check: a deadline missed is a failed assertion naming what was awaited
    and the last thing seen, not a step error."""
    from harness.errors import StepError

    __tracebackhide__ = True
    try:
        return wait_until(ctx, step, ctx.lab.masters[0], what, probe, timeout=timeout, interval=interval,
                          command=command)
    except StepError as exc:
        raise AssertionError(str(exc)) from None


def ready_pods(ctx: StepContext, label: str, step: str = STEP) -> dict[str, dict]:
    """node name -> the Running, Ready pod with app=<label> there (one per node at most)."""
    listing = json.loads(kubectl(ctx, step, f"-n {NAMESPACE} get pods -l app={label} -o json").stdout)
    pods = {}
    for pod in listing["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod["status"].get("conditions", []))
        if pod["status"].get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp"):
            pods[pod["spec"]["nodeName"]] = pod
    return pods


def toolbox_pods(ctx: StepContext) -> dict[str, dict]:
    """One ready toolbox pod on every node, started if it is not there yet."""
    apply(ctx, TOOLBOX, toolbox_yaml(ctx.lab))
    want = {m.node_name for m in ctx.lab.nodes}

    def everywhere():
        pods = ready_pods(ctx, TOOLBOX)
        if set(pods) != want:
            raise NotYet(f"toolbox ready on {sorted(pods)}, want {sorted(want)}")
        return pods
    return await_state(ctx, STEP, "a toolbox pod on every node", everywhere, timeout=120, interval=2,
                       command=f"kubectl -n {NAMESPACE} get pods -l app={TOOLBOX}")


def exec_in(ctx: StepContext, pod: dict, script: str, step: str = STEP, timeout: float = 60.0):
    """Run a shell script in a pod through the API (kubectl exec: apiserver -> kubelet over TLS)."""
    name = pod["metadata"]["name"]
    return kubectl(ctx, step, f"-n {pod['metadata']['namespace']} exec {shlex.quote(name)} -- "
                              f"sh -c {shlex.quote(script)}", check=False, timeout=timeout)


def loop_while_breaking(ctx: StepContext, loop, *, how: str, namespace: str, pod: str, machine,
                        process: str, seconds: float, break_after: float, step: str = STEP):
    """Run `loop(side)` (a client's request loop; `side` is a context with connections of its
    own, so the break can go in parallel) and, `break_after` seconds in, break `pod`: `delete`
    deletes it through the API (graceful), `sigkill` kills its `process` on `machine`, as a crash
    would. Returns the loop's output (None if it never returned) and when the break happened."""
    import threading
    import time

    if how not in ("delete", "sigkill"):
        raise ValueError(f"unknown way to break {pod}: {how!r}")
    result: dict = {}
    side = StepContext(ctx.lab, ctx.state_dir, ctx.secrets, ctx.files)
    thread = threading.Thread(target=lambda: result.update(out=loop(side)))
    thread.start()
    try:
        time.sleep(break_after)
        broken_at = time.time()
        if how == "delete":
            kubectl(ctx, step, f"-n {namespace} delete pod {pod} --wait=false")
        else:
            ctx.on(machine).run(f"pkill -KILL -x {shlex.quote(process)}")
        thread.join(seconds + 90)
    finally:
        side.close()
    return result.get("out"), broken_at
