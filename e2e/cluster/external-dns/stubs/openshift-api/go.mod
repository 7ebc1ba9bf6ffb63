// Stands in for github.com/openshift/api, which the module proxy serves only as the old
// v3.9.0+incompatible: just the route.openshift.io/v1 API that external-dns's openshift-route
// source and github.com/openshift/client-go/route compile against.
module github.com/openshift/api

go 1.27.0

require (
	k8s.io/api v0.37.0
	k8s.io/apimachinery v0.37.0
)
