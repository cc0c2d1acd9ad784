//go:build tools

// Package tools records the etcd server that tests/cluster/build.sh builds,
// so that `go mod tidy` keeps its requirements in go.mod/go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3"
