#!/usr/bin/env bash
# `make demo`: the main job end to end on three local clusters named like the
# prod environment's (eks-us-east-1 in wave 1, aks-westeurope and
# gke-us-central1 in wave 2):
#
#   validate → plan → roll prod out in waves (gin-app from YAML, status-page
#   from a Helm chart) → status → drift by kubectl,
#   named and corrected → blue-green switch to green in waves → a bad
#   release fails in wave 1 and is rolled back
#   automatically (waves 2 untouched, revision quarantined) → the controller
#   in the background: a commit rolled out and kubectl drift corrected with
#   no one running tidegate → history and the verified audit trail.
#
# Works on a throw-away clone of this repository (so the demo can commit a bad
# release) with shorter gates; starts its own clusters (state in .tidegate/demo)
# and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

root="$PWD"
tidegate="$root/target/debug/tidegate"
testkit="$root/target/debug/tidegate-testkit"
state="$root/.tidegate/demo"
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
export XDG_STATE_HOME="$state/xdg"           # rollout journals
export GIT_AUTHOR_NAME="Tidegate demo" GIT_AUTHOR_EMAIL="demo@example.com"
export GIT_COMMITTER_NAME="Tidegate demo" GIT_COMMITTER_EMAIL="demo@example.com"

step "a throw-away clone of this repository, with demo-length gates (bake 5s, deadline 40s)"
git clone -q "$root" "$state/repo"
cd "$state/repo"
sed -i 's/    progressDeadline: 5m/    progressDeadline: 40s/; s/    bakeTime: 1m/    bakeTime: 5s/' environments/prod.yaml
# On real GKE a class-less Ingress gets a load balancer, so Tidegate waits for
# its address there (docs/health.md); the local clusters have no ingress
# controller, so the demo says an Ingress without a class is healthy as it is.
printf '  health:\n    ingressWithoutClass: healthy\n' >> environments/prod.yaml
# prod's error-rate analysis reads a Prometheus the local clusters do not have
# (unreachable means inconclusive, which fails a wave): the demo leaves it out.
sed -i '/# analysis: begin/,/# analysis: end/d' environments/prod.yaml
git commit -qam "demo: shorter gates; no ingress controller and no Prometheus on the local clusters"
git log --oneline -1

step "tidegate validate"
"$tidegate" validate

step "tidegate plan --env prod"
"$tidegate" plan --env prod

step "tidegate sync --env prod (the whole fleet, wave by wave)"
"$tidegate" sync --env prod

step "tidegate status --env prod"
"$tidegate" status --env prod

step "a Helm app: manifests/status-page rendered by helm with each cloud's values, Tidegate's image override on top"
for c in eks-us-east-1 aks-westeurope gke-us-central1; do
  printf '%-16s region=%-12s image=%s\n' "$c" \
    "$("$kubectl" --context "$c" -n status-page get configmap status-page -o jsonpath='{.data.REGION}')" \
    "$("$kubectl" --context "$c" -n status-page get deployment status-page -o jsonpath='{.spec.template.spec.containers[0].image}')"
done

step "someone scales a Deployment by hand on aks-westeurope"
"$kubectl" --context aks-westeurope -n gin-app scale deployment gin-app-blue --replicas=1
set +e
"$tidegate" diff --env prod --cluster aks-westeurope
echo "(tidegate diff exit code: $? — 1 means drift)"
set -e

step "tidegate sync corrects the drift"
"$tidegate" sync --env prod --cluster aks-westeurope --wait

step "tidegate switch --env prod --app gin-app --to green (pre-checks, commit, flip in waves, post-checks)"
"$tidegate" switch --env prod --app gin-app --to green --no-push --reason "green runs 1.4.2 too; drill"
git log --oneline -1
"$tidegate" status --env prod

step "a bad release: version 1.5.0 never becomes ready"
sed -i 's/newTag: "1.4.2"/newTag: "1.5.0"/' environments/prod.yaml
python3 - <<'PY'
import re
p = "manifests/gin-app/deployments.yaml"
s = open(p).read()
# kwok in the local clusters never makes pods with this label Ready.
s = s.replace("        version: green\n    spec:", "        version: green\n        tidegate.dev/test-fail-readiness: \"true\"\n    spec:", 1)
open(p, "w").write(s)
PY
git commit -qam "gin-app 1.5.0"
git log --oneline -1
set +e
"$tidegate" sync --env prod
echo "(tidegate sync exit code: $? — the rollout failed and was rolled back)"
set -e

step "tidegate status --env prod (every cluster back on the good revision)"
"$tidegate" status --env prod || true

step "the failed revision is quarantined: a new sync refuses it"
set +e
"$tidegate" sync --env prod
set -e

step "the controller: tidegate controller --env prod in the background (Git every 5s, selfHeal on)"
git revert --no-edit HEAD >/dev/null                      # gin-app back to a good release
sed -i 's/    interval: 3m/    interval: 5s/' environments/prod.yaml
git commit -qam "gin-app back to 1.4.2; the controller fetches every 5s"
git log --oneline -1
"$tidegate" controller --env prod 2>"$state/controller.log" &
controller=$!
trap 'kill "$controller" 2>/dev/null || true; "$testkit" --state-dir "$state/clusters" down >/dev/null 2>&1 || true' EXIT
# Waits (at most 3 minutes) until every prod cluster's inventory records revision $1.
wait_for_revision() {
  for _ in $(seq 1 180); do
    local at=0
    for c in eks-us-east-1 aks-westeurope gke-us-central1; do
      [ "$("$kubectl" --context "$c" -n tidegate-system get configmap tidegate.prod.gin-app -o jsonpath='{.data.revision}' 2>/dev/null)" = "$1" ] && at=$((at + 1))
    done
    [ "$at" = 3 ] && return 0
    sleep 1
  done
  echo "not rolled out: $1"; cat "$state/controller.log"; return 1
}
wait_for_revision "$(git rev-parse HEAD)"
echo "the controller rolled $(git rev-parse --short HEAD) out to every cluster, wave by wave"

step "a commit, and no one runs tidegate: the controller rolls it out at its next fetch"
sed -i 's/  LOG_LEVEL: "info"/  LOG_LEVEL: "debug"/' manifests/gin-app/configmap.yaml
git commit -qam "gin-app logs at debug"
git log --oneline -1
wait_for_revision "$(git rev-parse HEAD)"
grep -E 'new revision|rollout succeeded' "$state/controller.log" | tail -n 2 || true

step "drift by kubectl: scaled on eks-us-east-1, corrected by the controller through the fleet rollout"
"$kubectl" --context eks-us-east-1 -n gin-app scale deployment gin-app-blue --replicas=1
for _ in $(seq 1 120); do
  [ "$("$kubectl" --context eks-us-east-1 -n gin-app get deployment gin-app-blue -o jsonpath='{.spec.replicas}')" != 1 ] && break
  sleep 0.5
done
echo "gin-app-blue on eks-us-east-1 has $("$kubectl" --context eks-us-east-1 -n gin-app get deployment gin-app-blue -o jsonpath='{.spec.replicas}') replicas again"
sleep 2
"$tidegate" audit log --env prod | grep drift-corrected | tail -n 1 || echo "(the drift-corrected entry is not in the audit trail yet)"

step "stopping the controller (SIGTERM)"
kill -TERM "$controller"
wait "$controller"
echo "controller exit code: $?"

step "tidegate history --env prod"
"$tidegate" history --env prod

step "tidegate audit log --env prod"
"$tidegate" audit log --env prod

step "tidegate audit verify"
"$tidegate" audit verify

step "done: the clusters are stopped on exit"
