// Pins cert-manager, whose CRDs (deploy/crds/ in this module) `make k8s-validate` checks
// the Issuers and Certificates in k8s/ against. `make setup` copies them into
// .tools/cert-manager/<version>/; nothing is built. Install the same version in the
// cluster (k8s/README.md).
module zentry.local/toolchain/cert-manager

go 1.26.0

require github.com/cert-manager/cert-manager v1.21.2
