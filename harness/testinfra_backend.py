"""testinfra over the harness's own SSH connection: a `host` fixture, the steps and the checks of
one machine share one paramiko connection (harness.ssh_pool) instead of testinfra opening its
own from an ssh_config.

Every testinfra module (file, service, socket, interface, sysctl, ...) works through
`Host.run`, which lands in `TransportBackend.run`: the command goes through `Transport.execute`,
so it runs as root (through `sudo -n` for a non-root login) and stdout comes back as bytes, as
testinfra's `stdout_bytes` and `file.content` expect.
"""

from __future__ import annotations

from typing import Any

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from harness.transport import Transport

COMMAND_TIMEOUT_S = 300.0


class TransportBackend(BaseBackend):
    NAME = "k8s-ha-lab"

    def __init__(self, transport: Transport, timeout: float = COMMAND_TIMEOUT_S):
        self.transport = transport
        self.timeout = timeout
        super().__init__(transport.name)   # sudo stays off: the transport already runs as root

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        command = self.get_command(command, *args)
        status, stdout, stderr = self.transport.execute(command, timeout=self.timeout)
        return self.result(status, self.encode(command), stdout, stderr)


def testinfra_host(transport: Transport, timeout: float = COMMAND_TIMEOUT_S) -> testinfra.host.Host:
    """The machine as a testinfra host on `transport`'s connection."""
    backend = TransportBackend(transport, timeout)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host
