/*
 * apply.c - create sanitized objects in a cluster in restore order
 * (docs/app-backup.md "Restore order"), with a report line per object.
 *
 * Invariants:
 *   1. Tier by tier: every object of a tier is submitted before the next
 *      tier starts; CustomResourceDefinitions created in tier 0 are waited
 *      for (Established) and the client's discovery is read again, so the
 *      caller's client knows the new kinds afterwards too.
 *   2. One object's failure never stops the others; it is reported with the
 *      API server's reason and counted.
 *   3. A dry run only reads (GET per object) and reports what it would do.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"

const char *kt_app_outcome_name(kt_app_outcome o)
{
	static const char *const names[] = { "created", "updated", "skipped", "failed",
		                             "would-create", "would-update", "would-skip" };
	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "?";
}

static const char *str(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	const char *s = json_string_value(v);
	return s ? s : "";
}

/* "apps" of "apps/v1", "" of "v1". */
static void group_of(const char *api, char *out, size_t cap)
{
	const char *slash = strrchr(api, '/');
	snprintf(out, cap, "%.*s", slash ? (int)(slash - api) : 0, api);
}

static int tier_of(json_t *obj)
{
	char group[256];
	group_of(str(obj, "apiVersion", NULL), group, sizeof(group));
	return kt_app_tier(group, str(obj, "kind", NULL));
}

static int cmp_objects(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int tx = tier_of(x), ty = tier_of(y);
	if (tx != ty)
		return tx < ty ? -1 : 1;
	int k = strcmp(str(x, "kind", NULL), str(y, "kind", NULL));
	return k ? k : strcmp(str(x, "metadata", "name"), str(y, "metadata", "name"));
}

static int listed(const char *const *kinds, const char *kind)
{
	for (size_t i = 0; kinds && kinds[i]; i++)
		if (!strcasecmp(kinds[i], kind))
			return 1;
	return 0;
}

/* Wait until CRD crd is Established, then until discovery (asked again)
 * serves its kind. */
static kt_code wait_crd(kt_kube *c, json_t *crd, int64_t wait_ms, kt_error *err)
{
	const char *name = str(crd, "metadata", "name");
	kt_kube_target t = { .group = "apiextensions.k8s.io", .version = "v1",
	                     .resource = "customresourcedefinitions", .name = name };
	int64_t deadline = kt_now_ms() + wait_ms;
	for (;;) {
		json_t *o = NULL;
		kt_code rc = kt_kube_get_object(c, &t, &o, err);
		if (rc)
			return rc;
		int ok = 0;
		size_t i;
		json_t *cond;
		json_array_foreach(json_object_get(json_object_get(o, "status"), "conditions"), i,
		                   cond) {
			if (!strcmp(str(cond, "type", NULL), "Established") &&
			    !strcmp(str(cond, "status", NULL), "True"))
				ok = 1;
		}
		json_decref(o);
		if (ok)
			break;
		if (kt_now_ms() > deadline)
			return kt_error_set(err, KT_ETRANSIENT, "CustomResourceDefinition '%s' is not "
			                    "Established after %.0f s", name, (double)wait_ms / 1000.0);
		kt_sleep_ms(200);
	}
	char what[600];
	snprintf(what, sizeof(what), "%s.%s", str(json_object_get(crd, "spec"), "names", "kind"),
	         str(crd, "spec", "group"));
	for (;;) {
		kt_kube_discovery_forget(c);
		const kt_kube_resource *r;
		kt_error e;
		if (kt_kube_resource_find(c, what, &r, &e) == KT_OK)
			return KT_OK;
		if (kt_now_ms() > deadline)
			return kt_error_set(err, KT_ETRANSIENT, "the API server does not serve '%s' "
			                    "after its CustomResourceDefinition was Established", what);
		kt_sleep_ms(300);
	}
}

typedef struct run {
	const kt_app_apply_opts *o;
	kt_app_apply_stats st;
} run;

void kt_app_report(const kt_app_apply_opts *o, kt_app_apply_stats *st, const char *kind,
                   const char *ns, const char *name, kt_app_outcome out, const char *detail)
{
	switch (out) {
	case KT_APP_CREATED: case KT_APP_WOULD_CREATE: st->created++; break;
	case KT_APP_UPDATED: case KT_APP_WOULD_UPDATE: st->updated++; break;
	case KT_APP_FAILED: st->failed++; break;
	default: st->skipped++; break;
	}
	if (o->report)
		o->report(o->ctx, kind, ns, name, out, detail);
}

static void report(run *r, json_t *obj, kt_app_outcome out, const char *detail)
{
	kt_app_report(r->o, &r->st, str(obj, "kind", NULL), str(obj, "metadata", "namespace"),
	              str(obj, "metadata", "name"), out, detail);
}

/* Apply one object; only cancellation is returned as an error. */
static kt_code apply_one(kt_kube *c, run *r, json_t *obj, int *created_crd)
{
	const char *kind = str(obj, "kind", NULL);
	const char *ns = str(obj, "metadata", "namespace");
	const char *name = str(obj, "metadata", "name");
	char group[256], what[600];
	group_of(str(obj, "apiVersion", NULL), group, sizeof(group));
	snprintf(what, sizeof(what), "%s%s%s", kind, *group ? "." : "", group);
	kt_error e;
	kt_error_clear(&e);
	const kt_kube_resource *res;
	if (kt_kube_resource_find(c, what, &res, &e)) {
		report(r, obj, KT_APP_FAILED, e.msg);
		return KT_OK;
	}
	kt_kube_target t;
	kt_kube_target_of(&t, res, res->namespaced ? ns : NULL, name);
	const kt_app_apply_opts *o = r->o;
	if (o->dry_run) {
		json_t *cur = NULL;
		kt_code rc = kt_kube_get_object(c, &t, &cur, &e);
		json_decref(cur);
		if (rc == KT_OK)
			report(r, obj, o->update_existing ? KT_APP_WOULD_UPDATE : KT_APP_WOULD_SKIP,
			       "exists");
		else if (rc == KT_ENOTFOUND)
			report(r, obj, KT_APP_WOULD_CREATE, "");
		else if (rc == KT_ECANCELED)
			return rc;
		else
			report(r, obj, KT_APP_FAILED, e.msg);
		return KT_OK;
	}
	kt_kube_target coll = t;
	coll.name = NULL;
	kt_code rc = kt_kube_create(c, &coll, obj, NULL, &e);
	if (rc == KT_OK) {
		*created_crd |= !strcmp(kind, "CustomResourceDefinition");
		report(r, obj, KT_APP_CREATED, "");
		return KT_OK;
	}
	if (rc == KT_ECANCELED)
		return rc;
	if (rc != KT_EEXIST) {
		report(r, obj, KT_APP_FAILED, e.msg);
		return KT_OK;
	}
	if (!o->update_existing) {
		report(r, obj, KT_APP_SKIPPED, "exists");
		return KT_OK;
	}
	char *body = json_dumps(obj, JSON_COMPACT);
	kt_kube_patch_opts po = { .field_manager = "kontinuity-restore", .force = 1 };
	rc = kt_kube_patch(c, &t, KT_KUBE_PATCH_APPLY, body, strlen(body), &po, NULL, &e);
	free(body);
	if (rc == KT_ECANCELED)
		return rc;
	report(r, obj, rc ? KT_APP_FAILED : KT_APP_UPDATED, rc ? e.msg : "");
	return KT_OK;
}

kt_code kt_app_apply(kt_kube *c, json_t *objects, const kt_app_apply_opts *o,
                     kt_app_apply_stats *st, kt_error *err)
{
	size_t n = json_array_size(objects);
	json_t **v = kt_xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(objects, i));
	qsort(v, n, sizeof(*v), cmp_objects);
	json_array_clear(objects);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(objects, v[i]);
	free(v);

	run r = { .o = o };
	kt_code rc = KT_OK;
	int64_t wait_ms = o->wait_ms ? o->wait_ms : 60000;
	for (size_t i = 0; i < n && !rc; i++) {
		json_t *obj = json_array_get(objects, i);
		const char *kind = str(obj, "kind", NULL);
		if ((o->include_kinds && !listed(o->include_kinds, kind)) ||
		    listed(o->exclude_kinds, kind)) {
			report(&r, obj, o->dry_run ? KT_APP_WOULD_SKIP : KT_APP_SKIPPED,
			       "excluded by --include-kinds/--exclude-kinds");
			continue;
		}
		int created_crd = 0;
		rc = apply_one(c, &r, obj, &created_crd);
		if (!rc && created_crd) {
			kt_error e;
			kt_error_clear(&e);
			if ((rc = wait_crd(c, obj, wait_ms, &e)) && rc != KT_ECANCELED) {
				report(&r, obj, KT_APP_FAILED, e.msg);
				rc = KT_OK;
			} else if (rc) {
				*err = e;
			}
		}
	}
	if (st)
		*st = r.st;
	if (rc == KT_ECANCELED)
		return kt_error_set(err, KT_ECANCELED, "restore interrupted");
	if (!rc && r.st.failed)
		return kt_error_set(err, KT_EREMOTE, "%u of %zu objects failed (see the report)",
		                    r.st.failed, n);
	return rc;
}
