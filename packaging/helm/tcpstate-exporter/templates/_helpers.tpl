{{/* The release name, or release-chart when the release name lacks the chart's. */}}
{{- define "tcpstate-exporter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the pods; never change them on upgrade. */}}
{{- define "tcpstate-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tcpstate-exporter.labels" -}}
{{ include "tcpstate-exporter.selectorLabels" . }}
app.kubernetes.io/component: exporter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pool config as the exporter reads it. */}}
{{- define "tcpstate-exporter.config" -}}
# Connection pools for tcpstate_exporter, from the chart's `pools` value.
pools:
{{- with .Values.pools }}
{{ toYaml . | indent 2 }}
{{- else }} []
{{- end }}
{{- end -}}
