"""What every step receives: the lab, its rendered files, its machines, its artifacts.

Built once per run (kind's action context). Steps read from it and never re-derive what it
holds, so the lab stays the one source of truth.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness import pki_store
from harness.lab import Lab, Machine
from harness.render import RenderedFile
from harness.render.plan import build_plan
from harness.state import LabSecrets, lab_state_dir, load_secrets

log = logging.getLogger(__name__)
_CHANGES_LOCK = threading.Lock()
_TRANSPORTS_LOCK = threading.Lock()

# Which component ships each binary; versions.yaml says which version.
BINARY_COMPONENT = {
    "etcd": "etcd", "etcdctl": "etcd", "etcdutl": "etcd", "flanneld": "flannel",
    "kube-apiserver": "kubernetes", "kube-controller-manager": "kubernetes",
    "kube-scheduler": "kubernetes", "kubelet": "kubernetes", "kube-proxy": "kubernetes",
    "kubectl": "kubernetes", "vlagent": "victorialogs",
}


@dataclass
class StepContext:
    lab: Lab
    state_dir: Path
    secrets: LabSecrets
    files: list[RenderedFile]
    # machine name -> harness.transport.Transport, taken from harness.ssh_pool on first use
    transports: dict = field(default_factory=dict)
    changes: dict[str, list[str]] = field(default_factory=dict)  # step -> what it changed
    serial: bool = False            # one machine after another (`up --serial`), else all at once
    verbose_machines: bool = True   # a progress line per machine and step
    # machine name -> harness.steps.facts.Facts, read by the runner for the step that is running
    facts: dict = field(default_factory=dict)
    facts_step: str = ""

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    def on(self, machine: Machine | str):
        """The machine's transport: a handle on the process's one connection to it, shared
        with the checks and testinfra (harness.ssh_pool)."""
        name = machine if isinstance(machine, str) else machine.name
        transport = self.transports.get(name)
        if transport is None:   # a cancelled one stays: no reconnect after an interrupt
            from harness.ssh_pool import POOL
            with _TRANSPORTS_LOCK:
                transport = self.transports.get(name)
                if transport is None:
                    transport = POOL.transport(self.lab.machine(name), self.state_dir)
                    self.transports[name] = transport
        return transport

    def files_for(self, step: str, machine: Machine) -> list[RenderedFile]:
        return [f for f in self.files if f.step == step and f.machine == machine.name]

    def file(self, machine: Machine, path: str) -> RenderedFile:
        for f in self.files:
            if f.machine == machine.name and f.path == path:
                return f
        raise KeyError(f"{machine.name}:{path}")

    def facts_on(self, step: str, machine: Machine):
        """What the runner read on the machine before this step began, or None."""
        return self.facts.get(machine.name) if step == self.facts_step else None

    def changed(self, step: str, what: str) -> None:
        log.info("[%s] changed: %s", step, what)
        with _CHANGES_LOCK:   # steps record changes from one thread per machine
            self.changes.setdefault(step, []).append(what)

    def binary(self, name: str) -> Path:
        """The cached binary for this lab's pinned version (built by `harness artifacts build`)."""
        from harness.artifacts.cache import ArtifactCache
        from harness.errors import UserError

        component = self.lab.versions[BINARY_COMPONENT[name]]
        path = ArtifactCache().binary_path(component.name, component.version, name)
        if not path.exists():
            raise UserError(f"{name} {component.version}: not in the artifact cache ({path}); "
                            "run `python -m harness artifacts build`")
        return path

    def image_archive(self, component_name: str) -> Path:
        from harness.artifacts.cache import ArtifactCache
        from harness.errors import UserError

        from harness.artifacts.images.builder import ImageBuilder

        component = self.lab.versions[component_name]
        path = ImageBuilder(ArtifactCache()).archive_path(component)
        if not path.exists():
            raise UserError(f"image {component.image_ref}: not in the artifact cache ({path}); "
                            "run `python -m harness artifacts build`")
        return path

    def close(self) -> None:
        """Drop this context's connections now (they are the pool's: a later user reopens
        them; the pool's owner closes them for good)."""
        for transport in self.transports.values():
            transport.close()

    def cancel(self) -> None:
        """Ctrl-C: end every machine's running command now and start no new one (the
        threads of a parallel step would otherwise go on until their own deadlines)."""
        for transport in list(self.transports.values()):
            transport.cancel()


def build_context(lab: Lab, state_dir: Path | None = None) -> StepContext:
    """PKI brought in line with the lab, secrets loaded, every file rendered."""
    state_dir = state_dir or lab_state_dir(lab)
    pki_store.ensure_pki(lab, state_dir / "pki")
    secrets = load_secrets(lab, state_dir)
    return StepContext(lab, state_dir, secrets, build_plan(lab, state_dir / "pki", secrets))
