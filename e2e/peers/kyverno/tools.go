//go:build tools

// The upstream commands build.sh builds from this module, pinned by go.mod and go.sum.
package main

import (
	_ "github.com/kyverno/kyverno/cmd/background-controller"
	_ "github.com/kyverno/kyverno/cmd/kyverno"
)
