// Package v1 stands in for the route.openshift.io/v1 API of OpenShift (a subset of Route).
package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const GroupName = "route.openshift.io"

var (
	GroupVersion       = schema.GroupVersion{Group: GroupName, Version: "v1"}
	SchemeGroupVersion = GroupVersion

	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	Install       = schemeBuilder.AddToScheme
	AddToScheme   = schemeBuilder.AddToScheme
)

// Resource takes an unqualified resource and returns a group-qualified GroupResource.
func Resource(resource string) schema.GroupResource {
	return GroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &Route{}, &RouteList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}

type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RouteSpec   `json:"spec"`
	Status            RouteStatus `json:"status,omitempty"`
}

type RouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Route `json:"items"`
}

type RouteSpec struct {
	Host           string             `json:"host,omitempty"`
	Subdomain      string             `json:"subdomain,omitempty"`
	Path           string             `json:"path,omitempty"`
	WildcardPolicy WildcardPolicyType `json:"wildcardPolicy,omitempty"`
}

type RouteStatus struct {
	Ingress []RouteIngress `json:"ingress,omitempty"`
}

type RouteIngress struct {
	Host                    string                  `json:"host,omitempty"`
	RouterName              string                  `json:"routerName,omitempty"`
	Conditions              []RouteIngressCondition `json:"conditions,omitempty"`
	WildcardPolicy          WildcardPolicyType      `json:"wildcardPolicy,omitempty"`
	RouterCanonicalHostname string                  `json:"routerCanonicalHostname,omitempty"`
}

type RouteIngressConditionType string

const RouteAdmitted RouteIngressConditionType = "Admitted"

type RouteIngressCondition struct {
	Type               RouteIngressConditionType `json:"type"`
	Status             corev1.ConditionStatus    `json:"status"`
	Reason             string                    `json:"reason,omitempty"`
	Message            string                    `json:"message,omitempty"`
	LastTransitionTime *metav1.Time              `json:"lastTransitionTime,omitempty"`
}

type WildcardPolicyType string

type TLSTerminationType string

type InsecureEdgeTerminationPolicyType string

type RouteHTTPHeaderActionType string

func (in *Route) DeepCopyInto(out *Route) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = in.Spec
	in.Status.DeepCopyInto(&out.Status)
}

func (in *Route) DeepCopy() *Route {
	if in == nil {
		return nil
	}
	out := new(Route)
	in.DeepCopyInto(out)
	return out
}

func (in *Route) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

func (in *RouteList) DeepCopyInto(out *RouteList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]Route, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

func (in *RouteList) DeepCopy() *RouteList {
	if in == nil {
		return nil
	}
	out := new(RouteList)
	in.DeepCopyInto(out)
	return out
}

func (in *RouteList) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

func (in *RouteStatus) DeepCopyInto(out *RouteStatus) {
	*out = *in
	if in.Ingress != nil {
		out.Ingress = make([]RouteIngress, len(in.Ingress))
		for i := range in.Ingress {
			in.Ingress[i].DeepCopyInto(&out.Ingress[i])
		}
	}
}

func (in *RouteIngress) DeepCopyInto(out *RouteIngress) {
	*out = *in
	if in.Conditions != nil {
		out.Conditions = make([]RouteIngressCondition, len(in.Conditions))
		for i := range in.Conditions {
			out.Conditions[i] = in.Conditions[i]
			if t := in.Conditions[i].LastTransitionTime; t != nil {
				out.Conditions[i].LastTransitionTime = t.DeepCopy()
			}
		}
	}
}
