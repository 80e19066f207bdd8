// Pins CloudNativePG, whose CRDs (config/crd/bases/ in this module) `make k8s-validate`
// checks the Cluster, Database and Pooler in k8s/ against. `make setup` copies them into
// .tools/cloudnative-pg/<version>/; nothing is built. Install the same version in the
// cluster (k8s/README.md).
module zentry.local/toolchain/cloudnative-pg

go 1.26.0

require github.com/cloudnative-pg/cloudnative-pg v1.27.1
