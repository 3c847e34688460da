{{/*
The operator's permissions, in one place: the ClusterRole (every namespace) and the Role
in each watched namespace both include "pulsebase-operator.rules.workloads", so the two
modes cannot drift. No wildcards; each rule says which code path needs it.
*/}}

{{/* What the operator does inside a namespace that holds PulseBase resources. */}}
{{- define "pulsebase-operator.rules.workloads" -}}
# kopf lists and watches PulseBases, and patches them to add and remove its finalizer.
- apiGroups: [pulsebase.io]
  resources: [pulsebases]
  verbs: [get, list, watch, patch]
# Each pass writes status (phase, conditions, components) with a merge patch.
- apiGroups: [pulsebase.io]
  resources: [pulsebases/status]
  verbs: [get, patch]
# Children carry an owner reference with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only to those who may
# update the owner's finalizers.
- apiGroups: [pulsebase.io]
  resources: [pulsebases/finalizers]
  verbs: [update]
# The PostgreSQL, Redis and object storage StatefulSets and the API and edge Deployments:
# server-side apply (patch, and create when absent), compare (list), prune and
# replace when an immutable field changes (delete); watched to follow readiness.
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [get, list, watch, create, patch, delete]
# The Redis bootstrap Jobs and the bucket Job, same life cycle; watched for completion.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# The backup CronJobs (full, incremental, vector tables): applied, compared, pruned,
# and replaced when an immutable field changes. Nothing watches them.
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, create, patch, delete]
# Services of every component and Patroni's ServiceAccount: applied, compared, pruned.
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, list, create, patch, delete]
# Rendered configuration (applied, compared, pruned), and Patroni's state ConfigMaps,
# listed and deleted on release under deletionPolicy Delete. watch and update are here
# only because the operator creates Patroni's Role with them, and Kubernetes refuses to
# let anyone grant a permission it does not hold.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
# Generated credentials: created once (never updated), listed by label, deleted on
# release under deletionPolicy Delete; get reads the Secrets an external dependency
# points at. No watch, so the operator never holds every Secret's contents in memory.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, delete]
# Volume claims of the StatefulSets, grown in place when spec storage sizes grow.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, patch]
# Not used by the operator itself: Patroni's Role grants them (Patroni labels its pods
# with their role), and a Role may only grant what its author holds.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch, update]
# Not used by the operator itself: the backup Jobs' Role grants it (they run pgBackRest
# and pg_dump in the primary's container), and a Role may only grant what its author
# holds. Reading the PulseBase, which that Role grants too, is above.
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create]
# Events on each PulseBase (Created, Updated, Pruned, phase changes), and kopf's own.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# The same Events through the events.k8s.io API, which newer clients use.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# The PodDisruptionBudgets of PostgreSQL, Redis and the API.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, create, patch, delete]
# Patroni's Role and RoleBinding (see configmaps and pods above).
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, create, patch, delete]
# Each PulseBase's PrometheusRule, where prometheus-operator's CRDs are installed:
# compared (list), server-side applied (patch; create, as the API server also checks
# when an apply creates the object) and pruned (delete). Nothing reads or watches one.
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [list, create, patch, delete]
{{- end }}

{{/* Cluster-scoped reads kopf needs whichever namespaces it watches. */}}
{{- define "pulsebase-operator.rules.cluster" -}}
# kopf watches CustomResourceDefinitions to notice when the PulseBase CRD changes.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watchNamespaces }}
# With a namespace list, kopf lists and watches namespaces to follow the listed ones
# being created and deleted. Not granted cluster-wide, where kopf does not look.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}
{{- end }}

{{/* Leader election, in the release namespace only, on the one Lease the operator uses. */}}
{{- define "pulsebase-operator.rules.leaderElection" -}}
# A replica creates the Lease when it is absent (create cannot be limited by name).
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
# Then reads it and renews or takes it over, by name.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [pulsebase-operator]
  verbs: [get, update]
{{- end }}
