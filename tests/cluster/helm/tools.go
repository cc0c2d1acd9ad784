//go:build tools

// Package tools records the helm command that tests/cluster/build-template-tools.sh
// builds, so that `go mod tidy` keeps its requirements in go.mod/go.sum.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
