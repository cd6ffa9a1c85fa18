//go:build tools

// The module whose CRDs the e2e suite installs, pinned by go.mod and go.sum.
package npapi

import _ "sigs.k8s.io/network-policy-api/apis/v1beta1"
