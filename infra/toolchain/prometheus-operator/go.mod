// Pins the Prometheus operator, whose CRDs (example/prometheus-operator-crd/ in this
// module) `make k8s-validate` checks the PodMonitors and PrometheusRules in k8s/ against.
// `make setup` copies them into .tools/prometheus-operator/<version>/; nothing is built.
module zentry.local/toolchain/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.94.1
