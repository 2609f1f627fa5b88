"""Images of one static Go binary from the artifact cache: CoreDNS and metrics-server.

Like the projects' own images (FROM distroless/static, COPY the binary to /, ENTRYPOINT it), the
layer holds the binary at /<binary>, /etc/passwd and /etc/group (root and nobody, so a numeric
user has a name) and a world-writable /tmp. The binary is the one `artifacts build` put into
the cache, so the image and `bin/<component>@<version>/` hold the very same file; its sha256 is
part of the recipe key, so a rebuilt binary rebuilds the image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.images.debroot import sha256_file
from harness.artifacts.images.filecaps import XATTR, vfs_cap_data
from harness.artifacts.images.oci import ImageSpec, LayerEntry

RECIPE_REVISION = "1"
PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class GoBinaryImage:
    component: str           # versions.yaml name, e.g. metrics_server
    binary: str              # the cached binary, e.g. metrics-server; lands at /<binary>
    user: str = ""           # "" leaves it to the pod spec
    exposed_ports: tuple[str, ...] = ()
    # file capabilities of the binary (e.g. CAP_NET_BIND_SERVICE), so a non-root user has them
    capabilities: tuple[str, ...] = ()

    def recipe_key(self, version: str, binary_path: Path) -> str:
        digest = hashlib.sha256()
        for part in (RECIPE_REVISION, version, self.binary, self.user,
                     ",".join(self.exposed_ports), PASSWD, GROUP, sha256_file(binary_path)):
            digest.update(part.encode() + b"\0")
        if self.capabilities:  # only then: the other images keep their keys
            digest.update(("caps:" + ",".join(self.capabilities)).encode() + b"\0")
        return digest.hexdigest()

    def build_spec(self, name: str, version: str, binary_path: Path) -> ImageSpec:
        entries = [LayerEntry("etc", kind="dir", mode=0o755),
                   LayerEntry("etc/passwd", data=PASSWD.encode()),
                   LayerEntry("etc/group", data=GROUP.encode()),
                   LayerEntry("tmp", kind="dir", mode=0o1777),
                   LayerEntry(self.binary, data=binary_path.read_bytes(), mode=0o755,
                              xattrs={XATTR: vfs_cap_data(self.capabilities)} if self.capabilities else {})]
        return ImageSpec(name=name, tag=version, entries=entries,
                         entrypoint=[f"/{self.binary}"], user=self.user,
                         exposed_ports=list(self.exposed_ports))


GO_BINARY_IMAGES: dict[str, GoBinaryImage] = {
    # CoreDNS's image runs as 65532 with cap_net_bind_service on the file; file capabilities do
    # not survive an OCI layer written here, so no user is set: the pod spec decides (root, or
    # a non-root user with NET_BIND_SERVICE added, or a port above 1023).
    "coredns": GoBinaryImage("coredns", "coredns", exposed_ports=("53/tcp", "53/udp")),
    # metrics-server's own image: USER 65534. It writes its self-signed serving certificate to
    # --cert-dir (upstream manifest: --cert-dir=/tmp on an emptyDir); /tmp is 1777 here too.
    "metrics_server": GoBinaryImage("metrics_server", "metrics-server", user="65534:65534",
                                    exposed_ports=("10250/tcp",)),
    # traefik binds :80 and :443 of each node (hostNetwork) as a non-root user: the binary
    # carries cap_net_bind_service=+ep (harness.artifacts.images.filecaps); the pod spec sets
    # the user and adds only NET_BIND_SERVICE to the bounding set.
    "traefik": GoBinaryImage("traefik", "traefik", user="65534:65534",
                             exposed_ports=("80/tcp", "443/tcp"),
                             capabilities=("CAP_NET_BIND_SERVICE",)),
}
