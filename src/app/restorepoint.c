/*
 * restorepoint.c - application restore points in the repository: the
 * capture walk's objects written through kt_archive_writer (encrypted and
 * deduplicated like every file; Secrets never touch the local disk), then a
 * manifest; and the way back: manifest, objects, sanitize, apply.
 *
 * Layout of a restore point (a repository snapshot tagged "app" and
 * "ns=NAMESPACE", host = the cluster's identity; docs/app-backup.md):
 *   objects/GROUP/RESOURCE/NAMESPACE/NAME.json   the object as the API
 *                                                 server returned it
 *   manifest.json                                 what the restore point
 *                                                 holds (below)
 * GROUP is "core" for the core group, NAMESPACE "_cluster" for
 * cluster-scoped objects.  The manifest: {"format": "kontinuity restore
 * point", "version": 1, "namespace", "selector", "cluster", "time",
 * "objects": [{"group", "version", "resource", "kind", "namespace", "name",
 * "path"}], "skipped": [{"what", "why"}], "failed": [{"what", "why"}],
 * "counts": {...}, "durationMs"}.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "archive/archive.h"

#define MANIFEST "manifest.json"
#define FORMAT "kontinuity restore point"
#define MAX_OBJECT (64u << 20)

typedef struct bk {
	kt_archive_writer *w;
	const kt_app_backup_opts *o;
	json_t *objects, *skipped, *failed;
	uint64_t bytes;
} bk;

static void on_note(void *ctx, kt_app_note_kind k, const char *what, const char *why)
{
	bk *b = ctx;
	if (k != KT_APP_NOTE_SKIPPED_RESOURCE)
		json_array_append_new(k == KT_APP_NOTE_FAILED ? b->failed : b->skipped,
		                      json_pack("{s:s, s:s}", "what", what, "why", why));
	if (b->o->note)
		b->o->note(b->o->note_ctx, k, what, why);
}

static kt_code on_object(void *ctx, const kt_kube_resource *r, json_t *obj, kt_error *err)
{
	bk *b = ctx;
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	if (!name)
		return kt_error_set(err, KT_EPROTO, "the API server listed a %s without a name",
		                    r->resource);
	char path[1200];
	snprintf(path, sizeof(path), "objects/%s/%s/%s/%s.json", *r->group ? r->group : "core",
	         r->resource, ns ? ns : "_cluster", name);
	char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return kt_error_set(err, KT_ENOMEM, "cannot encode %s/%s", r->resource, name);
	size_t n = strlen(text);
	kt_code c = kt_archive_writer_add(b->w, path, text, n, 0600, err);
	free(text);
	if (c)
		return c;
	b->bytes += n;
	json_array_append_new(b->objects, json_pack("{s:s, s:s, s:s, s:O*, s:s*, s:s, s:s}",
	                      "group", r->group, "version", r->version, "resource", r->resource,
	                      "kind", json_object_get(obj, "kind"), "namespace", ns, "name", name,
	                      "path", path));
	if (b->o->progress)
		b->o->progress(b->o->progress_ctx, json_array_size(b->objects), b->bytes);
	return KT_OK;
}

kt_code kt_app_backup(kt_kube *c, kt_archive *a, const kt_app_backup_opts *o,
                      kt_app_backup_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	char *cluster = NULL;
	kt_code rc = KT_OK;
	if (!o->cluster && (rc = kt_kube_namespace_uid(c, "kube-system", &cluster, err)))
		return rc;
	bk b = { .o = o, .objects = json_array(), .skipped = json_array(),
	         .failed = json_array() };
	if (!(rc = kt_archive_writer_begin(a, 0, &b.w, err))) {
		kt_app_collect_opts co = { .namespace = o->namespace, .selector = o->selector,
		                           .cluster_rbac = o->cluster_rbac, .note = on_note,
		                           .note_ctx = &b };
		rc = kt_app_collect(c, &co, on_object, &b, &res->st, err);
	}
	char time_iso[40];
	kt_time_iso(time_iso, sizeof(time_iso));
	if (!rc) {
		json_t *m = json_pack("{s:s, s:i, s:s, s:s*, s:s, s:s, s:O, s:O, s:O, "
		                      "s:{s:I, s:I, s:I, s:i, s:i}, s:I}",
		                      "format", FORMAT, "version", 1, "namespace", o->namespace,
		                      "selector", o->selector, "cluster", o->cluster ? o->cluster
		                                                                  : cluster,
		                      "time", time_iso, "objects", b.objects, "skipped", b.skipped,
		                      "failed", b.failed, "counts", "objects",
		                      (json_int_t)res->st.objects, "skippedObjects",
		                      (json_int_t)res->st.skipped_objects, "failed",
		                      (json_int_t)res->st.failed, "resources", res->st.resources,
		                      "skippedResources", res->st.skipped_resources, "durationMs",
		                      (json_int_t)(kt_now_ms() - start));
		char *text = json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS);
		json_decref(m);
		rc = text ? kt_archive_writer_add(b.w, MANIFEST, text, strlen(text), 0600, err)
		          : kt_error_set(err, KT_ENOMEM, "cannot encode the manifest");
		free(text);
	}
	if (!rc) {
		char tag_ns[300], path[300];
		snprintf(tag_ns, sizeof(tag_ns), "ns=%s", o->namespace);
		snprintf(path, sizeof(path), "app/%s", o->namespace);
		const char *tags[] = { KT_APP_TAG, tag_ns, NULL };
		const char *paths[] = { path };
		kt_archive_backup_opts bo = { .hostname = o->cluster ? o->cluster : cluster,
		                              .tags = tags };
		kt_archive_backup_result br;
		if (!(rc = kt_archive_writer_commit(b.w, &bo, paths, 1, &br, err))) {
			memcpy(res->id, br.snapshot_id, sizeof(res->id));
			res->bytes = b.bytes;
			res->bytes_new = br.bytes_new;
		}
	}
	kt_archive_writer_free(b.w);
	json_decref(b.objects);
	json_decref(b.skipped);
	json_decref(b.failed);
	free(cluster);
	res->duration_ms = kt_now_ms() - start;
	return rc;
}

/* ---- restore ---------------------------------------------------------- */

kt_code kt_app_restore(kt_kube *c, kt_archive *a, const char *id, const kt_app_restore_opts *o,
                       kt_app_apply_stats *st, kt_error *err)
{
	kt_buf buf;
	kt_buf_init(&buf, MAX_OBJECT);
	kt_code rc = kt_archive_read_file(a, id, MANIFEST, &buf, err);
	json_t *m = NULL;
	if (!rc) {
		json_error_t je;
		m = json_loadb(buf.data, buf.len, 0, &je);
		const char *format = json_string_value(json_object_get(m, "format"));
		if (!m || !format || strcmp(format, FORMAT) ||
		    json_integer_value(json_object_get(m, "version")) != 1)
			rc = kt_error_set(err, KT_ECORRUPT, "snapshot %.8s is not a restore point this "
			                  "kontinuity reads (its manifest.json is not version 1)", id);
	} else if (rc == KT_ENOTFOUND) {
		rc = kt_error_set(err, KT_EUSAGE, "snapshot %.8s is not a restore point (no "
		                  "manifest.json): use 'kontinuity repo restore' for file snapshots",
		                  id);
	}
	const char *from = json_string_value(json_object_get(m, "namespace"));
	if (!rc && (!from || !kt_kube_valid_label(from)))
		rc = kt_error_set(err, KT_ECORRUPT, "restore point %.8s names no valid namespace", id);
	json_t *objects = json_array();
	kt_app_map map = { .from_ns = from, .to_ns = o->to_namespace ? o->to_namespace : from,
	                   .keep_node_ports = o->keep_node_ports };
	size_t i;
	json_t *e;
	json_array_foreach(rc ? NULL : json_object_get(m, "objects"), i, e) {
		const char *resource = json_string_value(json_object_get(e, "resource"));
		const char *group = json_string_value(json_object_get(e, "group"));
		const char *path = json_string_value(json_object_get(e, "path"));
		if (!resource || !group || !path) {
			rc = kt_error_set(err, KT_ECORRUPT, "restore point %.8s: object %zu of the "
			                  "manifest lacks group, resource or path", id, i);
			break;
		}
		if (!*group && !strcmp(resource, "persistentvolumes"))
			continue;   /* volumes are provisioned anew from their snapshots */
		kt_buf_reset(&buf);
		if ((rc = kt_archive_read_file(a, id, path, &buf, err)))
			break;
		json_error_t je;
		json_t *obj = json_loadb(buf.data, buf.len, 0, &je);
		if (!obj) {
			rc = kt_error_set(err, KT_ECORRUPT, "restore point %.8s: '%s' is not JSON (%s)",
			                  id, path, je.text);
			break;
		}
		if ((rc = kt_app_sanitize(obj, &map, err))) {
			kt_error_wrap(err, "restore point %.8s: '%s'", id, path);
			json_decref(obj);
			break;
		}
		json_array_append_new(objects, obj);
	}
	kt_buf_release(&buf);
	if (!rc)
		rc = kt_app_apply(c, objects, &o->apply, st, err);
	json_decref(objects);
	json_decref(m);
	return rc;
}
