#!/usr/bin/env bash
# `make demo`: the main job end to end on three local clusters named like the
# prod environment's (eks-us-east-1, aks-westeurope, gke-us-central1).
#
#   validate → diff → sync every prod cluster (waiting for health) → status →
#   drift by kubectl, named and corrected → audit log and verify.
#
# Starts its own clusters (state in .tidegate/demo) and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

tidegate=target/debug/tidegate
testkit=target/debug/tidegate-testkit
state="$PWD/.tidegate/demo"
kubectl="$(tests/cluster/build.sh --print-dirs | head -n 1)/kubectl"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$testkit" --state-dir "$state/clusters" down >/dev/null 2>&1 || true
rm -rf "$state" && mkdir -p "$state"
trap '"$testkit" --state-dir "$state/clusters" down >/dev/null 2>&1 || true' EXIT

step "starting 3 local clusters"
export KUBECONFIG
KUBECONFIG=$("$testkit" --state-dir "$state/clusters" up --ephemeral-ports)
export TIDEGATE_ACCESS=kubeconfig            # reach every cluster through its kubeconfig context
export TIDEGATE_AUDIT_DB="$state/audit.db"   # a fresh audit trail for the demo

step "tidegate validate"
"$tidegate" validate

step "tidegate diff --env prod --cluster eks-us-east-1 (everything is missing)"
"$tidegate" diff --env prod --cluster eks-us-east-1 | tail -n 3 || true

for cluster in eks-us-east-1 aks-westeurope gke-us-central1; do
  step "tidegate sync --env prod --cluster $cluster --wait"
  "$tidegate" sync --env prod --cluster "$cluster" --wait
done

step "tidegate status --env prod"
"$tidegate" status --env prod

step "someone scales a Deployment by hand on aks-westeurope"
"$kubectl" --context aks-westeurope -n gin-app scale deployment gin-app-blue --replicas=1
set +e
"$tidegate" diff --env prod --cluster aks-westeurope
echo "(tidegate diff exit code: $? — 1 means drift)"
set -e

step "tidegate sync corrects the drift"
"$tidegate" sync --env prod --cluster aks-westeurope --wait
"$tidegate" sync --env prod --cluster aks-westeurope

step "tidegate audit log --env prod"
"$tidegate" audit log --env prod

step "tidegate audit verify"
"$tidegate" audit verify

step "done: the clusters are stopped on exit"
