//go:build tools

// Package tools records the kwok command that tests/cluster/build.sh builds,
// so that `go mod tidy` keeps its requirements in go.mod/go.sum.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
