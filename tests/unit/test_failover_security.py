"""The security negatives assert the specific refusal and run a positive control (issue 12).

The checks run against a fake machine: each command's answer is scripted, so every way the old
checks passed wrongly (etcd down, binary missing, a 503) is shown to fail now.
"""

from types import SimpleNamespace

import pytest

from checks import security


class FakeCtx:
    def __init__(self, lab, tmp_path, answers):
        self.lab, self.pki_dir, self.answers, self.commands = lab, tmp_path, answers, []
        (tmp_path / "admin.pem").write_bytes(b"cert")
        (tmp_path / "admin-key.pem").write_bytes(b"key")

    def on(self, machine):
        return SimpleNamespace(upload=lambda *a, **k: None)

    def file(self, machine, path):
        return SimpleNamespace(content=b"kubeconfig")


def fake_run(ctx, step, machine, command, check=True, **kwargs):
    ctx.commands.append(command)
    for needle, (status, stdout, stderr) in ctx.answers.items():
        if needle(command):
            return SimpleNamespace(exit_status=status, stdout=stdout, stderr=stderr)
    return SimpleNamespace(exit_status=0, stdout="", stderr="")


@pytest.fixture
def check(monkeypatch, seed_lab, tmp_path):
    monkeypatch.setattr(security, "run", fake_run)
    return lambda answers: FakeCtx(seed_lab, tmp_path, answers)


def etcd(which):
    return {
        "foreign": lambda c: "etcdctl" in c and "impostor" in c,
        "none": lambda c: "etcdctl" in c and "--cert" not in c,
        "own": lambda c: "etcdctl" in c and "/etc/etcd/ssl/etcd.pem" in c,
        "journal": lambda c: c.startswith("journalctl"),
    }[which]


GRPC = ('{"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error: code = '
        'DeadlineExceeded desc = latest balancer error: last connection error: connection error: '
        'desc = \\"transport: authentication handshake failed: remote error: tls: %s\\""}\nError: '
        'context deadline exceeded')


def test_etcd_refusals_pass_with_tls_errors_and_a_working_control(check):
    ctx = check({etcd("foreign"): (1, "", GRPC % "unknown certificate authority"),
                 etcd("none"): (1, "", GRPC % "certificate required"),
                 etcd("own"): (0, "/registry/x\n", "")})
    assert "unknown certificate authority" in security.etcd_refuses_foreign_cert(ctx)
    assert sum("etcdctl" in c for c in ctx.commands) == 2   # no-cert is etcd.py's check


def test_etcd_refusal_found_in_the_servers_journal(check):
    logged = ('{"level":"warn","msg":"rejected connection on client endpoint","error":"tls: failed to verify '
              'certificate: x509: certificate signed by unknown authority"}\n'
              '{"level":"warn","msg":"rejected connection on client endpoint","error":"tls: client didn\'t '
              'provide a certificate"}')
    ctx = check({etcd("foreign"): (1, "", "Error: context deadline exceeded"),
                 etcd("none"): (1, "", "Error: context deadline exceeded"),
                 etcd("own"): (0, "", ""), etcd("journal"): (0, logged, "")})
    security.etcd_refuses_foreign_cert(ctx)


@pytest.mark.parametrize("answers, expect", [
    # etcd down: every attempt fails, the old check passed on it
    ({etcd("foreign"): (1, "", "dial tcp 10.0.0.1:2379: connect: connection refused"),
      etcd("none"): (1, "", "dial tcp: connection refused"), etcd("own"): (1, "", "connection refused")},
     "positive control"),
    # the binary is missing
    ({etcd("foreign"): (127, "", "etcdctl: command not found"), etcd("none"): (127, "", "not found"),
      etcd("own"): (127, "", "etcdctl: command not found")}, "positive control"),
    # the control works but the foreign cert fails for another reason than TLS
    ({etcd("foreign"): (1, "", "Error: context deadline exceeded"),
      etcd("none"): (1, "", GRPC % "certificate required"), etcd("own"): (0, "", "")}, "with a TLS error"),
    # etcd serves a foreign-CA client
    ({etcd("foreign"): (0, "/registry/x", ""), etcd("none"): (1, "", GRPC % "bad certificate"),
      etcd("own"): (0, "", "")}, "served a client"),
])
def test_etcd_refusal_fails_on_a_doctored_answer(check, answers, expect):
    with pytest.raises(AssertionError, match=expect):
        security.etcd_refuses_foreign_cert(check(answers))


ANON = lambda c: "curl" in c and "--cert" not in c   # noqa: E731
ADMIN = lambda c: "curl" in c and "--cert" in c      # noqa: E731
UNAUTHORIZED = '{"kind":"Status","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}\n401'


def test_anonymous_denied_with_a_positive_control(check):
    assert security.anonymous_is_denied(check({ANON: (0, UNAUTHORIZED, ""), ADMIN: (0, '{"items":[]}\n200', "")})) == "401"


@pytest.mark.parametrize("anonymous, admin, expect", [
    ("upstream connect error\n503", '{"items":[]}\n200', "HTTP 503"),
    ('{"reason":"Forbidden"}\n401', '{"items":[]}\n200', "HTTP 401"),
    (UNAUTHORIZED, "\n000", "positive control"),
])
def test_anonymous_denied_fails_on_a_doctored_answer(check, anonymous, admin, expect):
    with pytest.raises(AssertionError, match=expect):
        security.anonymous_is_denied(check({ANON: (0, anonymous, ""), ADMIN: (0, admin, "")}))


PROXY_NODES = lambda c: "kube-proxy" in c and "get nodes" in c      # noqa: E731
PROXY_SECRETS = lambda c: "kube-proxy" in c and "get secrets" in c  # noqa: E731
ADMIN_SECRETS = lambda c: "/root/.kube/config" in c                 # noqa: E731
FORBIDDEN = ('Error from server (Forbidden): secrets is forbidden: User "system:kube-proxy" cannot list '
             'resource "secrets" in API group "" at the cluster scope')


def test_kube_proxy_forbidden_with_a_positive_control(check):
    ctx = check({PROXY_NODES: (0, "node/node01", ""), PROXY_SECRETS: (1, "", FORBIDDEN),
                 ADMIN_SECRETS: (0, "secret/x", "")})
    assert "Forbidden" in security.kube_proxy_cannot_list_secrets(ctx)


@pytest.mark.parametrize("secrets, admin, expect", [
    ((1, "", "The connection to the server was refused"), (0, "secret/x", ""), "not refused as Forbidden"),
    ((0, "secret/x", ""), (0, "secret/x", ""), "not refused as Forbidden"),
    ((1, "", FORBIDDEN), (1, "", "connection refused"), "positive control"),
])
def test_kube_proxy_forbidden_fails_on_a_doctored_answer(check, secrets, admin, expect):
    ctx = check({PROXY_NODES: (0, "node/node01", ""), PROXY_SECRETS: secrets, ADMIN_SECRETS: admin})
    with pytest.raises(AssertionError, match=expect):
        security.kube_proxy_cannot_list_secrets(ctx)


@pytest.mark.parametrize("answers, expect", [
    ({etcd("none"): (1, "", GRPC % "certificate required"), etcd("own"): (0, "/registry/x\n", "")}, None),
    ({etcd("none"): (0, "/registry/x\n", ""), etcd("own"): (0, "/registry/x\n", "")}, "served a client"),
    ({etcd("none"): (127, "", "etcdctl: not found"), etcd("own"): (127, "", "etcdctl: not found")},
     "positive control"),
    ({etcd("none"): (1, "", "connection refused"), etcd("own"): (0, "/registry/x\n", "")}, "TLS error"),
])
def test_the_etcd_no_cert_check_wants_a_tls_refusal_and_a_working_control(check, answers, expect):
    from checks import etcd as etcd_checks

    ctx = check(answers)
    if expect is None:
        assert "certificate required" in etcd_checks.client_without_cert_is_rejected(ctx)
    else:
        with pytest.raises(AssertionError, match=expect):
            etcd_checks.client_without_cert_is_rejected(ctx)
