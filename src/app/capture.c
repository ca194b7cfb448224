/*
 * capture.c - what a restore point takes from a namespace: the resources
 * and objects left to the cluster to recreate, each with the reason that
 * docs/app-backup.md gives (the two tables must say the same).
 */
#include <string.h>

#include "app.h"

static const struct {
	const char *group, *resource, *why;
} skipped[] = {
	{ "", "events", "history, not state: the cluster records new events" },
	{ "events.k8s.io", "events", "history, not state: the cluster records new events" },
	{ "", "endpoints", "written by the endpoints controller from Services and Pods" },
	{ "discovery.k8s.io", "endpointslices", "written by the EndpointSlice controller from "
	  "Services and Pods" },
	{ "apps", "controllerrevisions", "StatefulSet and DaemonSet history, rebuilt by their "
	  "controllers" },
	{ "coordination.k8s.io", "leases", "leader election and heartbeats of running "
	  "processes" },
	{ "storage.k8s.io", "csistoragecapacities", "published by CSI drivers about their own "
	  "capacity" },
	{ "snapshot.storage.k8s.io", "volumesnapshots", "bound to storage of the source "
	  "cluster; the restore point carries its own snapshot of every PVC" },
	{ "metrics.k8s.io", "pods", "a read-only metrics view" },
};

/* 1 if the space-separated list has word w. */
static int has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = list; p && *p;) {
		const char *sp = strchr(p, ' ');
		size_t k = sp ? (size_t)(sp - p) : strlen(p);
		if (k == n && !memcmp(p, w, n))
			return 1;
		p = sp ? sp + 1 : NULL;
	}
	return 0;
}

const char *kt_app_skip_resource(const char *group, const char *resource, const char *verbs)
{
	for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++)
		if (!strcmp(group, skipped[i].group) && !strcmp(resource, skipped[i].resource))
			return skipped[i].why;
	if (!has_word(verbs, "list") || !has_word(verbs, "get") || !has_word(verbs, "create"))
		return "cannot be listed and created again (a read-only or create-only resource)";
	return NULL;
}

static const char *str_at(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

/* The kind of obj's controller owner, or NULL. */
static const char *controller_kind(json_t *obj)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r) {
		if (json_is_true(json_object_get(r, "controller")))
			return json_string_value(json_object_get(r, "kind"));
	}
	return NULL;
}

const char *kt_app_skip_object(const char *group, const char *resource, json_t *obj)
{
	const char *owner = controller_kind(obj);
	if (json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"),
	                    "kontinuity.io/mover-run"))
		return "a volume mover's temporary object (deleted when its move ends)";
	if (!*group && !strcmp(resource, "pods") && owner)
		return "recreated by its controller (a ReplicaSet, StatefulSet, DaemonSet or Job)";
	if (!strcmp(group, "apps") && !strcmp(resource, "replicasets") && owner &&
	    !strcmp(owner, "Deployment"))
		return "recreated by its Deployment";
	if (!strcmp(group, "batch") && !strcmp(resource, "jobs") && owner &&
	    !strcmp(owner, "CronJob"))
		return "scheduled again by its CronJob";
	if (!*group && !strcmp(resource, "secrets")) {
		const char *type = json_string_value(json_object_get(obj, "type"));
		if (type && !strcmp(type, "kubernetes.io/service-account-token"))
			return "a legacy ServiceAccount token: the token controller mints a new one";
	}
	if (!*group && !strcmp(resource, "configmaps")) {
		const char *name = str_at(obj, "metadata", "name");
		if (name && !strcmp(name, "kube-root-ca.crt"))
			return "published in every namespace by the root CA publisher";
	}
	return NULL;
}

void kt_app_verbs_text(unsigned verbs, char out[96])
{
	static const struct { unsigned bit; const char *name; } v[] = {
		{ KT_KUBE_VERB_CREATE, "create" }, { KT_KUBE_VERB_DELETE, "delete" },
		{ KT_KUBE_VERB_DELETECOLLECTION, "deletecollection" }, { KT_KUBE_VERB_GET, "get" },
		{ KT_KUBE_VERB_LIST, "list" }, { KT_KUBE_VERB_PATCH, "patch" },
		{ KT_KUBE_VERB_UPDATE, "update" }, { KT_KUBE_VERB_WATCH, "watch" },
	};
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (verbs & v[i].bit)
			n += (size_t)snprintf(out + n, 96 - n, "%s%s", n ? " " : "", v[i].name);
}
