{{/* Chart name, truncated to a DNS label. */}}
{{- define "vmbackup-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "vmbackup-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vmbackup-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vmbackup-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "vmbackup-operator.labels" -}}
{{ include "vmbackup-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vmbackup-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vmbackup-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vmbackup-operator.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .Values.image.registry) .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when more than one replica must agree on one active controller. */}}
{{- define "vmbackup-operator.replicated" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The leader-election Lease every replica must hold to act (in the release namespace). */}}
{{- define "vmbackup-operator.leaseName" -}}
{{- default (include "vmbackup-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Where the Airflow credentials Secret is mounted (read through *_FILE variables, never env values). */}}
{{- define "vmbackup-operator.authDir" -}}
/etc/vmbackup/airflow-auth
{{- end }}

{{- define "vmbackup-operator.tenancyFile" -}}
/etc/vmbackup/tenancy/tenancy.yaml
{{- end }}

{{/* Where each Secret named by a composerTargets[].auth is mounted: <dir>/<secret name>/<key>. */}}
{{- define "vmbackup-operator.targetSecretsDir" -}}
/etc/vmbackup/target-auth
{{- end }}

{{/* Every composerTargets entry of the tenancy map, with where it sits: JSON [{where, grant}]. */}}
{{- define "vmbackup-operator.composerGrants" -}}
{{- $tenancy := .Values.tenancy | default dict }}
{{- $found := list }}
{{- range $tenancy.composerTargets | default list }}
{{- $found = append $found (dict "where" "tenancy.composerTargets" "grant" .) }}
{{- end }}
{{- range $namespace, $grant := $tenancy.namespaces | default dict }}
{{- range $grant.composerTargets | default list }}
{{- $found = append $found (dict "where" (printf "tenancy.namespaces.%s.composerTargets" $namespace) "grant" .) }}
{{- end }}
{{- end }}
{{- toJson $found }}
{{- end }}

{{/* The Secrets the tenancy map names for its targets' credentials, each once. */}}
{{- define "vmbackup-operator.targetSecrets" -}}
{{- $names := list }}
{{- range include "vmbackup-operator.composerGrants" . | fromJsonArray }}
{{- if and (kindIs "map" .grant) .grant.auth }}
{{- with .grant.auth.existingSecret }}
{{- $names = append $names . }}
{{- end }}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | join "," }}
{{- end }}

{{/* Settings JSON Schema cannot express across keys; fail with the fix. */}}
{{- define "vmbackup-operator.validate" -}}
{{- $airflow := .Values.airflow }}
{{- if and .Values.composer.environment (or $airflow.bucket $airflow.url) }}
{{- fail "set either composer.environment or airflow.bucket with airflow.url, not both" }}
{{- end }}
{{- if ne (empty $airflow.bucket) (empty $airflow.url) }}
{{- fail "airflow.bucket and airflow.url go together: set both (or neither)" }}
{{- end }}
{{- if and (has $airflow.auth.type (list "basic" "jwt")) (not $airflow.auth.existingSecret) }}
{{- fail (printf "airflow.auth.type=%s needs airflow.auth.existingSecret: the name of a Secret with the %s" $airflow.auth.type (ternary "username and password" "token (or username and password)" (eq $airflow.auth.type "basic"))) }}
{{- end }}
{{- range include "vmbackup-operator.composerGrants" . | fromJsonArray }}
{{- if and (kindIs "string" .grant) (not (regexMatch "^projects/[^/]+/locations/[^/]+/environments/[^/]+$" .grant)) }}
{{- fail (printf "%s: %q grants a bucket without its Airflow URL (the 0.1.x format, which let a policy send the controller's credentials to any airflowUri); write {bucket: %s, airflowUri: <its Airflow URL>, auth: {type: basic|jwt|google|none, existingSecret: <Secret>}} instead" .where .grant .grant) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What the controller needs, and nothing more (tests/charts/test_rbac.py matches every request the controller makes
against these rules and fails on a rule nothing uses): no get (kopf lists and watches), no create/delete of
policies (people own them), no finalizers subresource (it owns no Kubernetes objects), no Secrets
(credentials are mounted files), no namespaces or CRDs (kopf's scanning is off: settings.scanning.disabled in
controller/handlers.py).
*/}}
{{- define "vmbackup-operator.controllerRules" -}}
# Application: the policies it reconciles; patch for kopf's finalizer and progress annotations.
- apiGroups: [vmbackup.dev]
  resources: [vmbackuppolicies]
  verbs: [list, watch, patch]
- apiGroups: [vmbackup.dev]
  resources: [vmbackuppolicies/status]
  verbs: [patch]
# Framework: kopf posts events about handler progress and errors.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* PromQL: a counter rose in the last hour, or appeared above 0 within it (increase() misses a new series' first step). */}}
{{- define "vmbackup-operator.counterRose" -}}
sum by ({{ .by }}) (increase({{ .metric }}[1h])) > 0
or
sum by ({{ .by }}) ({{ .metric }} unless {{ .metric }} offset 1h) > 0
{{- end }}

{{/* The Secret holding the restore-run signing key: the user's, or the one the chart creates. */}}
{{- define "vmbackup-operator.signingSecret" -}}
{{- default (printf "%s-restore-signing" (include "vmbackup-operator.fullname" .)) .Values.restoreSigning.existingSecret }}
{{- end }}

{{/* Where that Secret is mounted (read through VMBACKUP_RUN_SIGNING_KEY_FILE, never an env value). */}}
{{- define "vmbackup-operator.signingDir" -}}
/etc/vmbackup/restore-signing
{{- end }}
