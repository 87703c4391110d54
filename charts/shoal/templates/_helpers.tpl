{{/* Names, labels and the shared pieces of every component's spec. */}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shoal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "shoal.labels" -}}
helm.sh/chart: {{ include "shoal.chart" . }}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shoal
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "agent"). */}}
{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shoal.componentLabels" -}}
{{ include "shoal.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "shoal.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shoal.origin.fullname" -}}{{ include "shoal.fullname" . }}-origin{{- end -}}
{{- define "shoal.origin.headless" -}}{{ include "shoal.fullname" . }}-origin-headless{{- end -}}
{{- define "shoal.tracker.fullname" -}}{{ include "shoal.fullname" . }}-tracker{{- end -}}
{{- define "shoal.agent.fullname" -}}{{ include "shoal.fullname" . }}-agent{{- end -}}
{{- define "shoal.redis.fullname" -}}{{ include "shoal.fullname" . }}-redis{{- end -}}

{{/* http, or https with tls.enabled. */}}
{{- define "shoal.scheme" -}}{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}{{- end -}}

{{/*
The [tls] table of a component (docs/api.md, "Mutual TLS"); the Secret is
mounted at /etc/shoal-tls (not under /etc/shoal, which may be a read-only
ConfigMap mount). Call with (dict "ctx" . "peer" true|false).
*/}}
{{- define "shoal.tlsTable" -}}
{{- if .ctx.Values.tls.enabled }}
[tls]
ca = "/etc/shoal-tls/ca.crt"
cert = "/etc/shoal-tls/tls.crt"
key = "/etc/shoal-tls/tls.key"
peer = {{ and .peer .ctx.Values.tls.peer }}
{{- end }}
{{- end -}}

{{/* The tracker's gRPC URL, as agents use it. */}}
{{- define "shoal.tracker.url" -}}
{{- printf "%s://%s.%s.svc:%v" (include "shoal.scheme" .) (include "shoal.tracker.fullname" .) .Release.Namespace .Values.tracker.port -}}
{{- end -}}

{{/*
The origin ring: one [[origins]] entry per StatefulSet member, addressed by
its stable DNS name under the headless Service. The tracker, the agents and
the origins themselves share it.
*/}}
{{- define "shoal.originRing" -}}
{{- $origin := include "shoal.origin.fullname" . -}}
{{- $headless := include "shoal.origin.headless" . -}}
{{- range $i := until (int .Values.origin.replicas) }}
[[origins]]
name = "{{ $origin }}-{{ $i }}"
http = "{{ include "shoal.scheme" $ }}://{{ $origin }}-{{ $i }}.{{ $headless }}.{{ $.Release.Namespace }}.svc:{{ $.Values.origin.httpPort }}"
peer = "{{ $origin }}-{{ $i }}.{{ $headless }}.{{ $.Release.Namespace }}.svc:{{ $.Values.origin.peerPort }}"
{{- end }}
{{- end -}}

{{/*
Discovery through the Kubernetes API, when the chart grants its rights
(rbac.create): the ring follows the headless Service's EndpointSlices (the
[[origins]] above serve until the first list), and an agent announces its
Node's topology.kubernetes.io/zone label ($NODE_NAME).
*/}}
{{- define "shoal.discovery" -}}
{{- if and .Values.rbac.create (not .Values.tls.enabled) }}
[discovery.kubernetes]
service = {{ include "shoal.origin.headless" . | quote }}
namespace = {{ .Release.Namespace | quote }}
{{- end }}
{{- end -}}

{{/* Registries the agent's init container writes hosts.toml for. */}}
{{- define "shoal.mirroredRegistries" -}}
{{- $names := list -}}
{{- if .Values.agent.configureContainerd.registries -}}
{{- $names = .Values.agent.configureContainerd.registries -}}
{{- else -}}
{{- range .Values.registries }}{{ $names = append $names .name }}{{ end -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* A registry name made safe for resource and volume names. */}}
{{- define "shoal.registrySlug" -}}
{{- . | lower | replace "." "-" | replace ":" "-" | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding the chart-created registry passwords. */}}
{{- define "shoal.credentialsSecret" -}}{{ include "shoal.fullname" . }}-registry-credentials{{- end -}}

{{/* Whether the tracker uses Redis, and where the URL comes from. */}}
{{- define "shoal.redis.urlSecret" -}}
{{- if .Values.tracker.externalRedis.existingSecret -}}
{{- .Values.tracker.externalRedis.existingSecret -}}
{{- else -}}
{{- include "shoal.fullname" . }}-tracker-redis
{{- end -}}
{{- end -}}

{{- define "shoal.redis.urlKey" -}}
{{- if .Values.tracker.externalRedis.existingSecret -}}
{{- .Values.tracker.externalRedis.urlKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{- define "shoal.probeTiming" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end -}}
