//go:build tools

// Package tools pins the Istio commands the data-plane suite builds (pilot-discovery,
// pilot-agent) in this module's go.mod and go.sum. Test-only: never shipped.
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
