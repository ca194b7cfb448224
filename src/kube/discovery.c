/*
 * discovery.c - which groups, versions and resources the server serves,
 * once per client: the aggregated documents (GET /api and /apis asking for
 * apidiscovery.k8s.io/v2 APIGroupDiscoveryList, Kubernetes 1.30+: two
 * requests), else the per-group-version ones (/api/VERSION and
 * /apis/GROUP/VERSION: one request each).
 *
 * Invariants:
 *   1. The answers are kept in c->disc_docs and the kt_kube_resource
 *      strings point into them, so both live until kt_kube_client_free.
 *   2. Subresources ("pods/log") are skipped; a group version that fails
 *      with 503 (an aggregated API server that is down) is skipped, any
 *      other failure fails discovery (no half-filled cache is kept).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kube_int.h"

static const struct {
	const char *name;
	unsigned bit;
} verb_bits[] = {
	{ "get", KT_KUBE_VERB_GET },       { "list", KT_KUBE_VERB_LIST },
	{ "watch", KT_KUBE_VERB_WATCH },   { "create", KT_KUBE_VERB_CREATE },
	{ "update", KT_KUBE_VERB_UPDATE }, { "patch", KT_KUBE_VERB_PATCH },
	{ "delete", KT_KUBE_VERB_DELETE }, { "deletecollection", KT_KUBE_VERB_DELETECOLLECTION },
};

typedef struct dlist {
	kt_kube_resource *v;
	size_t n, cap;
} dlist;

static void add_verbs(kt_kube_resource *d, json_t *verbs);

/* Room for one more resource in l (NULL when out of memory). */
static kt_kube_resource *grow(dlist *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		kt_kube_resource *nv = realloc(l->v, cap * sizeof(*l->v));
		if (!nv)
			return NULL;
		l->v = nv;
		l->cap = cap;
	}
	kt_kube_resource *d = &l->v[l->n++];
	memset(d, 0, sizeof(*d));
	return d;
}

/*
 * Add the resources of an aggregated document (APIGroupDiscoveryList).
 * Returns 1 if doc is one, else 0 (the caller falls back).  Versions come
 * in preference order; a version marked Stale (its aggregated API server
 * is down) is skipped, as kubectl skips it.
 */
static int add_aggregated(kt_kube *c, dlist *l, json_t *doc, kt_error *err, kt_code *rc)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	*rc = KT_OK;
	if (!kind || strcmp(kind, "APIGroupDiscoveryList"))
		return 0;
	size_t i, j, r;
	json_t *g, *v, *res;
	json_array_foreach(json_object_get(doc, "items"), i, g) {
		const char *gname = json_string_value(
			json_object_get(json_object_get(g, "metadata"), "name"));
		if (!gname)
			gname = "";
		if (strlen(gname) > 253 || strchr(gname, '/'))
			continue;
		json_array_foreach(json_object_get(g, "versions"), j, v) {
			const char *ver = json_string_value(json_object_get(v, "version"));
			const char *fresh = json_string_value(json_object_get(v, "freshness"));
			if (!ver || strlen(ver) > 60 || strchr(ver, '/'))
				continue;
			if (fresh && !strcmp(fresh, "Stale")) {
				kt_log(KT_LOG_WARN, "discovery: skipping %s%s%s: its API server is not "
				       "answering", gname, gname[0] ? "/" : "", ver);
				continue;
			}
			json_array_foreach(json_object_get(v, "resources"), r, res) {
				const char *name = json_string_value(json_object_get(res, "resource"));
				const char *rk = json_string_value(
					json_object_get(json_object_get(res, "responseKind"), "kind"));
				if (!name || !rk || strchr(name, '/'))
					continue;
				kt_kube_resource *d = grow(l);
				if (!d) {
					*rc = kt_error_set(err, KT_ENOMEM, "out of memory in discovery");
					return 1;
				}
				d->group = gname;
				d->version = ver;
				d->resource = name;
				d->kind = rk;
				const char *scope = json_string_value(json_object_get(res, "scope"));
				d->namespaced = scope && !strcmp(scope, "Namespaced");
				d->preferred = j == 0;
				add_verbs(d, json_object_get(res, "verbs"));
			}
		}
	}
	(void)c;
	return 1;
}

/* Add the resources of one APIResourceList. */
static kt_code add_list(kt_kube *c, dlist *l, const char *group, const char *version,
                        int preferred, json_t *doc, const char *path, kt_error *err)
{
	json_t *res = json_object_get(doc, "resources");
	if (!json_is_array(res))
		return kt_error_set(err, KT_EPROTO, "kube-apiserver %s: GET %s: no resources list",
		                    c->origin, path);
	size_t i;
	json_t *r;
	json_array_foreach(res, i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *kind = json_string_value(json_object_get(r, "kind"));
		if (!name || !kind || strchr(name, '/'))
			continue; /* subresource, or not a resource we can name */
		kt_kube_resource *d = grow(l);
		if (!d)
			return kt_error_set(err, KT_ENOMEM, "out of memory in discovery");
		d->group = group;
		d->version = version;
		d->resource = name;
		d->kind = kind;
		d->namespaced = json_is_true(json_object_get(r, "namespaced"));
		d->preferred = preferred;
		add_verbs(d, json_object_get(r, "verbs"));
	}
	return KT_OK;
}

#define AGGREGATED "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList," \
                   "application/json"

static void add_verbs(kt_kube_resource *d, json_t *verbs)
{
	size_t k;
	json_t *vb;
	json_array_foreach(verbs, k, vb) {
		const char *s = json_string_value(vb);
		for (size_t b = 0; s && b < sizeof(verb_bits) / sizeof(*verb_bits); b++)
			if (!strcmp(s, verb_bits[b].name))
				d->verbs |= verb_bits[b].bit;
	}
}

/* GET path and keep the answer; *skipped = 1 on a 503. */
static kt_code fetch(kt_kube *c, const char *path, const char *accept, json_t **out,
                     int *skipped, kt_error *err)
{
	long status = 0;
	kube_call k = { .verb = NULL, .method = "GET", .path = path, .idempotent = 1,
	                .accept = accept };
	*out = NULL;
	*skipped = 0;
	kt_code rc = kube_do(c, &k, out, &status, err);
	if (rc && status == 503) {
		kt_log(KT_LOG_WARN, "discovery: skipping %s: %s", path, err ? err->msg : "503");
		*skipped = 1;
		return KT_OK;
	}
	if (rc == KT_OK)
		json_array_append_new(c->disc_docs, *out);
	return rc;
}

void kt_kube_discovery_forget(kt_kube *c)
{
	c->disc_done = 0;
	free(c->res);
	c->res = NULL;
	c->n_res = 0;
	json_decref(c->disc_docs);
	c->disc_docs = NULL;
}

kt_code kt_kube_discover(kt_kube *c, const kt_kube_resource **out, size_t *n_out,
                         kt_error *err)
{
	if (c->disc_done) {
		*out = c->res;
		*n_out = c->n_res;
		return KT_OK;
	}
	dlist l = { 0 };
	json_t *doc;
	int skipped;
	char path[600];
	json_decref(c->disc_docs);
	c->disc_docs = json_array();

	kt_code rc = fetch(c, "/api", AGGREGATED, &doc, &skipped, err);
	int agg = rc == KT_OK && doc && add_aggregated(c, &l, doc, err, &rc);
	size_t i, j;
	json_t *v;
	json_array_foreach(rc == KT_OK && doc && !agg ? json_object_get(doc, "versions") : NULL, i,
	                   v) {
		const char *ver = json_string_value(v);
		if (!ver || strlen(ver) > 60 || strchr(ver, '/'))
			continue;
		json_t *rl;
		snprintf(path, sizeof(path), "/api/%s", ver);
		rc = fetch(c, path, NULL, &rl, &skipped, err);
		if (rc == KT_OK && !skipped)
			rc = add_list(c, &l, "", ver, i == 0, rl, path, err);
		if (rc)
			break;
	}
	if (rc == KT_OK)
		rc = fetch(c, "/apis", AGGREGATED, &doc, &skipped, err);
	agg = rc == KT_OK && doc && add_aggregated(c, &l, doc, err, &rc);
	json_t *g;
	json_array_foreach(rc == KT_OK && doc && !agg ? json_object_get(doc, "groups") : NULL, i,
	                   g) {
		const char *gname = json_string_value(json_object_get(g, "name"));
		const char *pref = json_string_value(
			json_object_get(json_object_get(g, "preferredVersion"), "version"));
		if (!gname || strlen(gname) > 253 || strchr(gname, '/'))
			continue;
		json_array_foreach(json_object_get(g, "versions"), j, v) {
			const char *ver = json_string_value(json_object_get(v, "version"));
			if (!ver || strlen(ver) > 60 || strchr(ver, '/'))
				continue;
			json_t *rl;
			snprintf(path, sizeof(path), "/apis/%s/%s", gname, ver);
			rc = fetch(c, path, NULL, &rl, &skipped, err);
			if (rc == KT_OK && !skipped)
				rc = add_list(c, &l, gname, ver, pref && !strcmp(pref, ver), rl, path, err);
			if (rc)
				break;
		}
		if (rc)
			break;
	}
	if (rc) {
		free(l.v);
		json_decref(c->disc_docs);
		c->disc_docs = NULL;
		return rc;
	}
	c->res = l.v;
	c->n_res = l.n;
	c->disc_done = 1;
	*out = c->res;
	*n_out = c->n_res;
	return KT_OK;
}

/* Does r answer to name (plural, kind, or kind lowercased)? */
static int names(const kt_kube_resource *r, const char *name, size_t n)
{
	return (strlen(r->resource) == n && !strncmp(r->resource, name, n)) ||
	       (strlen(r->kind) == n && !strncasecmp(r->kind, name, n));
}

kt_code kt_kube_resource_find(kt_kube *c, const char *what, const kt_kube_resource **out,
                              kt_error *err)
{
	const kt_kube_resource *all;
	size_t n_all;
	kt_code rc = kt_kube_discover(c, &all, &n_all, err);
	if (rc)
		return rc;
	if (!what || !what[0])
		return kt_error_set(err, KT_EUSAGE, "kube: no resource named");
	size_t nlen = strcspn(what, ".");
	const char *group = what[nlen] ? what + nlen + 1 : NULL;
	const kt_kube_resource *best = NULL;
	int best_score = -1;
	for (size_t i = 0; i < n_all; i++) {
		const kt_kube_resource *r = &all[i];
		if (!names(r, what, nlen) || (group && strcmp(r->group, group)))
			continue;
		/* preferred version first, then the core group (as kubectl does) */
		int score = (r->preferred ? 2 : 0) + (r->group[0] ? 0 : 1);
		if (score > best_score) {
			best = r;
			best_score = score;
		}
	}
	if (!best)
		return kt_error_set(err, KT_ENOTFOUND, "kube-apiserver %s serves no resource '%.200s' "
		                    "(is the CRD installed? names are plural resources or kinds, "
		                    "optionally with .GROUP)", c->origin, what);
	*out = best;
	return KT_OK;
}
