"""Registers the conformance markers (`pytest -p harness.conformance.pytest_marker`, as tox does).

conformance       the CI subset of Kubernetes' [Conformance] suite, in the full-cluster run
conformance_full  the whole [Conformance] suite (`tox -e conformance`, nightly)
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance: the CI subset of Kubernetes' [Conformance] "
                                       "suite on the deployed lab")
    config.addinivalue_line("markers", "conformance_full: the whole [Conformance] suite "
                                       "(tox -e conformance)")
