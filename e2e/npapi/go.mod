// Pins sigs.k8s.io/network-policy-api for its ClusterNetworkPolicy CRDs, which the e2e suite
// installs on the local control plane (`crds.sh` prints their path).
module meshbaseline.dev/e2e/npapi

go 1.26.6

require sigs.k8s.io/network-policy-api v0.3.0 // indirect
