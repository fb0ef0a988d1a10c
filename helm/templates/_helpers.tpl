{{- define "srb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "srb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "srb.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "srb.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "srb.labels" -}}
app.kubernetes.io/name: {{ include "srb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "srb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "srb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "srb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "srb.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "srb.nodeAccess" -}}
{{- if or (eq .Values.networking.publicAddressSource "NodeExternalIP") .Values.networking.allowNodeExternalIP -}}true{{- end -}}
{{- end -}}

{{/* Rules of the operator inside the namespaces it watches: least privilege. */}}
{{- define "srb.rules" -}}
- apiGroups: ["siprtmp.io"]
  resources: ["siprtmpbridges"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["siprtmp.io"]
  resources: ["siprtmpbridges/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Each pod's spec (it holds the stream key) goes into a Secret the operator creates; it never
# reads, lists or changes Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* A map as k=v,k=v (sorted), for SIPRTMP_EXTRA_POD_LABELS. */}}
{{- define "srb.kv" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* The namespace the REST API creates calls in. */}}
{{- define "srb.apiNamespace" -}}
{{- default .Release.Namespace .Values.api.namespace -}}
{{- end -}}
