/*
 * order.c - the restore order: tiers of kinds (docs/app-backup.md "Restore
 * order").  A kind not listed is a custom or rare resource: the last tier.
 */
#include <string.h>

#include "app.h"

static const struct {
	const char *group, *kind;
	int tier;
} tiers[] = {
	{ "apiextensions.k8s.io", "CustomResourceDefinition", 0 },
	{ "", "Namespace", 1 },
	{ "", "ServiceAccount", 2 },
	{ "rbac.authorization.k8s.io", "Role", 2 },
	{ "rbac.authorization.k8s.io", "RoleBinding", 2 },
	{ "rbac.authorization.k8s.io", "ClusterRole", 2 },
	{ "rbac.authorization.k8s.io", "ClusterRoleBinding", 2 },
	{ "", "Secret", 3 },
	{ "", "ConfigMap", 3 },
	{ "", "LimitRange", 4 },
	{ "", "ResourceQuota", 4 },
	{ "networking.k8s.io", "NetworkPolicy", 4 },
	{ "scheduling.k8s.io", "PriorityClass", 4 },
	{ "", "PersistentVolumeClaim", 5 },
	{ "", "Service", 6 },
	{ "apps", "Deployment", 7 },
	{ "apps", "StatefulSet", 7 },
	{ "apps", "DaemonSet", 7 },
	{ "apps", "ReplicaSet", 7 },
	{ "batch", "Job", 7 },
	{ "batch", "CronJob", 7 },
	{ "", "Pod", 7 },
	{ "", "ReplicationController", 7 },
	{ "networking.k8s.io", "Ingress", 8 },
	{ "autoscaling", "HorizontalPodAutoscaler", 8 },
	{ "policy", "PodDisruptionBudget", 8 },
};

int kt_app_tier(const char *group, const char *kind)
{
	for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++)
		if (!strcmp(group ? group : "", tiers[i].group) && !strcmp(kind, tiers[i].kind))
			return tiers[i].tier;
	return KT_APP_TIERS - 1;
}
