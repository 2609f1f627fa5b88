#!/usr/bin/env bash
# The linters the unit suite runs on the CI workflows: actionlint, built from its Go module with
# the machine's Go toolchain (/usr/local/go) through the Go module proxy, into /usr/local/bin.
# The other linter, shellcheck, is a Debian package (bin/setup-host). Idempotent: returns at once when
# the pinned version is there.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
log() { printf '[lint-tools] %s\n' "$*"; }

if command -v actionlint >/dev/null 2>&1 \
    && [ "$(actionlint -version 2>/dev/null | head -n 1)" = "${ACTIONLINT_VERSION}" ]; then
  exit 0
fi
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  log "no Go toolchain (go on PATH or in /usr/local/go/bin): cannot build actionlint" >&2
  exit 2
fi
log "building actionlint ${ACTIONLINT_VERSION} with $(go version | cut -d' ' -f3)"
GOBIN=/usr/local/bin go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
actionlint -version | head -n 1
