"""Ingress benchmark: the `ingress` step cold and warm, then requests per second and p99 latency
from a node to nginx through traefik (HTTP and HTTPS), with the same traffic straight to nginx-ds's
NodePort measured in the same run as the baseline.

    python benchmarks/ingress_bench.py [LAB] [--duration S] [--connections N] [--threads N] [--warm-only]

It needs the lab up to the `workload` step at least (the core steps are run here anyway,
idempotently). To time the step cold it deletes traefik's objects and its image first, so the
ingress is down for a minute: never point it at a lab whose ingress someone is using (or pass
--warm-only). The load is `wrk --latency` (in the node image) on the client node, one run per
target with the same threads, connections and duration, one after another; each request through
traefik names nginx.<ingress domain> in its Host header and goes to the client node's own address,
as a client of that node would. Figures are printed and written to
artifacts/bench-ingress-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks import write_figures  # noqa: E402
from harness.labfile import load_lab  # noqa: E402
from harness.render.ingress import MANIFEST, NGINX_APP  # noqa: E402
from harness.steps import STEPS  # noqa: E402
from harness.steps import ingress  # noqa: E402
from harness.steps.actions import kubectl  # noqa: E402
from harness.steps.context import build_context  # noqa: E402
from harness.steps.runner import run_one, run_steps  # noqa: E402

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return round(float(number) * _UNITS[unit], 3)


def parse_wrk(out: str) -> dict:
    """Requests/sec, the latency percentiles of `--latency`, and the errors wrk counted."""
    figures: dict = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = float(rps[1]) if rps else None
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}(?:\.000)?%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M)
        figures[f"p{q}_ms"] = _ms(m[1]) if m else None
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    figures["requests"] = int(total[1]) if total else None
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["socket_errors"] = sum(int(x) for x in errors.groups()) if errors else 0
    figures["non_2xx"] = int(non2xx[1]) if non2xx else 0
    return figures


def wrk(ctx, client, url: str, args, host: str | None = None) -> dict:
    header = f"-H {shlex.quote('Host: ' + host)} " if host else ""
    command = (f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
               f"{header}{shlex.quote(url)}")
    out = ctx.on(client).run(command, timeout=args.duration + 60)
    return {"url": url, "host": host, **parse_wrk(out.stdout)}


def node_port(ctx) -> int:
    svc = json.loads(kubectl(ctx, "bench", "get svc nginx-ds -o json").stdout)["spec"]
    return next(p["nodePort"] for p in svc["ports"] if p["port"] == 80)


def remove_ingress(ctx) -> None:
    """traefik's objects deleted and its image removed from the nodes: the step runs cold."""
    kubectl(ctx, "bench", f"delete -f {MANIFEST} --ignore-not-found --wait=true", timeout=180)
    refs = " ".join(ctx.lab.versions[c].image_ref for c in ingress.IMAGES)
    for m in ctx.lab.nodes:
        ctx.on(m).run(f"ctr -n k8s.io images rm {refs}", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", nargs="?", default="labs/seed.yaml")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm-only", action="store_true", help="do not delete traefik to time the step cold")
    args = parser.parse_args()
    lab = load_lab(args.lab)
    ctx = build_context(lab)
    step = {s.name: s for s in STEPS}["ingress"]
    figures: dict = {"lab": lab.name, "load": {"threads": args.threads, "connections": args.connections,
                                               "duration_s": args.duration}}
    try:
        run_steps(ctx, until="workload")
        cold: dict[str, float] = {}
        if not args.warm_only:
            remove_ingress(ctx)
            sync = ctx.on(lab.masters[0])
            sync.run(f"rm -f {MANIFEST}")  # the manifest is re-synced as on a fresh lab
            run_one(ctx, step, cold)
            figures["cold_s"] = cold.get("ingress")
        warm: dict[str, float] = {}
        run_one(ctx, step, warm)
        figures["warm_s"] = warm.get("ingress")
        # The client: a node that is not a master if there is one (less else running on it).
        client = next((m for m in lab.nodes if not m.has("master")), lab.nodes[0])
        host = lab.ingress_host(NGINX_APP)
        figures["client"] = client.name
        figures["node_port"] = wrk(ctx, client, f"http://{client.ip}:{node_port(ctx)}/", args)
        figures["traefik_http"] = wrk(ctx, client, f"http://{client.ip}:{lab.ingress.http_port}/", args, host)
        figures["traefik_https"] = wrk(ctx, client, f"https://{client.ip}:{lab.ingress.https_port}/", args, host)
    finally:
        ctx.close()
    print(f"ingress step: cold {figures.get('cold_s', '-')} s, warm {figures['warm_s']} s")
    base = figures["node_port"]
    for key, label in (("node_port", "NodePort (baseline)"), ("traefik_http", "traefik HTTP"),
                       ("traefik_https", "traefik HTTPS")):
        f = figures[key]
        ratio = f" ({f['rps'] / base['rps']:.2f} × the NodePort's rps)" if key != "node_port" and base["rps"] else ""
        print(f"{label:20s} {f['rps']} req/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, "
              f"errors {f['socket_errors']}, non-2xx {f['non_2xx']}{ratio}")
    print(f"from {figures['client']}, wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency")
    write_figures("ingress", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
