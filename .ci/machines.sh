#!/usr/bin/env bash
# The machines' host prerequisites on a clean Debian 12 CI machine (root, no daemon running).
# Run it (`bash .ci/machines.sh`) or source it and call ci_machines: it changes nothing in the
# caller's shell options. Every step checks before it acts, so running it again changes nothing.
#
#   bash .ci/machines.sh          Debian packages, dockerd, then the node image
#   bash .ci/machines.sh host     only the packages and dockerd
#   bash .ci/machines.sh image    only the node image (dockerd must answer)
#
#   MACHINES_PYTHON      python with the harness's requirements (default: python3)
#   DOCKERD_WAIT_SECONDS how long dockerd may take to answer (default: 60)

MACHINES_DEBIAN_PACKAGES=(docker.io vagrant debootstrap iproute2 tar ca-certificates)

machines_log() { echo "[ci > machines] $*"; }

machines_install_packages() {
  local missing=() pkg
  for pkg in "${MACHINES_DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    machines_log "debian packages present"
    return 0
  fi
  machines_log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

machines_start_docker() {
  if docker info >/dev/null 2>&1; then
    machines_log "docker daemon answering"
    return 0
  fi
  machines_log "starting dockerd"
  mkdir -p /var/lib/docker
  # setsid: the daemon must outlive this shell and not get its signals.
  setsid dockerd --data-root /var/lib/docker >/var/log/dockerd.log 2>&1 < /dev/null &
  local deadline=$((SECONDS + ${DOCKERD_WAIT_SECONDS:-60}))
  until docker info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      machines_log "dockerd did not answer within ${DOCKERD_WAIT_SECONDS:-60}s; tail of /var/log/dockerd.log:"
      tail -n 20 /var/log/dockerd.log >&2
      return 1
    fi
    sleep 1
  done
  machines_log "docker daemon answering"
}

machines_build_image() {
  # Cached by the recipe's hash: a no-op when the tag exists, a re-import when only the
  # rootfs cache exists, a debootstrap only when the package list changed.
  "${MACHINES_PYTHON:-python3}" -m harness image build
}

ci_machines() (
  set -euo pipefail
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local started=$SECONDS part=${1:-all}
  case "$part" in
    all | host | image) ;;
    *) machines_log "unknown part '$part' (known: host, image; none for both)"; return 2 ;;
  esac
  if [[ "$part" != image ]]; then
    machines_install_packages
    machines_start_docker
  fi
  if [[ "$part" != host ]]; then
    machines_build_image
  fi
  machines_log "${part/all/ready} in $((SECONDS - started))s"
)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  ci_machines "$@"
fi
