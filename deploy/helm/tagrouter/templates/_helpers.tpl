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

{{/* The scorer's REDIS_URL: the bundled Redis, or redis.external.url with $(REDIS_PASSWORD) put in
  when external.existingSecret is set (the kubelet expands it; the password is in no ConfigMap). */}}
{{- define "tagrouter.redisUrl" -}}
{{- $ext := .Values.redis.external }}
{{- if not $ext.url }}
{{- printf "redis://:$(REDIS_PASSWORD)@%s-redis:6379/0" (include "tagrouter.fullname" .) }}
{{- else if $ext.existingSecret }}
{{- $parts := splitn "://" 2 $ext.url }}
{{- printf "%s://%s:$(REDIS_PASSWORD)@%s" $parts._0 $ext.username $parts._1 }}
{{- else }}
{{- $ext.url }}
{{- end }}
{{- end }}

{{/* The ports of an external Redis the scorer reaches: those named in its url, and nodePorts. */}}
{{- define "tagrouter.redisPorts" -}}
{{- $ext := .Values.redis.external }}
{{- $hosts := index (splitList "/" (index (splitn "://" 2 $ext.url) "_1")) 0 }}
{{- $ports := list }}
{{- range splitList "," $hosts }}
{{- $ports = append $ports (last (splitList ":" .) | int) }}
{{- end }}
{{- range $ext.nodePorts }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- $ports | uniq | sortAlpha | join " " }}
{{- end }}

{{/* Checks of redis.external beyond the schema's. */}}
{{- define "tagrouter.checkExternalRedis" -}}
{{- $ext := .Values.redis.external }}
{{- if $ext.url }}
{{- if and $ext.tls.caSecret $ext.tls.caConfigMap }}
{{- fail "redis.external.tls: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- if and (or $ext.tls.caSecret $ext.tls.caConfigMap) (not (hasPrefix "rediss" $ext.url)) }}
{{- fail "redis.external.tls: a CA bundle needs a TLS url (rediss://, rediss+sentinel://, rediss+cluster://)" }}
{{- end }}
{{- if and $ext.username (not $ext.existingSecret) }}
{{- fail "redis.external.username needs redis.external.existingSecret (the user's password)" }}
{{- end }}
{{- end }}
{{- end }}
