{{/* Names, labels and the switches the templates share. */}}

{{- define "pulsebase-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name; cluster-scoped objects use it too, so one release name per
cluster. Trimmed to 45 characters so the longest suffix (-leader-election) still fits 63.
*/}}
{{- define "pulsebase-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else if contains (include "pulsebase-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := include "pulsebase-operator.name" . }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "pulsebase-operator.serviceAccountName" -}}
{{- default (include "pulsebase-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The operator's ServiceAccount as a subject of the RBAC bindings. */}}
{{- define "pulsebase-operator.subject" -}}
- kind: ServiceAccount
  name: {{ include "pulsebase-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "pulsebase-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pulsebase-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pulsebase-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "pulsebase-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pulsebase-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* Leader election is on exactly when more than one replica runs. */}}
{{- define "pulsebase-operator.leaderElect" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end }}
{{- end }}
