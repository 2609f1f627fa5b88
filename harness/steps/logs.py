"""The guide's log collection, today VictoriaLogs (harness.render.logs says what runs where).

On every node the image is imported; on every master vlagent's binary and its audit-log unit
are put in place (restarted only when one of them changed); the manifest is applied on a diff.
Done when the store answers on its HTTPS NodePort, every node runs a ready collector, and every
master's audit collector is active.
"""

from __future__ import annotations

import json
import shlex

from harness.lab import Machine
from harness.render import K8S_DIR, SSL_DIR
from harness.render.logs import AGENT, AUDIT_UNIT, NAMESPACE, STORE, https_url
from harness.steps.actions import (NotYet, install_binaries, kubectl, kubectl_apply, run, start_units,
                                   sync_files, unit_is_active, wait_deployment, wait_until)
from harness.steps.context import StepContext
from harness.steps.nodes import import_images_on_nodes
from harness.steps.parallel import for_each

NAME = "logs"
MANIFEST = f"{K8S_DIR}/addons/logs.yaml"
COMPONENT = "victorialogs"
AGENT_BINARY = "vlagent"


def _install_agent(ctx: StepContext, machine: Machine) -> bool:
    """vlagent in /usr/local/bin, uploaded (and stamped) only when its bytes differ; True when it
    was."""
    return bool(install_binaries(ctx, NAME, machine, [AGENT_BINARY]))


def _audit_collector(ctx: StepContext, machine: Machine) -> None:
    changed = _install_agent(ctx, machine)
    changed = bool(sync_files(ctx, NAME, machine)) or changed
    start_units(ctx, NAME, machine, [AUDIT_UNIT], restart=changed, reload=changed)
    wait_until(ctx, NAME, machine, f"{AUDIT_UNIT} active", lambda: unit_is_active(ctx, NAME, machine, AUDIT_UNIT),
               timeout=60, unit=AUDIT_UNIT, command=f"systemctl is-active {AUDIT_UNIT}")


def query(ctx: StepContext, logsql: str, *, limit: int = 100, step: str = NAME,
          machine: Machine | None = None) -> list[dict]:
    """A LogsQL query against the store's HTTPS NodePort from a master (curl, the cluster CA):
    one dict per entry, newest first."""
    machine = machine or ctx.lab.masters[0]
    url = f"{https_url(ctx.lab)}/select/logsql/query"
    command = (f"curl -sS --fail-with-body --max-time 10 --cacert {SSL_DIR}/ca.pem {shlex.quote(url)} "
               f"--data-urlencode {shlex.quote('query=' + logsql)} -d limit={limit}")
    out = run(ctx, step, machine, command, check=False, timeout=30)
    if out.exit_status != 0:
        raise NotYet(f"query {logsql!r}: exit {out.exit_status}: {(out.stderr or out.stdout).strip()[-300:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _daemonset_ready(ctx: StepContext) -> None:
    ds = json.loads(kubectl(ctx, NAME, f"-n {NAMESPACE} get daemonset {AGENT} -o json").stdout)
    status, want = ds.get("status", {}), len(ctx.lab.nodes)
    got = {k: status.get(k, 0) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberReady")}
    if status.get("observedGeneration", 0) < ds["metadata"]["generation"] or set(got.values()) != {want}:
        raise NotYet(f"{AGENT}: {got}, want {want} of each")


def run_step(ctx: StepContext) -> None:
    if not ctx.lab.has_addon(NAME):
        return
    first = ctx.lab.masters[0]
    import_images_on_nodes(ctx, NAME, (COMPONENT,))
    sync_files(ctx, NAME, first, [f for f in ctx.files_for(NAME, first) if f.path == MANIFEST])
    kubectl_apply(ctx, NAME, MANIFEST)
    wait_deployment(ctx, NAME, NAMESPACE, STORE)
    wait_until(ctx, NAME, first, f"{AGENT} ready on every node", lambda: _daemonset_ready(ctx),
               timeout=180, interval=3, command=f"kubectl -n {NAMESPACE} get daemonset {AGENT}")
    wait_until(ctx, NAME, first, f"VictoriaLogs answering at {https_url(ctx.lab)}",
               lambda: query(ctx, "_time:1m", limit=1), timeout=60, interval=2,
               command=f"curl {https_url(ctx.lab)}/select/logsql/query")
    for_each(ctx, NAME, ctx.lab.masters, lambda m: _audit_collector(ctx, m), "audit collector")
