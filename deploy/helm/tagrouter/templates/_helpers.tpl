{{/* The three gRPC services, in start-up order. */}}
{{- define "tagrouter.components" -}}
tagger scorer router
{{- end }}

{{- define "tagrouter.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels of every object; call with (dict "root" $ "component" "tagger"). */}}
{{- define "tagrouter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tagrouter
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "tagrouter.selectorLabels" . }}
{{- end }}

{{- define "tagrouter.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The gRPC service full name in the proto, e.g. tagrouter.tagger.v1.TaggerService. */}}
{{- define "tagrouter.grpcService" -}}
{{- printf "tagrouter.%s.v1.%sService" . (title .) }}
{{- end }}

{{- define "tagrouter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tagrouter.redisSecret" -}}
{{- default (printf "%s-redis" (include "tagrouter.fullname" .)) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "tagrouter.adminSecret" -}}
{{- default (printf "%s-admin" (include "tagrouter.fullname" .)) .Values.admin.existingSecret }}
{{- end }}
