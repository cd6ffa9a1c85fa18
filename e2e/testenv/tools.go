//go:build tools

// The upstream commands build.sh builds from this module, pinned by go.mod and go.sum.
package main

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
