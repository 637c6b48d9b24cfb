#!/usr/bin/env bash
# Installs current runc and containerd into the project-local tools dir
# (default .tools/bin) with go install. Debian's runc 1.1.5 is old and
# vulnerable; the integration tests and the demo use these instead.
set -euo pipefail

RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
root=$(cd "$(dirname "$0")/.." && pwd)
export GOBIN=${MOORING_TOOLS:-$root/.tools/bin}
mkdir -p "$GOBIN"

has_version() { # binary, version
	local out
	[ -x "$GOBIN/$1" ] && out=$("$GOBIN/$1" --version 2>/dev/null) && [[ $out == *"${2#v}"* ]]
}

if has_version runc "$RUNC_VERSION"; then
	echo "tools: runc $RUNC_VERSION present in $GOBIN"
else
	echo "tools: building runc $RUNC_VERSION into $GOBIN (about 20 s)"
	CGO_ENABLED=1 go install -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
fi

if has_version containerd "$CONTAINERD_VERSION" && [ -x "$GOBIN/containerd-shim-runc-v2" ] && [ -x "$GOBIN/ctr" ]; then
	echo "tools: containerd $CONTAINERD_VERSION present in $GOBIN"
else
	echo "tools: building containerd $CONTAINERD_VERSION into $GOBIN (about 70 s)"
	CGO_ENABLED=0 go install \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
fi
