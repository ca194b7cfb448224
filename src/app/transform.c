/*
 * transform.c - clean a captured object for creating it again, and map it to
 * another namespace (docs/app-backup.md "What a restore drops or
 * rewrites").  Every function works on the jansson tree in place and is
 * idempotent: sanitizing twice gives what sanitizing once gave.
 */
#include <string.h>

#include "app.h"

static const char *const dropped_metadata[] = {
	"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
	"deletionGracePeriodSeconds", "managedFields", "selfLink", "ownerReferences",
};

/* Annotations that controllers write; prefixes end with '/'. */
static const char *const dropped_annotations[] = {
	"deployment.kubernetes.io/revision", "pv.kubernetes.io/", "volume.kubernetes.io/",
	"volume.beta.kubernetes.io/", "control-plane.alpha.kubernetes.io/leader",
};

static const char *const job_generated_labels[] = {
	"controller-uid", "batch.kubernetes.io/controller-uid", "job-name",
	"batch.kubernetes.io/job-name",
};

static int annotation_dropped(const char *key)
{
	for (size_t i = 0; i < sizeof(dropped_annotations) / sizeof(dropped_annotations[0]); i++) {
		const char *d = dropped_annotations[i];
		size_t n = strlen(d);
		if (d[n - 1] == '/' ? !strncmp(key, d, n) : !strcmp(key, d))
			return 1;
	}
	return 0;
}

static void drop_annotations(json_t *meta)
{
	json_t *ann = json_object_get(meta, "annotations");
	if (!json_is_object(ann))
		return;
	const char *key;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(ann, tmp, key, v) {
		if (annotation_dropped(key))
			json_object_del(ann, key);
	}
	if (json_object_size(ann) == 0)
		json_object_del(meta, "annotations");
}

/* Set obj.key = to when it is a string equal to from. */
static void remap(json_t *obj, const char *key, const char *from, const char *to)
{
	const char *v = json_string_value(json_object_get(obj, key));
	if (v && !strcmp(v, from))
		json_object_set_new(obj, key, json_string(to));
}

static void fix_service(json_t *spec, int keep_node_ports)
{
	const char *ip = json_string_value(json_object_get(spec, "clusterIP"));
	if (!(ip && !strcmp(ip, "None"))) {
		json_object_del(spec, "clusterIP");
		json_object_del(spec, "clusterIPs");
	} else {
		json_object_set_new(spec, "clusterIPs", json_pack("[s]", "None"));
	}
	json_object_del(spec, "healthCheckNodePort");
	if (!keep_node_ports) {
		size_t i;
		json_t *p;
		json_array_foreach(json_object_get(spec, "ports"), i, p)
			json_object_del(p, "nodePort");
	}
}

static void fix_pvc(json_t *obj, json_t *spec, const kt_app_map *m)
{
	json_object_del(spec, "volumeName");
	if (!m || !m->snapshot_of)
		return;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
	                                                     "name"));
	const char *snap = name ? m->snapshot_of(m->ctx, name) : NULL;
	if (!snap)
		return;
	json_t *src = json_pack("{s:s, s:s, s:s}", "apiGroup", "snapshot.storage.k8s.io", "kind",
	                        "VolumeSnapshot", "name", snap);
	json_object_set_new(spec, "dataSource", json_deep_copy(src));
	json_object_set_new(spec, "dataSourceRef", src);
}

static void fix_job(json_t *spec)
{
	if (json_is_true(json_object_get(spec, "manualSelector")))
		return;
	json_object_del(spec, "selector");
	json_t *labels = json_object_get(json_object_get(json_object_get(spec, "template"),
	                                                 "metadata"), "labels");
	for (size_t i = 0; i < sizeof(job_generated_labels) / sizeof(job_generated_labels[0]); i++)
		json_object_del(labels, job_generated_labels[i]);
}

static void fix_service_account(json_t *obj)
{
	/* Token Secrets are not restored (capture.c); references to them would
	 * dangle.  Without their types, drop the entries the token controller
	 * names "<sa>-token-<suffix>". */
	json_t *secrets = json_object_get(obj, "secrets");
	const char *sa = json_string_value(json_object_get(json_object_get(obj, "metadata"),
	                                                   "name"));
	if (!json_is_array(secrets) || !sa)
		return;
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%s-token-", sa);
	for (size_t i = json_array_size(secrets); i-- > 0;) {
		const char *n = json_string_value(json_object_get(json_array_get(secrets, i), "name"));
		if (n && !strncmp(n, prefix, strlen(prefix)))
			json_array_remove(secrets, i);
	}
	if (json_array_size(secrets) == 0)
		json_object_del(obj, "secrets");
}

static void map_subjects(json_t *obj, const char *from, const char *to)
{
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(obj, "subjects"), i, s)
		remap(s, "namespace", from, to);
}

/* The release inside a Helm record names its namespace (helm.c).  One that
 * cannot be rewritten is restored as it was: Helm still finds it by the
 * Secret's namespace and labels, only its own namespace field is stale. */
static void map_helm_release(json_t *obj, const char *name, const char *from, const char *to)
{
	kt_error e;
	int changed;
	kt_error_clear(&e);
	if (kt_app_helm_map_release(obj, from, to, &changed, &e))
		kt_log(KT_LOG_WARN, "helm release record %s: namespace inside left as '%s': %s",
		       name, from, e.msg);
}

kt_code kt_app_sanitize(json_t *obj, const kt_app_map *m, kt_error *err)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	if (!json_is_object(obj) || !json_is_object(meta) || !kind || !api || !name || !*name)
		return kt_error_set(err, KT_EUSAGE, "not a Kubernetes object (apiVersion, kind and "
		                    "metadata.name are required)");
	for (size_t i = 0; i < sizeof(dropped_metadata) / sizeof(dropped_metadata[0]); i++)
		json_object_del(meta, dropped_metadata[i]);
	json_object_del(obj, "status");
	drop_annotations(meta);

	int core = !strchr(api, '/');
	json_t *spec = json_object_get(obj, "spec");
	if (core && !strcmp(kind, "Service") && json_is_object(spec))
		fix_service(spec, m && m->keep_node_ports);
	else if (core && !strcmp(kind, "PersistentVolumeClaim") && json_is_object(spec))
		fix_pvc(obj, spec, m);
	else if (core && !strcmp(kind, "Pod") && json_is_object(spec))
		json_object_del(spec, "nodeName");
	else if (!strncmp(api, "batch/", 6) && !strcmp(kind, "Job") && json_is_object(spec))
		fix_job(spec);
	else if (core && !strcmp(kind, "ServiceAccount"))
		fix_service_account(obj);

	const char *from = m ? m->from_ns : NULL;
	const char *to = m && m->to_ns ? m->to_ns : from;
	if (from && to) {
		if (json_object_get(meta, "namespace"))
			json_object_set_new(meta, "namespace", json_string(to));
		if (core && !strcmp(kind, "Namespace") && !strcmp(name, from))
			json_object_set_new(meta, "name", json_string(to));
		if (!strncmp(api, "rbac.authorization.k8s.io/", 26) &&
		    (!strcmp(kind, "RoleBinding") || !strcmp(kind, "ClusterRoleBinding")))
			map_subjects(obj, from, to);
		remap(json_object_get(meta, "annotations"), "meta.helm.sh/release-namespace", from,
		      to);
		map_helm_release(obj, name, from, to);
	}
	return KT_OK;
}
