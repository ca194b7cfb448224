/*
 * list.c - paged lists: GET the collection with limit=N, hand each item to
 * the caller, follow metadata.continue until it is empty.
 *
 * Invariants:
 *   1. Memory holds one page: a page is at most max_page bytes on the wire
 *      (KT_ELIMIT past it) and is freed before the next one is read.
 *   2. Items reach the caller in the server's order with apiVersion and
 *      kind filled in (list items come without them).
 *   3. A page request is idempotent and retried like any GET; a 410 on a
 *      continue token (the server's snapshot expired) is reported, not
 *      papered over by restarting: objects would be seen twice.
 */
#include <stdlib.h>
#include <string.h>

#include "kube_int.h"

#define DEFAULT_LIMIT 500u

kt_code kt_kube_list(kt_kube *c, const kt_kube_target *t, const kt_kube_list_opts *o,
                     kt_kube_object_fn fn, void *ctx, kt_kube_list_result *res, kt_error *err)
{
	kt_kube_list_result r;
	char limit[16];
	char *cont = NULL;
	kt_code rc = KT_OK;

	memset(&r, 0, sizeof(r));
	snprintf(limit, sizeof(limit), "%u", o && o->limit ? o->limit : DEFAULT_LIMIT);
	kt_kube_target lt = *t;
	lt.name = NULL;
	for (;;) {
		kt_buf path;
		kt_buf_init(&path, KT_BUF_UNLIMITED);
		rc = kube_target_path(&lt, 0, &path, err);
		if (rc) {
			kt_buf_release(&path);
			break;
		}
		kube_query_add(&path, "limit", limit);
		if (o && o->label_selector && o->label_selector[0])
			kube_query_add(&path, "labelSelector", o->label_selector);
		if (o && o->field_selector && o->field_selector[0])
			kube_query_add(&path, "fieldSelector", o->field_selector);
		if (cont)
			kube_query_add(&path, "continue", cont);
		kube_call k = { .verb = "list", .t = &lt, .method = "GET", .path = path.data,
		                .idempotent = 1, .max_body = o ? o->max_page : 0 };
		json_t *page = NULL;
		long status = 0;
		rc = kube_do(c, &k, &page, &status, err);
		kt_buf_release(&path);
		if (rc == KT_EREMOTE && status == 410 && cont && err) {
			kt_error_set(err, KT_EREMOTE, "cannot list %s%s%s: the continue token of page %u "
			             "expired (410 Gone: the list took longer than the server keeps its "
			             "snapshot; list again from the start, or faster)", t->resource,
			             t->namespace ? " in namespace " : "", t->namespace ? t->namespace : "",
			             r.n_pages + 1);
			err->status = 410;
		}
		if (rc)
			break;
		r.n_pages++;
		json_t *items = json_object_get(page, "items");
		json_t *meta = json_object_get(page, "metadata");
		const char *kind = json_string_value(json_object_get(page, "kind"));
		const char *api = json_string_value(json_object_get(page, "apiVersion"));
		if (!json_is_array(items) && !json_is_null(items) && items) {
			rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: the list of %s has items "
			                  "that are not a list", c->origin, t->resource);
			json_decref(page);
			break;
		}
		/* "ConfigMapList" -> "ConfigMap" for the items. */
		char item_kind[256] = "";
		if (kind && strlen(kind) > 4 && strlen(kind) < sizeof(item_kind) &&
		    !strcmp(kind + strlen(kind) - 4, "List"))
			snprintf(item_kind, sizeof(item_kind), "%.*s", (int)strlen(kind) - 4, kind);
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			if (!json_is_object(it))
				continue;
			if (item_kind[0] && !json_object_get(it, "kind"))
				json_object_set_new(it, "kind", json_string(item_kind));
			if (api && !json_object_get(it, "apiVersion"))
				json_object_set_new(it, "apiVersion", json_string(api));
			r.n_items++;
			rc = fn(ctx, it, err);
			if (rc)
				break;
		}
		const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
		if (rv)
			snprintf(r.resource_version, sizeof(r.resource_version), "%s", rv);
		const char *next = json_string_value(json_object_get(meta, "continue"));
		free(cont);
		cont = next && next[0] ? kt_xstrdup(next) : NULL;
		json_decref(page);
		if (rc || !cont)
			break;
	}
	free(cont);
	if (res)
		*res = r;
	return rc;
}
