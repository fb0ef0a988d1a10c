#!/usr/bin/env bash
# Build the Kubernetes control plane (kube-apiserver, kube-controller-manager), etcd and helm
# from the Go module proxy into a cache directory outside the repository, for the operator's
# `k8s` test tier. Does nothing when the binaries are already there.
#
# Why from source: no container registry and no release downloads are reachable here, only the
# Go module proxy; the throwaway-module trick is in scripts/lib/k8s-build.sh (shared with
# scripts/build-node.sh, which builds kubelet and kube-scheduler).
#
# Usage: scripts/build-k8s.sh            prints the bin directory on its last line
# Env:   SIPRTMP_CACHE (default /var/cache/siprtmp), K8S_VERSION, HELM_VERSION,
#        BUILD_NICE (default 19), BUILD_PARALLEL (go build -p, default 1)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib/k8s-build.sh
source "$here/lib/k8s-build.sh"

want=(kube-apiserver kube-controller-manager etcd helm)
k8s_exit_if_built "${want[@]}"
mapfile -t missing < <(k8s_missing "${want[@]}")
k8s_build_env
work="$CACHE/k8s-$K8S_VERSION/mod"
k8s_prepare_module "$work" go.etcd.io/etcd/server/v3 \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
ldk="$K8S_LDFLAGS"
for b in "${missing[@]}"; do
    case "$b" in
        kube-apiserver|kube-controller-manager)
            echo ">> building $b v$K8S_VERSION" >&2
            (cd "$work" && k8s_gobuild "$b" "$ldk" "k8s.io/kubernetes/cmd/$b") ;;
        etcd)
            echo ">> building etcd (version required by k8s.io/kubernetes v$K8S_VERSION)" >&2
            (cd "$work" && k8s_gobuild etcd "" "go.etcd.io/etcd/server/v3") ;;
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
