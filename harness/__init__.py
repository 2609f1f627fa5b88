"""k8s-ha-lab: a pytest-driven harness that builds the seed guide's HA Kubernetes cluster."""

from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
_PACKAGED = Path(__file__).resolve().parent / "_data"  # setup.py copies the repo's files here


def _data_root() -> Path:
    """Where the repo's own files are (vagrant/Vagrantfile, versions.yaml, docs/, labs/): the
    source checkout, or, in a non-editable install, their copy inside the package, with the
    same layout."""
    if (_CHECKOUT / "versions.yaml").is_file() and (_CHECKOUT / "vagrant" / "Vagrantfile").is_file():
        return _CHECKOUT
    if (_PACKAGED / "versions.yaml").is_file():
        return _PACKAGED
    return _CHECKOUT


REPO_ROOT = _data_root()


def artifacts_root() -> Path:
    """Where runs leave their artifacts: $K8S_HA_LAB_ARTIFACTS, else the repo's artifacts/."""
    import os
    return Path(os.environ.get("K8S_HA_LAB_ARTIFACTS", REPO_ROOT / "artifacts"))
__version__ = "0.1.0"
