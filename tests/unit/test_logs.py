"""The logs add-on offline: its manifests and the masters' audit units follow the lab, its image
holds both binaries, its certificate names what the collectors dial, and the checks' own
arithmetic (time parsing, the LogsQL answer, the probe pods)."""

from __future__ import annotations

import datetime as dt
import json
import shlex

import pytest
import yaml
from cryptography import x509

from checks import logs as logs_checks
from harness.artifacts.images import victorialogs_image
from harness.labfile import load_lab
from harness.render import K8S_DIR, UNIT_DIR, logs
from harness.render.ingress import INGRESS_CLASS
from harness.steps import logs as logs_step
from harness.steps.actions import NotYet
from harness.steps.context import StepContext
from harness.transport import CommandResult
from tests.unit.conftest import SMALL

MANIFEST = f"{K8S_DIR}/addons/logs.yaml"


def _docs(text: str) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text)}


def _args(container: dict) -> dict[str, str]:
    return dict(arg.lstrip("-").partition("=")[::2] for arg in container["args"])


def test_the_store_is_pinned_to_the_first_worker_with_its_data_on_that_node(rendered_seed):
    lab = rendered_seed.lab
    docs = _docs(rendered_seed.text("master01", MANIFEST))
    store = docs["Deployment/victorialogs"]["spec"]
    assert store["replicas"] == 1 and store["strategy"]["type"] == "Recreate"
    pod = store["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node01"}
    assert logs.storage_node(lab).name == "node01" and not logs.storage_node(lab).has("master")
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["hostPath"] == {"path": logs.DATA_DIR, "type": "DirectoryOrCreate"}
    container = pod["containers"][0]
    assert container["image"] == lab.versions.victorialogs.image_ref and container["imagePullPolicy"] == "Never"
    args = _args(container)
    assert args["storageDataPath"] == logs.DATA_DIR and args["retentionPeriod"] == logs.RETENTION
    assert args["httpListenAddr"] == f":{logs.HTTP_PORT},:{logs.HTTPS_PORT}" and args["tls"] == "false,true"


def test_the_https_listener_is_a_nodeport_at_the_top_of_the_labs_range(rendered_seed):
    lab = rendered_seed.lab
    docs = _docs(rendered_seed.text("master01", MANIFEST))
    port = docs["Service/victorialogs-collectors"]["spec"]["ports"][0]
    assert port["nodePort"] == lab.cluster.node_port_range[1] and port["targetPort"] == "https"
    assert docs["Service/victorialogs-collectors"]["spec"]["type"] == "NodePort"
    assert logs.https_url(lab) == f"https://node01:{lab.cluster.node_port_range[1]}"


def test_the_store_certificate_names_what_the_collectors_dial_and_comes_from_the_ca(rendered_seed):
    lab = rendered_seed.lab
    docs = _docs(rendered_seed.text("master01", MANIFEST))
    import base64
    cert = x509.load_pem_x509_certificate(base64.b64decode(docs["Secret/victorialogs-tls"]["data"]["tls.crt"]))
    ca = x509.load_pem_x509_certificate((rendered_seed.pki_dir / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(sans.get_values_for_type(x509.DNSName)) | {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"node01", str(lab.machine("node01").ip), f"victorialogs.kube-system.svc.{lab.dns_domain}"} <= names
    # The manifest embeds the serving key: root-only on the first master, nowhere else.
    manifest = [f for f in rendered_seed.files if f.path == MANIFEST]
    assert [f.machine for f in manifest] == ["master01"] and manifest[0].mode == 0o600


def test_the_collectors_run_on_every_node_and_read_the_kubelets_files(rendered_seed):
    lab = rendered_seed.lab
    docs = _docs(rendered_seed.text("master01", MANIFEST))
    pod = docs["DaemonSet/vlagent"]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}] and pod["serviceAccountName"] == "vlagent"
    container = pod["containers"][0]
    assert container["command"] == ["/vlagent"]
    args = _args(container)
    assert "kubernetesCollector" in args
    assert args["remoteWrite.url"] == f"https://victorialogs.kube-system.svc.{lab.dns_domain}:{logs.HTTPS_PORT}/insert/native"
    assert args["remoteWrite.tlsCAFile"].startswith("/etc/vlagent/ca/")
    varlog = next(m for m in container["volumeMounts"] if m["name"] == "varlog")
    assert varlog == {"name": "varlog", "mountPath": "/var/log", "readOnly": True}
    rules = docs["ClusterRole/vlagent"]["rules"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in rules)


def test_the_ui_is_published_at_the_logs_name_without_the_write_endpoints(rendered_seed):
    lab = rendered_seed.lab
    ingress = _docs(rendered_seed.text("master01", MANIFEST))["Ingress/victorialogs"]["spec"]
    assert ingress["ingressClassName"] == INGRESS_CLASS
    rule = ingress["rules"][0]
    assert rule["host"] == lab.ingress_host("logs") == "logs.apps.virtual.local"
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/select", "Prefix"), ("/", "Exact")}
    assert all(p["backend"]["service"]["port"]["number"] == logs.HTTP_PORT for p in rule["http"]["paths"])


def test_every_master_collects_its_own_audit_log_and_nothing_else_gets_the_unit(rendered_seed):
    lab = rendered_seed.lab
    units = {f.machine: f for f in rendered_seed.files if f.path == f"{UNIT_DIR}/{logs.AUDIT_UNIT}"}
    assert set(units) == {m.name for m in lab.masters}
    for master in lab.masters:
        text = units[master.name].content.decode()
        exec_start = text.split("ExecStart=", 1)[1].split("\nRestart=", 1)[0].replace("\\\n", " ")
        args = dict(a.lstrip("-").partition("=")[::2] for a in shlex.split(exec_start)[1:])
        apiserver = rendered_seed.text(master.name, f"{UNIT_DIR}/kube-apiserver.service")
        assert f"--audit-log-path={args['fileCollector.glob']}" in apiserver
        assert json.loads(args["fileCollector.extraFields"]) == {"log_source": logs.AUDIT_SOURCE,
                                                                  "machine": master.name}
        assert args["remoteWrite.url"] == f"{logs.https_url(lab)}/insert/native"
        assert args["remoteWrite.tlsCAFile"] == "/etc/kubernetes/ssl/ca.pem"
        assert args["httpListenAddr"].startswith("127.0.0.1:")
        assert args["tmpDataPath"] != logs.AGENT_DIR     # master03 also runs a DaemonSet pod


def test_another_lab_moves_the_store_its_port_and_names(write_lab):
    data = yaml.safe_load(SMALL.read_text())
    data["addons"] = ["dns", "metrics", "ingress", "logs"]
    lab = load_lab(write_lab(data))
    node = logs.storage_node(lab)
    assert node in lab.nodes
    docs = _docs(logs.logs_yaml(lab, b"cert", b"key"))
    assert docs["Deployment/victorialogs"]["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/hostname": node.node_name}
    assert docs["Service/victorialogs-collectors"]["spec"]["ports"][0]["nodePort"] == lab.cluster.node_port_range[1]
    assert docs["Ingress/victorialogs"]["spec"]["rules"][0]["host"] == lab.ingress_host("logs")
    assert str(node.ip) in logs.victorialogs_sans(lab)
    data["addons"] = ["dns", "logs"]
    assert "Ingress/victorialogs" not in _docs(logs.logs_yaml(load_lab(write_lab(data, "noingress.yaml")), b"c", b"k"))


def test_the_image_holds_both_binaries_and_rebuilds_when_one_changes(tmp_path):
    binaries = {}
    for name in victorialogs_image.BINARIES:
        binaries[name] = tmp_path / name
        binaries[name].write_bytes(f"#!{name}".encode())
    key = victorialogs_image.recipe_key("v1.52.1", binaries)
    spec = victorialogs_image.build_spec("k8s-ha-lab.local/victorialogs", "v1.52.1", binaries)
    paths = {entry.path for entry in spec.entries}
    assert {"victoria-logs", "vlagent", "etc/passwd", "tmp"} <= paths and spec.entrypoint == []
    binaries["vlagent"].write_bytes(b"#!vlagent, rebuilt")
    assert victorialogs_image.recipe_key("v1.52.1", binaries) != key


class _Answers:
    """A master that answers curl with canned LogsQL output."""

    def __init__(self, status: int, out: str):
        self.status, self.out, self.commands = status, out, []

    def run(self, command, check=True, timeout=300.0):
        self.commands.append(command)
        return CommandResult(command, self.status, self.out, "curl: (7) refused" if self.status else "")


def _ctx(rendered_seed, transport) -> StepContext:
    ctx = StepContext(rendered_seed.lab, rendered_seed.pki_dir.parent, rendered_seed.secrets, rendered_seed.files)
    ctx.transports = {m.name: transport for m in rendered_seed.lab.machines}
    return ctx


def test_a_query_parses_one_entry_per_line_and_not_yet_on_failure(rendered_seed):
    entries = [{"_time": "2026-11-28T08:42:31.925444248Z", "_msg": "a"}, {"_time": "2026-11-28T08:42:32Z", "_msg": "b"}]
    master = _Answers(0, "\n".join(json.dumps(e) for e in entries) + "\n")
    assert logs_step.query(_ctx(rendered_seed, master), 'log_source:=containers "x y"') == entries
    command = master.commands[0]
    assert "--cacert /etc/kubernetes/ssl/ca.pem" in command and logs.https_url(rendered_seed.lab) in command
    assert shlex.split(command)[shlex.split(command).index("--data-urlencode") + 1] == 'query=log_source:=containers "x y"'
    with pytest.raises(NotYet, match="refused"):
        logs_step.query(_ctx(rendered_seed, _Answers(7, "")), "*")


def test_entry_times_keep_their_nanoseconds():
    at = logs_checks._time({"_time": "2026-11-28T08:42:31.925444248Z"})
    want = dt.datetime(2026, 11, 28, 8, 42, 31, tzinfo=dt.timezone.utc).timestamp() + 0.925444248
    assert at == pytest.approx(want, abs=1e-6)
    assert logs_checks._time({"_time": "2026-11-28T08:42:31Z"}) == pytest.approx(want - 0.925444248)


def test_probe_pods_are_pinned_one_per_node_and_print_the_token(rendered_seed):
    ctx = _ctx(rendered_seed, _Answers(0, ""))
    docs = list(yaml.safe_load_all(logs_checks.probe_pods_yaml(ctx, "tok-123")))
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(m.node_name for m in rendered_seed.lab.nodes)
    for pod in pods:
        assert f'echo "tok-123 {pod["spec"]["nodeName"]}"' in pod["spec"]["containers"][0]["command"][-1]
        assert pod["spec"]["restartPolicy"] == "Never"


def test_the_browser_is_pinned_only_to_a_certificate_the_lab_ca_signed_for_that_name(rendered_seed, tmp_path):
    import base64
    import hashlib
    import socket
    import ssl
    import threading

    from cryptography.hazmat.primitives import serialization

    pki = rendered_seed.pki_dir
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "victorialogs.pem", pki / "victorialogs-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ctx = _ctx(rendered_seed, _Answers(0, ""))
    pin = logs_checks.served_spki_pin(ctx, "node01", "127.0.0.1", port)
    cert = x509.load_pem_x509_certificate((pki / "victorialogs.pem").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pin == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    with pytest.raises(AssertionError, match="not a certificate from the lab CA for that name"):
        logs_checks.served_spki_pin(ctx, "logs.apps.virtual.local", "127.0.0.1", port)
    thread.join(timeout=10)
    listener.close()
