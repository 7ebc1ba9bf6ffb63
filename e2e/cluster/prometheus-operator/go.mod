// Not built: the e2e suite takes the PodMonitor CRD from this module's source
// (example/prometheus-operator-crd/), to check the PodMonitors the operator writes against
// the real schema on the real API server.
module securetunnel-operator/e2e/cluster/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.88.0
