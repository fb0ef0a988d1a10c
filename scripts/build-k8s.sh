#!/usr/bin/env bash
# Build the Kubernetes control plane (kube-apiserver, kube-controller-manager), etcd and helm
# from the Go module proxy into a cache directory outside the repository, for the operator's
# `k8s` test tier. Does nothing when the binaries are already there.
#
# Why from source: no container registry and no release downloads are reachable here, only the
# Go module proxy. k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the k8s.io/*
# staging modules with ./staging paths), so a throwaway module requires it and replaces every
# staging module with its published v0.X version.
#
# Usage: scripts/build-k8s.sh            prints the bin directory on its last line
# Env:   SIPRTMP_CACHE (default /var/cache/siprtmp), K8S_VERSION, HELM_VERSION,
#        BUILD_NICE (default 19), BUILD_PARALLEL (go build -p, default 1)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
HELM_VERSION="${HELM_VERSION:-3.19.5}"
CACHE="${SIPRTMP_CACHE:-/var/cache/siprtmp}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
NICE="${BUILD_NICE:-19}"
PAR="${BUILD_PARALLEL:-1}"
K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

want=(kube-apiserver kube-controller-manager etcd helm)
missing=()
for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "k8s binaries already built in $BIN" >&2
    echo "$BIN"
    exit 0
fi
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
command -v go >/dev/null || { echo "go is required (Go 1.24+)" >&2; exit 1; }
gov="$(go env GOVERSION | sed 's/^go//')"
if [[ "$(printf '%s\n' 1.24 "$gov" | sort -V | head -1)" != 1.24 ]]; then
    # Go 1.21+ can fetch a newer toolchain itself, from the same module proxy.
    if [[ "$(printf '%s\n' 1.21 "$gov" | sort -V | head -1)" == 1.21 ]]; then
        export GOTOOLCHAIN=go1.24.0
    else
        echo "Go $gov is too old: Kubernetes ${K8S_VERSION} needs Go 1.24+" >&2
        exit 1
    fi
fi
mkdir -p "$BIN"
export GOFLAGS="-p=$PAR -buildvcs=false -trimpath"
export CGO_ENABLED=0
gobuild() { nice -n "$NICE" go build -ldflags="-s -w $2" -o "$BIN/$1.tmp" "$3" && mv "$BIN/$1.tmp" "$BIN/$1"; }

work="$CACHE/k8s-$K8S_VERSION/mod"
mkdir -p "$work"
if [[ ! -f "$work/go.sum" ]] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" "$work/go.mod" 2>/dev/null; then
    echo ">> preparing throwaway module for k8s.io/kubernetes v$K8S_VERSION" >&2
    kmod="$(cd "$work" && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
        | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [[ -f "$kmod" ]] || { echo "could not download k8s.io/kubernetes go.mod" >&2; exit 1; }
    {
        echo "module siprtmp.io/k8sbuild"
        echo
        echo "go 1.24"
        echo
        echo "require k8s.io/kubernetes v$K8S_VERSION"
        echo
        grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/' "$kmod" \
            | awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
    } > "$work/go.mod"
    cat > "$work/tools.go" <<'GO'
//go:build tools

// Package k8sbuild only pins the commands built from this module.
package k8sbuild

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
    (cd "$work" && GOFLAGS= nice -n "$NICE" go mod tidy -e >&2)
fi

ldk="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
ldk="$ldk -X k8s.io/component-base/version.gitMajor=1"
ldk="$ldk -X k8s.io/component-base/version.gitMinor=$K8S_MINOR"
for b in "${missing[@]}"; do
    case "$b" in
        kube-apiserver|kube-controller-manager)
            echo ">> building $b v$K8S_VERSION" >&2
            (cd "$work" && gobuild "$b" "$ldk" "k8s.io/kubernetes/cmd/$b") ;;
        etcd)
            echo ">> building etcd (version required by k8s.io/kubernetes v$K8S_VERSION)" >&2
            (cd "$work" && gobuild etcd "" "go.etcd.io/etcd/server/v3") ;;
        helm)
            echo ">> building helm v$HELM_VERSION" >&2
            # The -X flags are those of helm's Makefile: version, and the Kubernetes version
            # `helm template` assumes (else v1.20 and kubeVersion constraints fail).
            hl="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
            hl="$hl -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
            hl="$hl -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR"
            hl="$hl -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
            hl="$hl -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR"
            GOBIN="$BIN" nice -n "$NICE" go install -ldflags="$hl" \
                "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" ;;
    esac
done
for b in "${want[@]}"; do [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b" >&2; exit 1; }; done
echo "$BIN"
