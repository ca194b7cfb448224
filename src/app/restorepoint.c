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
 * "path"}], "volumes": [{"pvc", "snapshot", "content", "snapshotHandle",
 * "driver", "class", "restoreSize"}], "skipped": [{"what", "why"}],
 * "failed": [{"what", "why"}], "counts": {...}, "durationMs"}.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <strings.h>

#include "app.h"
#include "archive/archive.h"
#include "volsnap/volsnap.h"

#define MANIFEST "manifest.json"
#define FORMAT "kontinuity restore point"
#define MAX_OBJECT (64u << 20)

typedef struct bk {
	kt_archive_writer *w;
	kt_archive *a;
	const kt_app_backup_opts *o;
	json_t *objects, *skipped, *failed, *volumes;
	json_t *pvcs;                /* names of the captured PVCs */
	uint64_t bytes;
	const char *cluster;
	char run[17];                /* this run's mover id (tag rp=) */
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
	if (!*r->group && !strcmp(r->resource, "persistentvolumeclaims"))
		json_array_append_new(b->pvcs, json_string(name));
	json_array_append_new(b->objects, json_pack("{s:s, s:s, s:s, s:O*, s:s*, s:s, s:s}",
	                      "group", r->group, "version", r->version, "resource", r->resource,
	                      "kind", json_object_get(obj, "kind"), "namespace", ns, "name", name,
	                      "path", path));
	if (b->o->progress)
		b->o->progress(b->o->progress_ctx, json_array_size(b->objects), b->bytes);
	return KT_OK;
}

/* A crash-consistent CSI snapshot of every captured PVC, waited for; each
 * outcome recorded (a failure is a failure of the restore point: that
 * volume's data is not kept). */
static kt_code snapshot_volumes(kt_kube *c, bk *b, kt_app_backup_result *res)
{
	const kt_app_backup_opts *o = b->o;
	size_t i;
	json_t *v;
	json_array_foreach(b->pvcs, i, v) {
		const char *pvc = json_string_value(v);
		kt_vs_info info;
		kt_error e;
		kt_error_clear(&e);
		/* Named PVC-yyyymmddhhmmss-XXXX: two restore points within a second
		 * (a fast schedule) must not collide. */
		char snap_name[254], stamp[20];
		unsigned char rnd[2];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		RAND_bytes(rnd, sizeof(rnd));
		snprintf(snap_name, sizeof(snap_name), "%.200s-%.14s-%02x%02x", pvc, stamp,
		         (unsigned)rnd[0], (unsigned)rnd[1]);
		kt_vs_create_opts co = { .namespace = o->namespace, .pvc = pvc, .name = snap_name };
		kt_code rc = kt_vs_create(c, &co, &info, &e);
		if (!rc)
			rc = kt_vs_wait_ready(c, info.namespace, info.name, o->snapshot_timeout_ms ?
			                      o->snapshot_timeout_ms : 600000, NULL, NULL, &info, &e);
		if (rc == KT_ECANCELED)
			return rc;
		char what[600];
		snprintf(what, sizeof(what), "persistentvolumeclaims/%s (volume snapshot)", pvc);
		if (rc) {
			on_note(b, KT_APP_NOTE_FAILED, what, e.msg);
			res->st.failed++;
			continue;
		}
		/* The snapshot must outlive its namespace (the disaster this is for):
		 * its content is switched to Retain, so deleting the namespace (and
		 * with it the VolumeSnapshot) keeps the storage snapshot. */
		kt_kube_target ct = { .group = KT_VS_GROUP, .version = KT_VS_VERSION,
		                      .resource = "volumesnapshotcontents", .name = info.content };
		static const char retain[] = "{\"spec\":{\"deletionPolicy\":\"Retain\"}}";
		if (kt_kube_patch(c, &ct, KT_KUBE_PATCH_MERGE, retain, sizeof(retain) - 1, NULL, NULL,
		                  &e)) {
			on_note(b, KT_APP_NOTE_FAILED, what, e.msg);
			res->st.failed++;
			continue;
		}
		json_t *vol = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
		                        "pvc", pvc, "snapshot", info.name, "content", info.content,
		                        "snapshotHandle", info.handle, "driver", info.driver, "class",
		                        info.class_name, "restoreSize", info.restore_size);
		json_array_append_new(b->volumes, vol);
		res->volumes++;
		if (!o->mover)
			continue;
		/* The data itself into the repository, for clusters without this
		 * storage (mover.c); a failure is this volume's, named. */
		kt_app_mover_volume mv = { .namespace = o->namespace, .pvc = pvc,
		                           .snapshot = info.name, .restore_size = info.restore_size,
		                           .driver = info.driver,
		                           .run = b->run, .index = (unsigned)i,
		                           .cluster = b->cluster };
		kt_app_mover_data data;
		rc = kt_app_mover_backup(c, b->a, o->mover, &mv, &data, &e);
		if (rc == KT_ECANCELED)
			return rc;
		if (rc) {
			snprintf(what, sizeof(what), "persistentvolumeclaims/%s (volume data)", pvc);
			on_note(b, KT_APP_NOTE_FAILED, what, e.msg);
			res->st.failed++;
			continue;
		}
		json_object_set_new(vol, "data", json_pack("{s:s, s:I, s:I}", "snapshot", data.id,
		                    "bytes", (json_int_t)data.bytes, "files",
		                    (json_int_t)data.files));
		res->volumes_copied++;
		res->data_bytes += data.bytes;
	}
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
	         .failed = json_array(), .volumes = json_array(), .pvcs = json_array(),
	         .a = a, .cluster = o->cluster ? o->cluster : cluster };
	unsigned char rnd[8];
	RAND_bytes(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(b.run + 2 * i, 3, "%02x", (unsigned)rnd[i]);
	if (!(rc = kt_archive_writer_begin(a, 0, &b.w, err))) {
		kt_app_collect_opts co = { .namespace = o->namespace, .selector = o->selector,
		                           .cluster_rbac = o->cluster_rbac, .note = on_note,
		                           .note_ctx = &b };
		rc = kt_app_collect(c, &co, on_object, &b, &res->st, err);
	}
	if (!rc && !o->no_volume_snapshots && (rc = snapshot_volumes(c, &b, res)))
		kt_error_set(err, rc, "interrupted while snapshotting volumes");
	char time_iso[40];
	kt_time_iso(time_iso, sizeof(time_iso));
	if (!rc) {
		json_t *m = json_pack("{s:s, s:i, s:s, s:s*, s:s, s:s, s:O, s:O, s:O, s:O, "
		                      "s:{s:I, s:I, s:I, s:i, s:i}, s:I}",
		                      "format", FORMAT, "version", 1, "namespace", o->namespace,
		                      "selector", o->selector, "cluster", o->cluster ? o->cluster
		                                                                  : cluster,
		                      "time", time_iso, "objects", b.objects, "volumes", b.volumes,
		                      "skipped", b.skipped, "failed", b.failed, "counts", "objects",
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
	json_decref(b.volumes);
	json_decref(b.pvcs);
	free(cluster);
	res->duration_ms = kt_now_ms() - start;
	return rc;
}

/* ---- restore ---------------------------------------------------------- */

/* The restore point's VolumeSnapshot of a PVC (the manifest's volumes). */
static const char *snapshot_of(void *ctx, const char *pvc)
{
	size_t i;
	json_t *v;
	json_array_foreach((json_t *)ctx, i, v) {
		const char *p = json_string_value(json_object_get(v, "pvc"));
		if (p && !strcmp(p, pvc) && !json_object_get(v, "moved"))
			return json_string_value(json_object_get(v, "snapshot"));
	}
	return NULL;
}

/* Make every volume's snapshot usable in the target namespace: the original
 * VolumeSnapshot when restoring in place and it still exists, else a
 * pre-provisioned copy bound to the same storage snapshot.  Reported like
 * objects, as kind VolumeSnapshot. */
static kt_code prepare_volumes(kt_kube *c, json_t *volumes, const char *from, const char *to,
                               const kt_app_apply_opts *ao, kt_app_apply_stats *st)
{
	size_t i;
	json_t *v;
	json_array_foreach(volumes, i, v) {
		const char *name = json_string_value(json_object_get(v, "snapshot"));
		const char *handle = json_string_value(json_object_get(v, "snapshotHandle"));
		const char *driver = json_string_value(json_object_get(v, "driver"));
		const char *cls = json_string_value(json_object_get(v, "class"));
		if (!name || json_object_get(v, "moved"))
			continue;   /* its data comes through the mover */
		kt_kube_target t = { .group = KT_VS_GROUP, .version = KT_VS_VERSION,
		                     .resource = "volumesnapshots", .namespace = to, .name = name };
		json_t *cur = NULL;
		kt_error e;
		kt_code rc = kt_kube_get_object(c, &t, &cur, &e);
		json_decref(cur);
		kt_app_outcome out;
		const char *detail = "";
		if (rc == KT_OK) {
			out = ao->dry_run ? KT_APP_WOULD_SKIP : KT_APP_SKIPPED;
			detail = !strcmp(from, to) ? "the original snapshot" : "exists";
		} else if (rc != KT_ENOTFOUND) {
			if (rc == KT_ECANCELED)
				return rc;
			out = KT_APP_FAILED;
			detail = e.msg;
		} else if (ao->dry_run) {
			out = KT_APP_WOULD_CREATE;
			detail = "a copy bound to the same storage snapshot";
		} else if ((rc = kt_vs_import(c, to, name, handle, driver, cls, &e))) {
			out = KT_APP_FAILED;
			detail = e.msg;
		} else {
			out = KT_APP_CREATED;
			detail = "a copy bound to the same storage snapshot";
		}
		kt_app_report(ao, st, "VolumeSnapshot", to, name, out, detail);
	}
	return KT_OK;
}

typedef struct sc_pick {
	const char *driver;
	char name[254];
	int is_default;
} sc_pick;

static kt_code on_storage_class(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	sc_pick *p = ctx;
	const char *prov = json_string_value(json_object_get(obj, "provisioner"));
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
	                                                     "name"));
	const char *def = json_string_value(json_object_get(json_object_get(json_object_get(obj,
	                                    "metadata"), "annotations"),
	                                    "storageclass.kubernetes.io/is-default-class"));
	int is_def = def && !strcmp(def, "true");
	if (prov && name && !strcmp(prov, p->driver) && (!p->name[0] || (is_def && !p->is_default))) {
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->is_default = is_def;
	}
	return KT_OK;
}

/* A PVC restored from a snapshot is provisioned by the snapshot's CSI
 * driver: one whose source had no StorageClass (a statically bound volume)
 * gets a StorageClass of that driver (its default one if several), else it
 * would wait for a volume forever. */
static void class_for_restored_pvcs(kt_kube *c, json_t *objects, json_t *volumes)
{
	size_t i;
	json_t *obj;
	json_array_foreach(objects, i, obj) {
		const char *kind = json_string_value(json_object_get(obj, "kind"));
		json_t *spec = json_object_get(obj, "spec");
		const char *cls = json_string_value(json_object_get(spec, "storageClassName"));
		const char *snap = json_string_value(json_object_get(json_object_get(spec,
		                                     "dataSource"), "name"));
		if (!kind || strcmp(kind, "PersistentVolumeClaim") || !snap || (cls && *cls))
			continue;
		const char *driver = NULL;
		size_t k;
		json_t *v;
		json_array_foreach(volumes, k, v) {
			const char *name = json_string_value(json_object_get(v, "snapshot"));
			if (name && !strcmp(name, snap))
				driver = json_string_value(json_object_get(v, "driver"));
		}
		if (!driver || !*driver)
			continue;
		char name[254];
		if (kt_app_class_for_driver(c, driver, name))
			json_object_set_new(spec, "storageClassName", json_string(name));
	}
}

int kt_app_class_for_driver(kt_kube *c, const char *driver, char out[254])
{
	sc_pick p = { .driver = driver };
	kt_kube_target t = { .group = "storage.k8s.io", .version = "v1",
	                     .resource = "storageclasses" };
	kt_error e;
	out[0] = '\0';
	if (kt_kube_list(c, &t, NULL, on_storage_class, &p, NULL, &e) == KT_OK && p.name[0])
		snprintf(out, 254, "%s", p.name);
	return out[0] != '\0';
}

static int kinds_have(const char *const *kinds, const char *kind)
{
	for (size_t i = 0; kinds[i]; i++)
		if (!strcasecmp(kinds[i], kind))
			return 1;
	return 0;
}

/* The report of the PVC tier, forwarded; records the PVCs it created. */
typedef struct pvc_report {
	const kt_app_apply_opts *ao;
	json_t *created;
} pvc_report;

static void on_pvc_report(void *ctx, const char *kind, const char *ns, const char *name,
                          kt_app_outcome out, const char *detail)
{
	pvc_report *r = ctx;
	if (!strcmp(kind, "PersistentVolumeClaim") && (out == KT_APP_CREATED ||
	                                               out == KT_APP_WOULD_CREATE))
		json_array_append_new(r->created, json_string(name));
	if (r->ao->report)
		r->ao->report(r->ao->ctx, kind, ns, name, out, detail);
}

/* Fill each PVC created empty for a moved volume with its data (mover
 * Jobs, one at a time); reported as kind VolumeData. */
static kt_code move_volumes_in(kt_kube *c, const kt_app_restore_opts *o, json_t *volumes,
                               json_t *created, const char *to, kt_app_apply_stats *st)
{
	const kt_app_apply_opts *ao = &o->apply;
	char run[17];
	unsigned char rnd[8];
	RAND_bytes(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(run + 2 * i, 3, "%02x", (unsigned)rnd[i]);
	size_t i, k;
	json_t *v, *p;
	json_array_foreach(volumes, i, v) {
		const char *pvc = json_string_value(json_object_get(v, "pvc"));
		const char *data = json_string_value(json_object_get(json_object_get(v, "data"),
		                                                     "snapshot"));
		int made = 0;
		json_array_foreach(created, k, p)
			made |= pvc && !strcmp(json_string_value(p), pvc);
		if (!json_object_get(v, "moved") || !data || !made)
			continue;
		char detail[1200];
		kt_app_outcome out;
		if (ao->dry_run) {
			out = KT_APP_WOULD_CREATE;
			snprintf(detail, sizeof(detail), "a mover Job would restore data snapshot %.8s",
			         data);
		} else {
			kt_app_mover_volume mv = { .namespace = to, .pvc = pvc, .run = run,
			                           .index = (unsigned)i };
			kt_error e;
			kt_code rc = kt_app_mover_restore(c, o->mover, &mv, data, &e);
			if (rc == KT_ECANCELED)
				return rc;
			out = rc ? KT_APP_FAILED : KT_APP_CREATED;
			if (rc)
				snprintf(detail, sizeof(detail), "%s", e.msg);
			else
				snprintf(detail, sizeof(detail), "restored from data snapshot %.8s by a "
				         "mover Job", data);
		}
		kt_app_report(ao, st, "VolumeData", to, pvc, out, detail);
	}
	return KT_OK;
}

/* Moved volumes' PVCs are created empty: no data source, and this
 * cluster's class (o->storage_class, else theirs; "" = the default). */
static void empty_moved_pvcs(json_t *objects, json_t *volumes, const char *storage_class)
{
	size_t i, k;
	json_t *obj, *v;
	json_array_foreach(objects, i, obj) {
		const char *kind = json_string_value(json_object_get(obj, "kind"));
		const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
		                                                     "name"));
		if (!kind || strcmp(kind, "PersistentVolumeClaim") || !name)
			continue;
		json_array_foreach(volumes, k, v) {
			const char *pvc = json_string_value(json_object_get(v, "pvc"));
			if (!pvc || strcmp(pvc, name) || !json_object_get(v, "moved"))
				continue;
			json_t *spec = json_object_get(obj, "spec");
			json_object_del(spec, "dataSource");
			json_object_del(spec, "dataSourceRef");
			const char *cls = json_string_value(json_object_get(spec, "storageClassName"));
			if (storage_class && *storage_class)
				json_object_set_new(spec, "storageClassName", json_string(storage_class));
			else if (cls && !*cls)
				json_object_del(spec, "storageClassName");   /* static: the default */
		}
	}
}

/* Apply the objects below the PVC tier (namespace, RBAC, Secrets ...), then
 * make the volumes' snapshots usable in the namespace, then the PVCs (from
 * those snapshots, or empty and filled by mover Jobs), then the rest
 * (workloads ...), which find their volumes' data in place. */
static kt_code apply_with_volumes(kt_kube *c, json_t *objects, json_t *volumes,
                                  const char *from, const char *to,
                                  const kt_app_restore_opts *o, kt_app_apply_stats *st,
                                  kt_error *err)
{
	const kt_app_apply_opts *ao = &o->apply;
	int pvc_tier = kt_app_tier("", "PersistentVolumeClaim");
	json_t *early = json_array(), *mid = json_array(), *late = json_array();
	size_t i;
	json_t *obj;
	json_array_foreach(objects, i, obj) {
		const char *api = json_string_value(json_object_get(obj, "apiVersion"));
		const char *slash = api ? strrchr(api, '/') : NULL;
		char group[256];
		snprintf(group, sizeof(group), "%.*s", slash ? (int)(slash - api) : 0, api ? api : "");
		int tier = kt_app_tier(group, json_string_value(json_object_get(obj, "kind")));
		json_array_append(tier < pvc_tier ? early : tier == pvc_tier ? mid : late, obj);
	}
	kt_app_apply_stats s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, sv = { 0 };
	kt_error e1;
	kt_error_clear(&e1);
	kt_code rc = kt_app_apply(c, early, ao, &s1, &e1);
	/* Volumes only when PVCs are restored at all. */
	int pvcs = !(ao->exclude_kinds && kinds_have(ao->exclude_kinds, "PersistentVolumeClaim")) &&
	           !(ao->include_kinds && !kinds_have(ao->include_kinds, "PersistentVolumeClaim"));
	if (rc == KT_OK || rc == KT_EREMOTE) {
		kt_code r2 = pvcs ? prepare_volumes(c, volumes, from, to, ao, &sv) : KT_OK;
		class_for_restored_pvcs(c, mid, volumes);
		empty_moved_pvcs(mid, volumes, o->storage_class);
		pvc_report pr = { ao, json_array() };
		kt_app_apply_opts mo = *ao;
		mo.report = on_pvc_report;
		mo.ctx = &pr;
		if (r2 == KT_OK)
			r2 = kt_app_apply(c, mid, &mo, &s3, err);
		if ((r2 == KT_OK || r2 == KT_EREMOTE) && pvcs && o->mover) {
			kt_code r3 = move_volumes_in(c, o, volumes, pr.created, to, &sv);
			if (r3)
				r2 = kt_error_set(err, r3, "interrupted while restoring volume data");
		}
		json_decref(pr.created);
		if (r2 == KT_OK || r2 == KT_EREMOTE) {
			kt_code r4 = kt_app_apply(c, late, ao, &s2, err);
			if (r4 != KT_OK && (r4 != KT_EREMOTE || r2 == KT_OK))
				r2 = r4;
		}
		s2.created += s3.created;
		s2.updated += s3.updated;
		s2.skipped += s3.skipped;
		s2.failed += s3.failed;
		if (r2 == KT_EREMOTE || (r2 == KT_OK && (rc == KT_EREMOTE || sv.failed)))
			rc = kt_error_set(err, KT_EREMOTE, "%u of %zu objects, volume snapshots and "
			                  "volume data failed (see the report)",
			                  s1.failed + s2.failed + sv.failed,
			                  json_array_size(objects) + json_array_size(volumes));
		else if (r2)
			rc = r2;
		else
			rc = KT_OK;
	} else {
		*err = e1;
	}
	json_decref(early);
	json_decref(mid);
	json_decref(late);
	st->created = s1.created + s2.created + sv.created;
	st->updated = s1.updated + s2.updated;
	st->skipped = s1.skipped + s2.skipped + sv.skipped;
	st->failed = s1.failed + s2.failed + sv.failed;
	return rc;
}

kt_code kt_app_restore(kt_kube *c, kt_archive *a, const char *id, const kt_app_restore_opts *o,
                       kt_app_apply_stats *st, kt_error *err)
{
	kt_buf buf;
	kt_buf_init(&buf, MAX_OBJECT);
	kt_archive_reader *rd = NULL;
	kt_code rc = kt_archive_reader_open(a, id, &rd, err);
	if (!rc)
		rc = kt_archive_reader_get(rd, MANIFEST, &buf, err);
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
	json_t *volumes = json_object_get(m, "volumes");
	/* With a mover, volumes whose data the restore point holds come back
	 * through it (marked "moved" in this in-memory copy of the manifest). */
	size_t k;
	json_t *vol;
	json_array_foreach(o->mover && json_is_array(volumes) ? volumes : NULL, k, vol)
		if (json_is_string(json_object_get(json_object_get(vol, "data"), "snapshot")))
			json_object_set_new(vol, "moved", json_true());
	kt_app_map map = { .from_ns = from, .to_ns = o->to_namespace ? o->to_namespace : from,
	                   .keep_node_ports = o->keep_node_ports,
	                   .snapshot_of = json_is_array(volumes) ? snapshot_of : NULL,
	                   .ctx = volumes };
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
		if ((rc = kt_archive_reader_get(rd, path, &buf, err)))
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
	kt_archive_reader_free(rd);
	if (!rc)
		rc = apply_with_volumes(c, objects, volumes, from, map.to_ns, o, st, err);
	json_decref(objects);
	json_decref(m);
	return rc;
}

/* ---- giving storage snapshots back (retention) ---------------------- */

json_t *kt_app_restore_point_volumes(kt_archive *a, const char *id, kt_error *err)
{
	json_t *m = kt_app_restore_point_manifest(a, id, err);
	if (!m)
		return NULL;
	json_t *out = json_array();
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(m, "volumes"), i, v) {
		const char *snap = json_string_value(json_object_get(v, "snapshot"));
		const char *content = json_string_value(json_object_get(v, "content"));
		const char *data = json_string_value(json_object_get(json_object_get(v, "data"),
		                                                     "snapshot"));
		if (ns && snap && content)
			json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s*}", "namespace", ns,
			                                     "snapshot", snap, "content", content,
			                                     "data", data && strlen(data) == 64 ? data
			                                                                     : NULL));
	}
	json_decref(m);
	return out;
}

void kt_app_delete_volume_snapshots(kt_kube *c, json_t *vols, unsigned *n_failed)
{
	static const char del[] = "{\"spec\":{\"deletionPolicy\":\"Delete\"}}";
	size_t i;
	json_t *v;
	json_array_foreach(vols, i, v) {
		const char *ns = json_string_value(json_object_get(v, "namespace"));
		const char *snap = json_string_value(json_object_get(v, "snapshot"));
		const char *content = json_string_value(json_object_get(v, "content"));
		kt_kube_target ct = { .group = KT_VS_GROUP, .version = KT_VS_VERSION,
		                      .resource = "volumesnapshotcontents", .name = content };
		kt_kube_target st = { .group = KT_VS_GROUP, .version = KT_VS_VERSION,
		                      .resource = "volumesnapshots", .namespace = ns, .name = snap };
		kt_error e;
		kt_code rc = kt_kube_patch(c, &ct, KT_KUBE_PATCH_MERGE, del, sizeof(del) - 1, NULL,
		                           NULL, &e);
		if (rc == KT_ENOTFOUND)
			continue;   /* already gone */
		if (!rc) {
			rc = kt_kube_delete(c, &st, NULL, &e);
			if (rc == KT_ENOTFOUND)   /* its namespace went: the content alone */
				rc = kt_kube_delete(c, &ct, NULL, &e);
		}
		if (rc && rc != KT_ENOTFOUND) {
			kt_log(KT_LOG_WARN, "cannot delete the volume snapshot %s/%s of a forgotten "
			       "restore point: %s", ns, snap, e.msg);
			(*n_failed)++;
		}
	}
}
