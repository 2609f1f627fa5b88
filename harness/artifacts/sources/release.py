"""Downloads official release binaries and installs them only if their sha256 matches.

Where from is the host's business (harness.artifacts.release_urls): a project with no base URL
configured is refused before anything is downloaded."""

from __future__ import annotations

import hashlib
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, \
    wait_exponential

from harness.artifacts.release_urls import (LAYOUTS, ReleaseAsset, ReleaseTemplate, configured_bases,
                                            parse_sums, pinned_checksums, require_base)
from harness.artifacts.sources.base import ArtifactSource, OnReady, _ignore
from harness.errors import UserError
from harness.versions import Component

CHUNK = 1 << 20
TIMEOUT_S = 60


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (urllib.error.URLError, socket.timeout, ConnectionError))


# The network edge: transient failures are retried with backoff, within a deadline.
_network_retry = retry(retry=retry_if_exception(_is_transient),
                       stop=stop_after_attempt(4) | stop_after_delay(300),
                       wait=wait_exponential(multiplier=1, max=20), reraise=True)


@_network_retry
def _download(url: str, dest: Path) -> str:
    """Streams url into dest; returns the sha256 hex digest of what was written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


@_network_retry
def _read_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read(CHUNK).decode("utf-8", "replace")


class ReleaseSource(ArtifactSource):
    name = "release"

    def __init__(self, templates: dict[str, ReleaseTemplate] | None = None, arch: str = "amd64",
                 bases: dict[str, str] | None = None):
        """`bases`: project -> base URL; None reads the host's configuration when first needed."""
        self.templates = templates or LAYOUTS
        self.arch = arch
        self._bases = bases

    @property
    def bases(self) -> dict[str, str]:
        if self._bases is None:
            self._bases = configured_bases()
        return self._bases

    def assets(self, component: Component, binaries: list[str]) -> dict[str, ReleaseAsset]:
        """binary -> the asset it comes from (several binaries may share one archive)."""
        template = self.templates.get(component.name)
        if template is None:
            raise UserError(f"{component.name}: no release download known (release source "
                            f"covers {', '.join(self.templates)})")
        base = require_base(component.name, self.bases)
        return {b: template.render(base, component.version, b, self.arch) for b in binaries}

    def describe(self, component: Component, binaries: list[str]) -> list[str]:
        lines = []
        for binary, asset in self.assets(component, binaries).items():
            inside = f" ({asset.members[binary]})" if asset.members else ""
            check = {"sidecar": f"{asset.url}.sha256",
                     "sums": asset.sums_url,
                     "pinned": "sha256 pinned in release_checksums.yaml"}[asset.checksum_kind]
            lines.append(f"{asset.url}{inside}, checked against {check}")
        return lines

    def fetch(self, component: Component, binaries: list[str], dest_dir: Path,
              on_ready: OnReady = _ignore) -> dict[str, Path]:
        downloads = dest_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        fetched: dict[str, Path] = {}   # asset url -> verified local file
        result: dict[str, Path] = {}
        for binary, asset in self.assets(component, binaries).items():
            started = time.monotonic()
            if asset.url not in fetched:
                fetched[asset.url] = self._fetch_verified(component, asset, downloads)
            local = fetched[asset.url]
            target = dest_dir / binary
            if asset.members:
                self._extract(local, asset.members[binary], target, component)
            else:
                shutil.copyfile(local, target)
            target.chmod(0o755)
            result[binary] = target
            on_ready(binary, target, time.monotonic() - started)
        return result

    def _fetch_verified(self, component: Component, asset: ReleaseAsset, into: Path) -> Path:
        url = asset.url
        what = f"{component.name} {component.version}"
        expected = self._expected_digest(asset, what)
        local = into / asset.filename
        try:
            actual = _download(url, local)
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"{what}: download of {url} failed: {exc}") from None
        if actual != expected:
            local.unlink(missing_ok=True)
            raise UserError(f"{what}: checksum mismatch for {url}: expected sha256 {expected}, "
                            f"got {actual}; nothing installed")
        return local

    def _expected_digest(self, asset: ReleaseAsset, what: str) -> str:
        try:
            if asset.checksum_kind == "sidecar":
                text = _read_text(asset.url + ".sha256")
                digest = text.split()[0].lower() if text.split() else None
            elif asset.checksum_kind == "sums":
                text = _read_text(asset.sums_url)
                digest = parse_sums(text, asset.filename)
            else:
                digest = pinned_checksums().get(asset.filename)
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"{what}: could not read the checksum for {asset.url}: {exc}") \
                from None
        if not digest or len(digest) != 64:
            raise UserError(f"{what}: no sha256 known for {asset.url} "
                            f"({asset.checksum_kind} checksum); refusing to install it")
        return digest

    @staticmethod
    def _extract(archive: Path, member: str, target: Path, component: Component) -> None:
        try:
            with tarfile.open(archive) as tar:
                info = tar.getmember(member)
                if not info.isfile():
                    raise KeyError(member)
                with tar.extractfile(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        except (KeyError, tarfile.TarError) as exc:
            raise UserError(f"{component.name} {component.version}: {archive.name} has no "
                            f"regular file {member} ({exc})") from None
