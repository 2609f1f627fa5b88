"""harness.steps.prefetch: which binaries are staged where, and how a step takes a staged copy
or, when there is none (or it failed), uploads as before."""

from concurrent.futures import Future
from types import SimpleNamespace

from harness.steps import prefetch
from harness.steps.context import StepContext


def test_each_machine_stages_what_its_later_steps_install(seed_lab):
    by_name = {m.name: prefetch.wanted(m) for m in seed_lab.machines}
    control = ["kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert by_name["master01"] == control
    assert by_name["master03"] == control + ["kubelet", "kube-proxy"]      # master and node
    assert by_name["node01"] == ["kubelet", "kube-proxy"]


class Machine(SimpleNamespace):
    pass


def staged(result, exit_status=0):
    commands = []

    def run(command, check=True, timeout=300.0):
        commands.append(command)
        return SimpleNamespace(exit_status=exit_status, stdout="", stderr="")
    ctx = SimpleNamespace(on=lambda m: SimpleNamespace(run=run))
    p = prefetch.Prefetch(ctx)
    future = Future()
    future.set_result(result)
    p.futures[("master01", "kube-apiserver")] = future
    return p, commands


def test_a_staged_copy_is_renamed_into_place_with_its_stamp():
    p, commands = staged(True)
    assert p.take(Machine(name="master01"), "kube-apiserver")
    assert commands and "mv -f /var/lib/k8s-ha-lab/staged/kube-apiserver /usr/local/bin/kube-apiserver.k8s-ha-lab-partial" in commands[0]
    assert "mv -f /usr/local/bin/kube-apiserver.k8s-ha-lab-partial /usr/local/bin/kube-apiserver" in commands[0]
    assert "_var_lib_k8s-ha-lab_staged_kube-apiserver" in commands[0]
    assert not p.take(Machine(name="master01"), "kube-apiserver")         # taken once


def test_nothing_staged_or_a_failed_rename_means_the_step_uploads():
    p, commands = staged(False)
    assert not p.take(Machine(name="master01"), "kube-apiserver") and commands == []
    p, _ = staged(True, exit_status=1)
    assert not p.take(Machine(name="master01"), "kube-apiserver")
    assert not p.take(Machine(name="node01"), "kubelet")                    # never staged


def test_staging_starts_after_hosts_and_stops_after_nodes(monkeypatch, seed_lab):
    started = []

    class Fake:
        def __init__(self, ctx):
            self.closed = False

        def start(self):
            started.append(self)
            return self

        def close(self):
            self.closed = True
    monkeypatch.setattr(prefetch, "Prefetch", Fake)
    ctx = StepContext(seed_lab, None, None, [])
    prefetch.after_step(ctx, "pki")
    assert ctx.prefetch is None
    prefetch.after_step(ctx, "hosts")
    assert ctx.prefetch is started[0]
    prefetch.after_step(ctx, "nodes")
    assert ctx.prefetch is None and started[0].closed
    ctx.serial = True                                                    # --serial: as before
    prefetch.after_step(ctx, "hosts")
    assert ctx.prefetch is None
