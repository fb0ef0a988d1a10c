#!/usr/bin/env bash
# Build the node side of Kubernetes (kubelet, kube-scheduler, kubectl) from the Go module proxy, at the
# control plane's version, into the same cache directory as scripts/build-k8s.sh, for the
# end-to-end tier on a real node (docs/e2e-node.md). Does nothing when the binaries are there.
#
# kube-scheduler is built because Deployments (the chart's operator) need one; test pods that
# set spec.nodeName do not.
#
# Usage: scripts/build-node.sh            prints the bin directory on its last line
# Env:   as scripts/lib/k8s-build.sh (SIPRTMP_CACHE, K8S_VERSION, BUILD_NICE, BUILD_PARALLEL)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/lib/k8s-build.sh
source "$here/lib/k8s-build.sh"

want=(kubelet kube-scheduler kubectl)
k8s_exit_if_built "${want[@]}"
mapfile -t missing < <(k8s_missing "${want[@]}")
k8s_build_env
work="$CACHE/k8s-$K8S_VERSION/mod-node"
k8s_prepare_module "$work" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
for b in "${missing[@]}"; do
    echo ">> building $b v$K8S_VERSION" >&2
    (cd "$work" && k8s_gobuild "$b" "$K8S_LDFLAGS" "k8s.io/kubernetes/cmd/$b")
done
[[ -z "$(k8s_missing "${want[@]}")" ]] || { echo "missing binaries in $BIN" >&2; exit 1; }
echo "$BIN"
