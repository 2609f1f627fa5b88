#!/usr/bin/env bash
# Fills the artifact cache ($K8S_HA_LAB_CACHE, default /var/cache/k8s-ha-lab) with what the lab
# runs: Kubernetes, etcd, flannel, CoreDNS and metrics-server built from Go modules, and the
# OCI images pause, nginx, coredns, metrics-server and toolbox (the last from Debian .debs).
# Only what is missing is built, so on a machine that was used before this takes seconds; a
# cold cache on 2 cores took 43-50 minutes in the last two measured runs (docs/artifacts.md).
#
# Run it (`bash .ci/artifacts.sh`) or source it and call ci_artifacts: it changes nothing in
# the caller's shell options. Go's own build cache (~/.cache/go-build) is kept between runs.

ci_artifacts() (
    set -euo pipefail
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    local started go_bin go_minor
    started=$(date +%s)

    # Go: the machine's toolchain (/usr/local/go), never a download from elsewhere. Debian's
    # golang-go (1.19) is too old: k8s v1.35 needs Go 1.25, etcd v3.6.16 and flannel 1.26.
    export PATH="$PATH:/usr/local/go/bin"
    go_bin=$(command -v go || true)
    if [[ -z "$go_bin" ]]; then
        echo "[artifacts] Go toolchain missing: no go on PATH or in /usr/local/go/bin" >&2
        return 2
    fi
    go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
    if (( go_minor < 26 )); then
        echo "[artifacts] $(go version) is too old: need Go 1.26 or newer" \
             "(or export GOTOOLCHAIN=go1.27.3 to let go fetch it from the module proxy)" >&2
        return 2
    fi
    echo "[artifacts] $(go version), GOPROXY=$(go env GOPROXY)"

    # The pause image needs a static C build; the nginx and toolbox images Debian's .debs,
    # dpkg-deb and readelf. (The DNS checks use the toolbox's own dig: no dnsutils on the host.)
    local need=()
    command -v gcc >/dev/null || need+=(gcc)
    [[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
    command -v readelf >/dev/null || need+=(binutils)
    if (( ${#need[@]} )); then
        echo "[artifacts] installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
    # apt-get download needs package lists; a fresh machine may not have them yet.
    if ! (cd /tmp && apt-get download --print-uris nginx >/dev/null 2>&1); then
        apt-get update -qq
    fi

    # The harness entry point once it registers `artifacts`, else the package's own.
    local cli=(python3 -m harness artifacts)
    if ! "${cli[@]}" --help >/dev/null 2>&1; then
        cli=(python3 -m harness.artifacts)
    fi
    "${cli[@]}" build
    "${cli[@]}" verify
    echo "[artifacts] done in $(( $(date +%s) - started ))s; cache: $(du -sh "${K8S_HA_LAB_CACHE:-/var/cache/k8s-ha-lab}" | cut -f1)"
)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    ci_artifacts "$@"
fi
