"""k8s-ha-lab: a pytest-driven harness that builds the seed guide's HA Kubernetes cluster."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"
