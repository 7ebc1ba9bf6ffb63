{{/* Name of every object of the release. */}}
{{- define "securetunnel-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "securetunnel-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "securetunnel-operator.labels" -}}
{{ include "securetunnel-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "securetunnel-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The generated RBAC rules (files/rbac-rules.yaml, from `securetunnel-operator rbac`). */}}
{{- define "securetunnel-operator.rules" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml -}}
{{- toYaml (index $rules .key) -}}
{{- end -}}

{{/* The controller's rules, and those of each enabled integration (files/rbac-rules.yaml). */}}
{{- define "securetunnel-operator.controllerRules" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml -}}
{{- $all := $rules.controller -}}
{{- range $key, $integration := $rules.integrations -}}
{{- if index $.Values.integrations $key -}}
{{- $all = concat $all $integration.rules -}}
{{- end -}}
{{- end -}}
{{- toYaml $all -}}
{{- end -}}

{{/* One `--integration` argument per enabled integration. */}}
{{- define "securetunnel-operator.integrationArgs" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml -}}
{{- range $key, $integration := $rules.integrations }}
{{- if index $.Values.integrations $key }}
- --integration={{ $integration.flag }}
{{- end }}
{{- end }}
{{- end -}}
