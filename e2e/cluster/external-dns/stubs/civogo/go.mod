// Stands in for github.com/civo/civogo, which the module proxy does not serve: just the API
// that external-dns's civo provider compiles against. Every call fails.
module github.com/civo/civogo

go 1.27.0
