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
# lists or changes Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- if .Values.secrets.requireBridgeUsableLabel }}
# The opt-in label of the Secrets a resource names, read as metadata only (a
# PartialObjectMetadata GET); RBAC has no metadata-only verb, so this allows reading values.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.bridge.disruptionBudget }}
# One PodDisruptionBudget per bridge (owned by it: the garbage collector removes it).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create"]
{{- end }}
{{- end -}}

{{/* A map as k=v,k=v (sorted), for SIPRTMP_EXTRA_POD_LABELS. */}}
{{- define "srb.kv" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* The bridge pods' image, as the operator is told it and the admission policy admits it. */}}
{{- define "srb.bridgeImage" -}}
{{- printf "%s:%s" .Values.bridge.image.repository (.Values.bridge.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The labels every bridge pod carries (operator/siprtmp_operator/names.py, pod_labels). */}}
{{- define "srb.bridgePodLabels" -}}
app.kubernetes.io/name: sip-rtmp-bridge
app.kubernetes.io/component: bridge
app.kubernetes.io/managed-by: sip-rtmp-operator
{{- end -}}

{{/* Namespaces bridge pods are known to run in: the watched ones, those listed for the
network policies, and the REST API's. A cluster-wide install knows only the last two. */}}
{{- define "srb.bridgeNamespaces" -}}
{{- $out := concat .Values.watchNamespaces .Values.networkPolicy.bridgeNamespaces -}}
{{- if .Values.api.enabled -}}
{{- $out = append $out (include "srb.apiNamespace" .) -}}
{{- end -}}
{{- $out | uniq | toJson -}}
{{- end -}}

{{/* The namespace the REST API creates calls in. */}}
{{- define "srb.apiNamespace" -}}
{{- default .Release.Namespace .Values.api.namespace -}}
{{- end -}}
