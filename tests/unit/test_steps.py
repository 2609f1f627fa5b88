"""The step machinery's own logic, with a fake transport: idempotent file sync, errors that name
the step, the machine, the command and the journal, waits with a deadline, CSR approval."""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, field

import pytest

from harness.errors import StepError, UserError
from harness.steps import STEP_NAMES, steps_until
from harness.steps import actions, nodes
from harness.steps.context import StepContext
from harness.transport import CommandFailed, CommandResult


@dataclass
class FakeTransport:
    name: str
    files: dict = field(default_factory=dict)        # path -> (bytes, mode)
    commands: list = field(default_factory=list)
    uploads: list = field(default_factory=list)
    replies: dict = field(default_factory=dict)      # command substring -> (status, stdout, stderr)

    def run(self, command, check=True, timeout=300.0):
        self.commands.append(command)
        status, out, err = 0, "", ""
        if command.startswith("for p in"):
            asked = shlex.split(command[len("for p in "):command.index("; do")])
            lines = [f"{hashlib.sha256(data).hexdigest()} {mode:o} {path}"
                     for path, (data, mode) in self.files.items() if path in asked]
            out = "\n".join(lines) + "\n"
        for needle, reply in self.replies.items():
            if needle in command:
                status, out, err = reply
        result = CommandResult(command, status, out, err)
        if check and status != 0:
            raise CommandFailed(self.name, result)
        return result

    def upload(self, path, data, mode=0o644, owner="root:root"):
        self.uploads.append(path)
        self.files[path] = (data, mode)

    def close(self):
        pass


@pytest.fixture
def ctx(rendered_seed):
    context = StepContext(rendered_seed.lab, rendered_seed.pki_dir.parent, rendered_seed.secrets,
                          rendered_seed.files)
    context.transports = {m.name: FakeTransport(m.name) for m in rendered_seed.lab.machines}
    return context


def test_sync_files_uploads_once_then_changes_nothing(ctx):
    m = ctx.lab.machine("node01")
    first = actions.sync_files(ctx, "nodes", m)
    assert first and set(first) == {f.path for f in ctx.files_for("nodes", m)}
    assert actions.sync_files(ctx, "nodes", m) == []
    assert len(ctx.changes["nodes"]) == len(first)


def test_sync_files_repairs_a_changed_mode_or_content(ctx):
    m = ctx.lab.machine("master01")
    actions.sync_files(ctx, "masters", m)
    fake = ctx.on(m)
    data, _ = fake.files["/etc/kubernetes/token.csv"]
    fake.files["/etc/kubernetes/token.csv"] = (data, 0o644)           # someone loosened it
    fake.files["/etc/kubernetes/audit-policy.yaml"] = (b"tampered", 0o644)
    assert sorted(actions.sync_files(ctx, "masters", m)) == ["/etc/kubernetes/audit-policy.yaml",
                                                              "/etc/kubernetes/token.csv"]
    assert fake.files["/etc/kubernetes/token.csv"][1] == 0o600


def test_a_failed_command_names_step_machine_command_and_journal(ctx):
    m = ctx.lab.machine("master02")
    fake = ctx.on(m)
    fake.replies = {"systemctl start etcd": (1, "", "Job for etcd.service failed."),
                    "journalctl -u etcd": (0, "etcd: listen tcp 192.168.220.101:2380: bind: address in use\n", "")}
    with pytest.raises(StepError) as info:
        actions.start_units(ctx, "etcd", m, ["etcd"], restart=False, reload=False)
    err = info.value
    assert (err.step, err.machine) == ("etcd", "master02")
    assert "systemctl start etcd" in err.command and "exit 1" in err.detail
    assert "address in use" in err.journal
    assert str(err).startswith("[etcd > master02] `systemctl enable --quiet etcd && systemctl start etcd` failed")


def test_wait_until_gives_up_at_its_deadline_and_says_why(ctx):
    m = ctx.lab.machine("node02")
    calls = []

    def probe():
        calls.append(time.monotonic())
        raise actions.NotYet("2 of 3 members started")
    started = time.monotonic()
    with pytest.raises(StepError) as info:
        actions.wait_until(ctx, "etcd", m, "every member started", probe, timeout=0.5, interval=0.1)
    assert time.monotonic() - started < 3
    assert len(calls) >= 3
    assert "timed out after 0s waiting for every member started: 2 of 3 members started" in str(info.value) \
        or "timed out after 1s waiting for every member started: 2 of 3 members started" in str(info.value)


def test_wait_until_returns_the_probe_value(ctx):
    m = ctx.lab.machine("node02")
    answers = iter([actions.NotYet("not yet"), "leader-1"])

    def probe():
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value
    assert actions.wait_until(ctx, "masters", m, "a leader", probe, timeout=5, interval=0.01) == "leader-1"


def _csr(name, username, signer=nodes.BOOTSTRAP_SIGNER, conditions=None):
    return {"metadata": {"name": name}, "spec": {"username": username, "signerName": signer},
            "status": {"conditions": conditions} if conditions else {}}


def test_only_pending_bootstrap_csrs_are_approved(ctx):
    listing = {"items": [
        _csr("csr-node01", "kubelet-bootstrap"),
        _csr("csr-done", "kubelet-bootstrap", conditions=[{"type": "Approved"}]),
        _csr("csr-stranger", "mallory"),
        _csr("csr-serving", "kubelet-bootstrap", signer="kubernetes.io/kubelet-serving"),
    ]}
    master = ctx.on(ctx.lab.masters[0])
    master.replies = {"get csr -o json": (0, json.dumps(listing), "")}
    assert nodes.approve_csrs(ctx) == ["csr-node01"]
    approvals = [c for c in master.commands if "certificate approve" in c]
    assert len(approvals) == 1 and approvals[0].endswith("certificate approve csr-node01")


def _serving_request(cn, org="system:nodes", dns=(), ips=()):
    import base64
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def _serving_spec(user, request, usages=("digital signature", "server auth"), groups=("system:nodes",)):
    return {"username": user, "groups": list(groups), "signerName": nodes.SERVING_SIGNER,
            "usages": list(usages), "request": request}


def test_a_serving_csr_naming_exactly_its_node_is_accepted(ctx):
    lab = ctx.lab
    m = lab.machine("master03")       # node03 in Kubernetes: both names are its own
    spec = _serving_spec("system:node:node03",
                         _serving_request("system:node:node03", dns=("node03", "master03"), ips=(str(m.ip),)))
    assert nodes.serving_csr_problem(lab, spec) is None


@pytest.mark.parametrize("change, reason", [
    ({"ips": ("192.168.220.201",)}, "IP addresses"),                      # node02's address
    ({"ips": ("192.168.220.102", "10.254.0.1")}, "IP addresses"),        # one too many
    ({"dns": ("node03", "k8s-api.virtual.local")}, "DNS names"),
    ({"cn": "system:node:node01"}, "subject"),
    ({"org": "system:masters"}, "subject"),
    ({"user": "system:node:intruder"}, "not a lab node"),
    ({"groups": ("system:authenticated",)}, "not a lab node"),
    ({"usages": ("client auth",)}, "usages"),
])
def test_a_serving_csr_asking_for_anything_else_is_refused(ctx, change, reason):
    lab = ctx.lab
    request = _serving_request(change.get("cn", "system:node:node03"), change.get("org", "system:nodes"),
                               change.get("dns", ("node03",)), change.get("ips", ("192.168.220.102",)))
    spec = _serving_spec(change.get("user", "system:node:node03"), request,
                         change.get("usages", ("digital signature", "server auth")),
                         change.get("groups", ("system:nodes",)))
    assert reason in (nodes.serving_csr_problem(lab, spec) or "accepted")


def test_serving_csrs_are_approved_or_denied_by_the_node_check(ctx):
    good = {"metadata": {"name": "csr-good"}, "status": {},
            "spec": _serving_spec("system:node:node01", _serving_request(
                "system:node:node01", dns=("node01",), ips=(str(ctx.lab.machine("node01").ip),)))}
    bad = {"metadata": {"name": "csr-bad"}, "status": {},
           "spec": _serving_spec("system:node:node01", _serving_request(
               "system:node:node01", dns=("node01",), ips=(str(ctx.lab.vip),)))}
    master = ctx.on(ctx.lab.masters[0])
    master.replies = {"get csr -o json": (0, json.dumps({"items": [good, bad]}), "")}
    assert nodes.approve_csrs(ctx) == ["csr-good"]
    assert any(c.endswith("certificate deny csr-bad") for c in master.commands)


def test_steps_follow_the_guide_order():
    assert STEP_NAMES == ("machines", "hosts", "pki", "etcd", "kubectl", "flannel", "masters",
                          "api-ha", "nodes", "workload", "dns", "metrics", "ingress", "registry", "logs")
    assert [s.name for s in steps_until("flannel")][-1] == "flannel"
    with pytest.raises(UserError, match="--until: unknown step 'flanel'"):
        steps_until("flanel")


def test_every_step_has_a_module():
    from harness.steps.runner import MODULES, step_function

    assert set(MODULES) == set(STEP_NAMES) - {"machines"}
    for name in MODULES:
        assert callable(step_function(name))


def test_up_with_an_unknown_step_exits_2(capsys):
    from harness import REPO_ROOT
    from harness.cli import main

    assert main(["up", str(REPO_ROOT / "labs/seed.yaml"), "--until", "everything"]) == 2
    assert "--until: unknown step 'everything'" in capsys.readouterr().err


def test_for_each_runs_every_machine_and_raises_the_first_failure_in_lab_order(ctx):
    from harness.steps.parallel import for_each

    machines = ctx.lab.machines
    seen = []

    def work(m):
        seen.append(m.name)
        if m.name in ("node01", "master02"):
            raise StepError("test", m.name, "false", "exit 1")
        return m.name.upper()
    with pytest.raises(StepError) as err:
        for_each(ctx, "test", machines, work)
    assert sorted(seen) == sorted(m.name for m in machines)   # the others still ran
    assert "master02" in str(err.value)                        # the first failure in lab order
    assert for_each(ctx, "test", machines[:2], lambda m: m.name) == {m.name: m.name for m in machines[:2]}


def test_serial_for_each_stops_at_the_first_failure(ctx):
    from harness.steps.parallel import for_each

    ctx.serial, seen = True, []

    def work(m):
        seen.append(m.name)
        if m.name == "master02":
            raise StepError("test", m.name, "false", "exit 1")
    with pytest.raises(StepError):
        for_each(ctx, "test", ctx.lab.machines, work)
    assert seen == ["master01", "master02"]


def _facts_from(fake, paths, units):
    from harness.steps.facts import Facts, UnitFacts

    files = {p: (hashlib.sha256(data).hexdigest(), f"{mode:o}") for p, (data, mode) in fake.files.items()
             if p in paths}
    return Facts(set(paths), files, {u: UnitFacts(*state) for u, state in units.items()})


def test_a_rerun_answers_from_the_facts_without_a_command(ctx):
    m = ctx.lab.machine("master01")
    actions.sync_files(ctx, "masters", m)
    fake = ctx.on(m)
    fake.commands.clear()
    paths = [f.path for f in ctx.files_for("masters", m)]
    ctx.facts = {m.name: _facts_from(fake, paths, {"kube-apiserver": ("active", "enabled", False)})}
    ctx.facts_step = "masters"
    assert actions.sync_files(ctx, "masters", m) == []
    actions.start_units(ctx, "masters", m, ["kube-apiserver"], restart=False)
    assert fake.commands == []
    ctx.facts_step = "etcd"        # facts of another step are never used
    actions.sync_files(ctx, "masters", m)
    assert fake.commands and fake.commands[0].startswith("for p in")


@pytest.mark.parametrize("units, expect", [
    ({"etcd": ("failed", "enabled", False)}, ["systemctl enable --quiet etcd && systemctl start etcd"]),
    ({"etcd": ("active", "disabled", False)}, ["systemctl enable --quiet etcd && systemctl start etcd"]),
    ({"etcd": ("active", "enabled", True)}, ["systemctl daemon-reload"]),
    ({}, ["systemctl daemon-reload", "systemctl enable --quiet etcd && systemctl start etcd"]),
])
def test_facts_start_only_what_is_not_running_and_reload_only_when_due(ctx, units, expect):
    m = ctx.lab.machine("master01")
    fake = ctx.on(m)
    ctx.facts, ctx.facts_step = {m.name: _facts_from(fake, [], units)}, "etcd"
    actions.start_units(ctx, "etcd", m, ["etcd"], restart=False)
    assert fake.commands == expect


def test_a_unit_file_uploaded_in_the_step_reloads_and_is_not_answered_again(ctx):
    m = ctx.lab.machine("master01")
    fake = ctx.on(m)
    paths = [f.path for f in ctx.files_for("etcd", m)]
    ctx.facts = {m.name: _facts_from(fake, paths, {"etcd": ("active", "enabled", False)})}
    ctx.facts_step = "etcd"
    changed = actions.sync_files(ctx, "etcd", m)          # nothing there yet: all uploaded
    assert "/etc/systemd/system/etcd.service" in changed
    assert ctx.facts[m.name].state(paths) is None         # forgotten once uploaded
    fake.commands.clear()
    actions.start_units(ctx, "etcd", m, ["etcd"], restart=True)
    assert fake.commands == ["systemctl daemon-reload", "systemctl enable --quiet etcd && systemctl restart etcd"]


@pytest.mark.parametrize("addons, expect_addon_steps", [
    (None, ["dns", "metrics", "ingress", "registry", "logs"]),   # every one, as `up` runs them
    ([], []),
    (["dns"], ["dns"]),
])
def test_run_steps_keeps_the_guides_steps_and_only_the_named_add_ons(monkeypatch, addons, expect_addon_steps):
    from harness.lab import ADDONS
    from harness.steps import runner as steps_runner
    ran = []
    monkeypatch.setattr(steps_runner, "run_one", lambda ctx, step, timings: ran.append(step.name))
    steps_runner.run_steps(object(), addons=addons)
    assert ran == ["hosts", "pki", "etcd", "kubectl", "flannel", "masters", "api-ha", "nodes", "workload",
                   *expect_addon_steps]
    assert set(ran) & set(ADDONS) == set(expect_addon_steps)
