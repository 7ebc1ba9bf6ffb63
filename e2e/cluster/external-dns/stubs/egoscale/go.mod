// Stands in for github.com/exoscale/egoscale/v3, which the module proxy does not serve: just
// the API that external-dns's exoscale provider compiles against. Every call fails.
module github.com/exoscale/egoscale/v3

go 1.27.0
