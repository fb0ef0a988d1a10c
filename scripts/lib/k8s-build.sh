# Shared parts of the Kubernetes builds from the Go module proxy (scripts/build-k8s.sh for the
# control plane, scripts/build-node.sh for kubelet and kube-scheduler).
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the k8s.io/* staging modules
# with ./staging paths), so a throwaway module requires it and replaces every staging module
# with its published v0.X version; a tools.go pins the commands built from that module.
#
# Source it, then: k8s_build_env; k8s_prepare_module DIR IMPORT...; k8s_gobuild NAME LDFLAGS PKG.
# Env: SIPRTMP_CACHE (default /var/cache/siprtmp), K8S_VERSION, HELM_VERSION, BUILD_NICE
#      (default 19), BUILD_PARALLEL (go build -p, default 1)
# shellcheck shell=bash

K8S_VERSION="${K8S_VERSION:-1.34.4}"
CACHE="${SIPRTMP_CACHE:-/var/cache/siprtmp}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
NICE="${BUILD_NICE:-19}"
PAR="${BUILD_PARALLEL:-1}"
K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
STAGING_VERSION="v0.${K8S_VERSION#1.}"
# -X flags of component-base's version package, as Kubernetes' own build sets them.
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
K8S_LDFLAGS="$K8S_LDFLAGS -X k8s.io/component-base/version.gitMajor=1"
K8S_LDFLAGS="$K8S_LDFLAGS -X k8s.io/component-base/version.gitMinor=$K8S_MINOR"

HELM_VERSION="${HELM_VERSION:-3.19.5}"

# k8s_expected_version NAME: the version string NAME must report, and how to ask it, as
# "WANT<tab>ARGS". etcd's version is the one k8s.io/kubernetes requires, read from the throwaway
# module (no module: nothing is expected, so the binary is rebuilt).
k8s_expected_version() {
    case "$1" in
        kubectl) printf 'v%s\tversion --client\n' "$K8S_VERSION" ;;
        helm) printf 'v%s\tversion --short\n' "$HELM_VERSION" ;;
        etcd)
            local etcd
            etcd="$(sed -n 's|^[[:space:]]*go.etcd.io/etcd/server/v3 v\([^ ]*\).*|\1|p' \
                "$CACHE/k8s-$K8S_VERSION/mod/go.mod" 2>/dev/null | head -1)"
            printf 'etcd Version: %s\t--version\n' "${etcd:-unknown}" ;;
        *) printf 'Kubernetes v%s\t--version\n' "$K8S_VERSION" ;;
    esac
}

# k8s_binary_ok NAME: NAME is in $BIN, runs, and reports the expected version. A cached binary is
# trusted only then: a truncated build, another version or a binary for another machine fails.
k8s_binary_ok() {
    local want args reported
    [[ -x "$BIN/$1" ]] || return 1
    IFS=$'\t' read -r want args <<<"$(k8s_expected_version "$1")"
    # shellcheck disable=SC2086  # ARGS is a word list
    reported="$(timeout 20 "$BIN/$1" $args 2>&1)" || return 1
    [[ "$reported" == *"$want"* ]]
}

# k8s_missing NAME...: prints the names not built in $BIN, or built but not passing k8s_binary_ok
# (those are removed, so they are rebuilt).
k8s_missing() {
    local b
    for b in "$@"; do
        k8s_binary_ok "$b" && continue
        [[ -e "$BIN/$b" ]] && { echo ">> $BIN/$b fails its version check: rebuilding" >&2; rm -f "$BIN/$b"; }
        echo "$b"
    done
}

# k8s_exit_if_built BINARY...: print $BIN and exit the calling script when all are built.
k8s_exit_if_built() {
    if [[ -z "$(k8s_missing "$@")" ]]; then
        echo "already built in $BIN: $*" >&2
        echo "$BIN"
        exit 0
    fi
}

# k8s_build_env: a Go toolchain new enough, static builds, into $BIN.
k8s_build_env() {
    export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
    command -v go >/dev/null || { echo "go is required (Go 1.24+)" >&2; return 1; }
    local gov
    gov="$(go env GOVERSION | sed 's/^go//')"
    if [[ "$(printf '%s\n' 1.24 "$gov" | sort -V | head -1)" != 1.24 ]]; then
        # Go 1.21+ can fetch a newer toolchain itself, from the same module proxy.
        if [[ "$(printf '%s\n' 1.21 "$gov" | sort -V | head -1)" == 1.21 ]]; then
            export GOTOOLCHAIN=go1.24.0
        else
            echo "Go $gov is too old: Kubernetes ${K8S_VERSION} needs Go 1.24+" >&2
            return 1
        fi
    fi
    mkdir -p "$BIN"
    export GOFLAGS="-p=$PAR -buildvcs=false -trimpath"
    export CGO_ENABLED=0
}

# k8s_prepare_module DIR IMPORT...: the throwaway module in DIR, its tools.go importing the
# given packages; redone only when the version or the import list changed.
k8s_prepare_module() {
    local work="$1"; shift
    local tools imp kmod
    tools="//go:build tools

// Package k8sbuild only pins the commands built from this module.
package k8sbuild

import ("
    for imp in "$@"; do tools="$tools
	_ \"$imp\""; done
    tools="$tools
)"
    mkdir -p "$work"
    if [[ -f "$work/go.sum" ]] && grep -q "k8s.io/kubernetes v$K8S_VERSION" "$work/go.mod" 2>/dev/null \
        && [[ "$(cat "$work/tools.go" 2>/dev/null)" == "$tools" ]]; then
        return 0
    fi
    echo ">> preparing throwaway module for k8s.io/kubernetes v$K8S_VERSION in $work" >&2
    kmod="$(cd "$work" && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
        | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [[ -f "$kmod" ]] || { echo "could not download k8s.io/kubernetes go.mod" >&2; return 1; }
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
    printf '%s\n' "$tools" > "$work/tools.go"
    (cd "$work" && GOFLAGS= nice -n "$NICE" go mod tidy -e >&2)
}

# k8s_gobuild NAME LDFLAGS PKG: go build PKG (from the current module) into $BIN/NAME, atomically.
k8s_gobuild() {
    nice -n "$NICE" go build -ldflags="-s -w $2" -o "$BIN/$1.tmp" "$3" && mv "$BIN/$1.tmp" "$BIN/$1"
}
