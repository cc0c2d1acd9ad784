//go:build tools

// Package tools records the kustomize command that tests/cluster/build-template-tools.sh
// builds, so that `go mod tidy` keeps its requirements in go.mod/go.sum.
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
