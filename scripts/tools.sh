#!/usr/bin/env bash
# Installs the engines the integration tests and the demo run into the
# project-local tools dir (default .tools/bin): current runc and containerd
# (Debian's runc 1.1.5 is old and vulnerable), CRI-O and a standalone kubelet.
# Each is rebuilt only when its version changes, so CI can cache .tools.
set -euo pipefail

RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CRIO_VERSION=${CRIO_VERSION:-v1.34.0}
# 1.34 is the last kubelet that runs on cgroup v1 hosts without opting in.
KUBELET_VERSION=${KUBELET_VERSION:-v1.34.4}
root=$(cd "$(dirname "$0")/.." && pwd)
export GOBIN=${MOORING_TOOLS:-$root/.tools/bin}
mkdir -p "$GOBIN"

has_version() { # binary, version
	local out
	[ -x "$GOBIN/$1" ] && out=$("$GOBIN/$1" --version 2>/dev/null) && [[ $out == *"${2#v}"* ]]
}

# module_dir prints where the module cache unpacked a module version.
module_dir() { # module@version
	go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
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

# CRI-O refuses go install (replace directives), so it is built from its
# module source, as are pinns (C, static), which pins pod namespaces.
build_crio() {
	local src
	src=$(module_dir "github.com/cri-o/cri-o@$CRIO_VERSION")
	(cd "$src" && CGO_ENABLED=1 go build -trimpath -o "$GOBIN/crio" \
		-tags 'containers_image_ostree_stub containers_image_openpgp exclude_graphdriver_btrfs btrfs_noversion seccomp' \
		./cmd/crio)
	gcc -std=c99 -Os -static -o "$GOBIN/pinns" "$src"/pinns/src/*.c
}

if has_version crio "$CRIO_VERSION" && [ -x "$GOBIN/pinns" ]; then
	echo "tools: crio $CRIO_VERSION present in $GOBIN"
else
	echo "tools: building crio $CRIO_VERSION into $GOBIN (about 2 min)"
	build_crio
fi

# kubelet cannot be go-installed: k8s.io/kubernetes replaces its staging
# modules with ./staging paths, which only work inside its own repository. A
# generated wrapper module pins each of them to the matching v0.X.Y release
# instead; the list comes from kubernetes' own go.mod, so it follows the version.
build_kubelet() {
	local staging_version=v0.${KUBELET_VERSION#v1.} wrapper gomod
	wrapper=$(mktemp -d)
	trap 'rm -rf "$wrapper"' RETURN
	gomod=$(go mod download -json "k8s.io/kubernetes@$KUBELET_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
	{
		echo "module mooring.dev/kubelet-build"
		echo
		grep -E '^(go|godebug) ' "$gomod"
		echo
		echo "require k8s.io/kubernetes $KUBELET_VERSION"
		echo
		echo "replace ("
		# The sample modules are not published at every version; kubelet needs neither.
		sed -n 's|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod" | grep -v '^k8s.io/sample-c' |
			while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
		echo ")"
	} >"$wrapper/go.mod"
	local minor=${KUBELET_VERSION#v1.}
	minor=${minor%%.*}
	local pkg=k8s.io/component-base/version
	(cd "$wrapper" && CGO_ENABLED=0 go build -mod=mod -trimpath -o "$GOBIN/kubelet" \
		-ldflags "-s -w -X $pkg.gitVersion=$KUBELET_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor" \
		k8s.io/kubernetes/cmd/kubelet)
}

if has_version kubelet "$KUBELET_VERSION"; then
	echo "tools: kubelet $KUBELET_VERSION present in $GOBIN"
else
	echo "tools: building kubelet $KUBELET_VERSION into $GOBIN (about 4 min cold)"
	build_kubelet
fi
