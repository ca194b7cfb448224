/*
 * collect.c - the capture walk of an application backup: discovery, then a
 * paged list of every namespaced resource, then the cluster-scoped objects
 * the application depends on (docs/app-backup.md "What a backup takes").
 *
 * Invariants:
 *   1. Objects are handed over one at a time as pages arrive; nothing but
 *      the names needed for the dependency pass (PV names, custom resource
 *      types, ServiceAccount names) is kept.
 *   2. A resource that cannot be listed is reported (KT_APP_NOTE_FAILED) and
 *      skipped: a backup that misses one resource says so instead of
 *      failing as a whole or, worse, silently missing it.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* A growable list of short strings (names kept for the dependency pass). */
typedef struct names {
	char **v;
	size_t n, cap;
} names;

static void names_add(names *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, s->cap * sizeof(*v));
		if (!v)
			abort();
		s->v = v;
	}
	s->v[s->n++] = kt_xstrdup(x);
}

static int names_has(const names *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return 1;
	return 0;
}

static void names_free(names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

typedef struct walk {
	kt_kube *c;
	const kt_app_collect_opts *o;
	kt_app_object_fn fn;
	void *ctx;
	kt_app_collect_stats st;
	const kt_kube_resource *r;    /* the resource being listed */
	names pvs, crds, sas;
	int fn_failed;               /* the caller's callback stopped the walk */
} walk;

static void note(walk *w, kt_app_note_kind k, const char *what, const char *why)
{
	if (k == KT_APP_NOTE_SKIPPED_OBJECT)
		w->st.skipped_objects++;
	else if (k == KT_APP_NOTE_SKIPPED_RESOURCE)
		w->st.skipped_resources++;
	else
		w->st.failed++;
	if (w->o->note)
		w->o->note(w->o->note_ctx, k, what, why);
}

static const char *meta_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
	return s ? s : "";
}

static kt_code on_object(void *ctx, json_t *obj, kt_error *err)
{
	walk *w = ctx;
	const kt_kube_resource *r = w->r;
	const char *why = kt_app_skip_object(r->group, r->resource, obj);
	if (why) {
		char what[600];
		snprintf(what, sizeof(what), "%s/%s", r->resource, meta_str(obj, "name"));
		note(w, KT_APP_NOTE_SKIPPED_OBJECT, what, why);
		return KT_OK;
	}
	if (!*r->group && !strcmp(r->resource, "persistentvolumeclaims")) {
		const char *pv = json_string_value(json_object_get(json_object_get(obj, "spec"),
		                                                   "volumeName"));
		if (pv && *pv)
			names_add(&w->pvs, pv);
	}
	if (!*r->group && !strcmp(r->resource, "serviceaccounts"))
		names_add(&w->sas, meta_str(obj, "name"));
	if (strchr(r->group, '.')) {
		/* Maybe a custom resource: the dependency pass asks for its CRD. */
		char crd[600];
		snprintf(crd, sizeof(crd), "%s.%s", r->resource, r->group);
		names_add(&w->crds, crd);
	}
	w->st.objects++;
	kt_code rc = w->fn(w->ctx, r, obj, err);
	w->fn_failed = rc != KT_OK;
	return rc;
}

/* GET one cluster-scoped object of group/version/resource and hand it over. */
static kt_code take_one(walk *w, const char *group, const char *resource, const char *name,
                        kt_error *err)
{
	const kt_kube_resource *res = NULL;
	char what[600];
	snprintf(what, sizeof(what), "%s%s%s", resource, *group ? "." : "", group);
	kt_code rc = kt_kube_resource_find(w->c, what, &res, err);
	if (rc)
		return rc;
	kt_kube_target t;
	kt_kube_target_of(&t, res, NULL, name);
	json_t *obj = NULL;
	if ((rc = kt_kube_get_object(w->c, &t, &obj, err)))
		return rc;
	if (!json_object_get(obj, "apiVersion")) {
		char av[300];
		snprintf(av, sizeof(av), "%s%s%s", res->group, *res->group ? "/" : "", res->version);
		json_object_set_new(obj, "apiVersion", json_string(av));
		json_object_set_new(obj, "kind", json_string(res->kind));
	}
	w->st.objects++;
	rc = w->fn(w->ctx, res, obj, err);
	json_decref(obj);
	return rc;
}

/* take_one, with a failure other than the callback's noted, not fatal;
 * optional: a missing object is no failure (a group's resources that are
 * built in have no CustomResourceDefinition). */
static kt_code take_dependency(walk *w, const char *group, const char *resource,
                               const char *name, int optional, kt_error *err)
{
	kt_error e;
	kt_error_clear(&e);
	w->fn_failed = 0;
	kt_code rc = take_one(w, group, resource, name, &e);
	if (rc && w->fn_failed) {
		*err = e;
		return rc;
	}
	if (rc == KT_ENOTFOUND && optional)
		return KT_OK;
	if (rc && rc != KT_ECANCELED) {
		char what[600];
		snprintf(what, sizeof(what), "%s/%s", resource, name);
		note(w, KT_APP_NOTE_FAILED, what, e.msg);
		return KT_OK;
	}
	if (rc)
		*err = e;
	return rc;
}

typedef struct rbac_scan {
	walk *w;
	names bindings, roles;
} rbac_scan;

static kt_code on_crb(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	rbac_scan *s = ctx;
	size_t i;
	json_t *sub;
	json_array_foreach(json_object_get(obj, "subjects"), i, sub) {
		const char *kind = json_string_value(json_object_get(sub, "kind"));
		const char *ns = json_string_value(json_object_get(sub, "namespace"));
		const char *name = json_string_value(json_object_get(sub, "name"));
		if (kind && ns && name && !strcmp(kind, "ServiceAccount") &&
		    !strcmp(ns, s->w->o->namespace) && names_has(&s->w->sas, name)) {
			names_add(&s->bindings, meta_str(obj, "name"));
			const char *role = json_string_value(json_object_get(json_object_get(obj,
			                                     "roleRef"), "name"));
			const char *rkind = json_string_value(json_object_get(json_object_get(obj,
			                                      "roleRef"), "kind"));
			if (role && rkind && !strcmp(rkind, "ClusterRole"))
				names_add(&s->roles, role);
			break;
		}
	}
	return KT_OK;
}

static kt_code cluster_rbac(walk *w, kt_error *err)
{
	rbac_scan s = { .w = w };
	kt_kube_target t = { .group = "rbac.authorization.k8s.io", .version = "v1",
	                     .resource = "clusterrolebindings" };
	kt_error e;
	kt_code rc = kt_kube_list(w->c, &t, NULL, on_crb, &s, NULL, &e);
	if (rc == KT_ECANCELED) {
		*err = e;
	} else if (rc) {
		note(w, KT_APP_NOTE_FAILED, "clusterrolebindings", e.msg);
		rc = KT_OK;
	}
	for (size_t i = 0; !rc && i < s.bindings.n; i++)
		rc = take_dependency(w, "rbac.authorization.k8s.io", "clusterrolebindings",
		                     s.bindings.v[i], 0, err);
	for (size_t i = 0; !rc && i < s.roles.n; i++)
		rc = take_dependency(w, "rbac.authorization.k8s.io", "clusterroles", s.roles.v[i], 0,
		                     err);
	names_free(&s.bindings);
	names_free(&s.roles);
	return rc;
}

kt_code kt_app_collect(kt_kube *c, const kt_app_collect_opts *o, kt_app_object_fn fn, void *ctx,
                       kt_app_collect_stats *st, kt_error *err)
{
	if (!o->namespace || !kt_kube_valid_label(o->namespace))
		return kt_error_set(err, KT_EUSAGE, "an application backup needs a valid namespace "
		                    "name, not '%s'", o->namespace ? o->namespace : "");
	const kt_kube_resource *res;
	size_t n_res;
	kt_code rc = kt_kube_discover(c, &res, &n_res, err);
	if (rc)
		return rc;
	walk *w = kt_xcalloc(1, sizeof(*w));
	w->c = c;
	w->o = o;
	w->fn = fn;
	w->ctx = ctx;

	/* The namespace first: it must exist, and restores create it first. */
	rc = take_one(w, "", "namespaces", o->namespace, err);
	if (rc == KT_ENOTFOUND)
		rc = kt_error_set(err, KT_ENOTFOUND, "namespace '%s' does not exist", o->namespace);

	for (size_t i = 0; !rc && i < n_res; i++) {
		const kt_kube_resource *r = &res[i];
		if (!r->namespaced || !r->preferred)
			continue;
		char verbs[96], what[400];
		kt_app_verbs_text(r->verbs, verbs);
		snprintf(what, sizeof(what), "%s%s%s", r->resource, *r->group ? "." : "", r->group);
		const char *why = kt_app_skip_resource(r->group, r->resource, verbs);
		if (why) {
			note(w, KT_APP_NOTE_SKIPPED_RESOURCE, what, why);
			continue;
		}
		w->st.resources++;
		w->r = r;
		kt_kube_target t;
		kt_kube_target_of(&t, r, o->namespace, NULL);
		kt_kube_list_opts lo = { .label_selector = o->selector };
		kt_error e;
		kt_error_clear(&e);
		w->fn_failed = 0;
		rc = kt_kube_list(c, &t, &lo, on_object, w, NULL, &e);
		if (rc && rc != KT_ECANCELED && !w->fn_failed) {
			note(w, KT_APP_NOTE_FAILED, what, e.msg);   /* this resource only */
			rc = KT_OK;
		} else if (rc) {
			*err = e;
		}
	}
	for (size_t i = 0; !rc && i < w->pvs.n; i++)
		rc = take_dependency(w, "", "persistentvolumes", w->pvs.v[i], 0, err);
	for (size_t i = 0; !rc && i < w->crds.n; i++)
		rc = take_dependency(w, "apiextensions.k8s.io", "customresourcedefinitions",
		                     w->crds.v[i], 1, err);
	if (!rc && o->cluster_rbac)
		rc = cluster_rbac(w, err);
	if (st)
		*st = w->st;
	names_free(&w->pvs);
	names_free(&w->crds);
	names_free(&w->sas);
	free(w);
	return rc;
}
