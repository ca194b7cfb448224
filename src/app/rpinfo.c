/*
 * rpinfo.c - looking at and removing one restore point: its manifest
 * (restorepoint show) and its deletion (restorepoint delete): the
 * repository snapshot goes, and the storage snapshots it kept are given
 * back when they belong to this cluster, and the volume data snapshots the
 * mover wrote for it go too.  The data goes with prune.
 *
 * Order of a delete: read the manifest (what to give back), remove the
 * snapshot object under a shared lock, then give the volume snapshots back.
 * A crash between the two leaves VolumeSnapshots that no restore point
 * names (listed by `snapshot list`, removed by hand); never a restore point
 * whose volumes are gone.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "archive/archive.h"

#define MANIFEST "manifest.json"
#define FORMAT "kontinuity restore point"
#define MAX_MANIFEST (64u << 20)

json_t *kt_app_restore_point_manifest(struct kt_archive *a, const char *id, kt_error *err)
{
	kt_buf buf;
	kt_buf_init(&buf, MAX_MANIFEST);
	json_t *m = NULL;
	kt_code rc = kt_archive_read_file(a, id, MANIFEST, &buf, err);
	if (rc == KT_ENOTFOUND)
		kt_error_set(err, KT_ECORRUPT, "snapshot %.8s is not a restore point (it has no %s)",
		             id, MANIFEST);
	if (!rc) {
		json_error_t je;
		m = json_loadb(buf.data, buf.len, 0, &je);
		const char *f = json_string_value(json_object_get(m, "format"));
		if (!m || !f || strcmp(f, FORMAT)) {
			kt_error_set(err, KT_ECORRUPT, "restore point %.8s: %s is not a restore point "
			             "manifest%s%s", id, MANIFEST, m ? "" : ": ", m ? "" : je.text);
			json_decref(m);
			m = NULL;
		}
	}
	kt_buf_release(&buf);
	return m;
}

kt_code kt_app_find_restore_point(struct kt_archive *a, const char *spec, char id[65], kt_error *err)
{
	if (strcmp(spec, "latest"))
		return kt_archive_find_snapshot(a, spec, id, err);
	kt_archive_snap *v = NULL;
	size_t n = 0;
	kt_code code = kt_archive_snapshots(a, &v, &n, err);
	id[0] = '\0';
	for (size_t i = 0; !code && i < n; i++)
		for (size_t t = 0; t < v[i].n_tags; t++)
			if (!strcmp(v[i].tags[t], KT_APP_TAG))
				memcpy(id, v[i].id, 65);
	kt_archive_snaps_free(v, n);
	if (!code && !id[0])
		code = kt_error_set(err, KT_ENOTFOUND, "the repository holds no restore point yet "
		                    "(make one with 'kontinuity app backup')");
	return code;
}

void kt_app_volume_data(json_t *vols, json_t *out)
{
	size_t i;
	json_t *v;
	json_array_foreach(vols, i, v)
		if (json_object_get(v, "data"))
			json_array_append(out, json_object_get(v, "data"));
}

/* 1 when snapshot s carries the restore point tag. */
static int is_restore_point(const kt_archive_snap *s)
{
	for (size_t t = 0; t < s->n_tags; t++)
		if (!strcmp(s->tags[t], KT_APP_TAG))
			return 1;
	return 0;
}

kt_code kt_app_restore_point_delete(kt_kube *c, struct kt_archive *a, const char *id,
                                    const kt_app_rp_delete_opts *o,
                                    kt_app_rp_delete_result *r, kt_error *err)
{
	memset(r, 0, sizeof(*r));
	kt_archive_snap *v = NULL;
	size_t n = 0;
	kt_code rc = kt_archive_snapshots(a, &v, &n, err);
	if (rc)
		return rc;
	const kt_archive_snap *s = NULL;
	for (size_t i = 0; i < n && !s; i++)
		if (!strcmp(v[i].id, id))
			s = &v[i];
	if (!s)
		rc = kt_error_set(err, KT_ENOTFOUND, "no restore point %.8s", id);
	else if (!is_restore_point(s))
		rc = kt_error_set(err, KT_EUSAGE, "snapshot %.8s is not a restore point (it is a "
		                  "`repo backup` snapshot: remove it with `kontinuity repo forget`)",
		                  id);
	if (!rc)
		snprintf(r->cluster, sizeof(r->cluster), "%s", s->hostname);
	kt_archive_snaps_free(v, n);
	if (rc)
		return rc;

	/* What it kept, read before the manifest goes: volume snapshots in the
	 * cluster, and volume data the mover copied into the repository
	 * (snapshots of their own that go with the restore point). */
	kt_error e;
	json_t *vols = kt_app_restore_point_volumes(a, id, &e);
	if (!vols)
		snprintf(r->note, sizeof(r->note), "what it kept is not known: %.300s", e.msg);
	json_t *data = json_array();
	kt_app_volume_data(vols, data);
	r->data_named = (unsigned)json_array_size(data);
	if (!o->keep_volume_snapshots && json_array_size(vols)) {
		char *here = NULL;
		if (!c)
			snprintf(r->note, sizeof(r->note), "its %zu volume snapshot(s) stay: no cluster "
			         "to delete them from", json_array_size(vols));
		else if (kt_kube_namespace_uid(c, "kube-system", &here, &e))
			snprintf(r->note, sizeof(r->note), "its %zu volume snapshot(s) stay: cannot tell "
			         "which cluster this is (%.300s)", json_array_size(vols), e.msg);
		else if (strcmp(here, r->cluster))
			snprintf(r->note, sizeof(r->note), "its %zu volume snapshot(s) stay: they belong "
			         "to cluster %.100s, not this one (%.100s)", json_array_size(vols),
			         r->cluster, here);
		else
			r->volumes_named = (unsigned)json_array_size(vols);
		free(here);
	}
	size_t i;
	json_t *x;
	if (o->dry_run) {
		json_decref(vols);
		json_decref(data);
		return KT_OK;
	}
	if (!(rc = kt_archive_lock(a, 0, err))) {
		rc = kt_archive_forget_snapshot(a, id, err);
		json_array_foreach(rc ? NULL : data, i, x) {
			kt_code d = kt_archive_forget_snapshot(a, json_string_value(x), &e);
			if (!d)
				r->data_deleted++;
			else if (d != KT_ENOTFOUND)   /* gone already is fine */
				snprintf(r->note, sizeof(r->note), "volume data snapshot %.8s stays: %.300s",
				         json_string_value(x), e.msg);
		}
		kt_archive_unlock(a);
	}
	json_decref(data);
	if (!rc && r->volumes_named) {
		unsigned failed = 0;
		kt_app_delete_volume_snapshots(c, vols, &failed);
		r->volumes_deleted = r->volumes_named - failed;
	}
	json_decref(vols);
	return rc;
}

/* ---- waiting for what a restore made to be ready ---------------------- */

/* Resources whose readiness we can read, by Kind; the rest are ready when
 * created. */
static const struct {
	const char *kind, *group, *version, *resource;
} watched[] = {
	{ "PersistentVolumeClaim", "", "v1", "persistentvolumeclaims" },
	{ "Deployment", "apps", "v1", "deployments" },
	{ "StatefulSet", "apps", "v1", "statefulsets" },
	{ "DaemonSet", "apps", "v1", "daemonsets" },
	{ "ReplicaSet", "apps", "v1", "replicasets" },
	{ "Job", "batch", "v1", "jobs" },
};

static json_int_t num(json_t *o, const char *a, const char *b, json_int_t dflt)
{
	json_t *x = json_object_get(json_object_get(o, a), b);
	return json_is_integer(x) ? json_integer_value(x) : dflt;
}

/* Conditions[type].status == "True" (and its message in *msg). */
static int condition(json_t *o, const char *type, const char **msg)
{
	size_t i;
	json_t *cnd;
	json_array_foreach(json_object_get(json_object_get(o, "status"), "conditions"), i, cnd) {
		const char *t = json_string_value(json_object_get(cnd, "type"));
		const char *s = json_string_value(json_object_get(cnd, "status"));
		if (t && s && !strcmp(t, type) && !strcmp(s, "True")) {
			if (msg)
				*msg = json_string_value(json_object_get(cnd, "message"));
			return 1;
		}
	}
	return 0;
}

int kt_app_ready_state(const char *kind, json_t *obj, char *why, size_t why_len)
{
	json_int_t gen = num(obj, "metadata", "generation", 1);
	json_int_t seen = num(obj, "status", "observedGeneration", -1);
	json_int_t want = num(obj, "spec", "replicas", 1);
	if (!strcmp(kind, "PersistentVolumeClaim")) {
		const char *ph = json_string_value(json_object_get(json_object_get(obj, "status"),
		                                                   "phase"));
		if (ph && !strcmp(ph, "Bound"))
			return 1;
		snprintf(why, why_len, "phase %s", ph ? ph : "Pending");
		return ph && !strcmp(ph, "Lost") ? -1 : 0;
	}
	if (!strcmp(kind, "Job")) {
		const char *msg = NULL;
		if (condition(obj, "Complete", NULL))
			return 1;
		if (condition(obj, "Failed", &msg)) {
			snprintf(why, why_len, "failed: %s", msg ? msg : "(no message)");
			return -1;
		}
		snprintf(why, why_len, "%lld succeeded of %lld", (long long)num(obj, "status",
		         "succeeded", 0), (long long)num(obj, "spec", "completions", 1));
		return 0;
	}
	/* A status older than the spec says nothing about the spec. */
	const char *stale = seen < 0 ? " (no status from its controller yet)"
	                  : seen < gen ? " (its controller has not caught up with the spec)" : "";
	if (!strcmp(kind, "DaemonSet")) {
		json_int_t d = num(obj, "status", "desiredNumberScheduled", 0);
		json_int_t r = num(obj, "status", "numberReady", 0);
		json_int_t u = num(obj, "status", "updatedNumberScheduled", 0);
		if (!*stale && r >= d && u >= d)
			return 1;
		snprintf(why, why_len, "%lld of %lld pods ready%s", (long long)r, (long long)d, stale);
		return 0;
	}
	if (strcmp(kind, "Deployment") && strcmp(kind, "StatefulSet") && strcmp(kind, "ReplicaSet"))
		return 1;   /* nothing to wait for */
	json_int_t ready = num(obj, "status", !strcmp(kind, "Deployment") ? "availableReplicas"
	                                                                  : "readyReplicas", 0);
	json_int_t upd = !strcmp(kind, "ReplicaSet") ? want
	               : num(obj, "status", "updatedReplicas", 0);
	if (!*stale && ready >= want && upd >= want)
		return 1;
	snprintf(why, why_len, "%lld of %lld replicas ready%s", (long long)ready, (long long)want,
	         stale);
	return 0;
}

kt_code kt_app_wait_ready(kt_kube *c, json_t *items, int64_t timeout_ms, kt_app_ready_fn fn,
                          void *ctx, unsigned *n_not_ready, kt_error *err)
{
	*n_not_ready = 0;
	size_t n = json_array_size(items);
	int *state = calloc(n ? n : 1, sizeof(*state));   /* 0 waiting, 1 ready, -1 failed */
	char (*why)[256] = calloc(n ? n : 1, sizeof(*why));
	if (!state || !why) {
		free(state);
		free(why);
		return kt_error_set(err, KT_ENOMEM, "out of memory");
	}
	int64_t start = kt_now_ms(), delay = 200;
	kt_code rc = KT_OK;
	for (;;) {
		size_t waiting = 0;
		for (size_t i = 0; i < n && !rc; i++) {
			if (state[i])
				continue;
			json_t *it = json_array_get(items, i);
			const char *kind = json_string_value(json_object_get(it, "kind"));
			const char *ns = json_string_value(json_object_get(it, "namespace"));
			const char *name = json_string_value(json_object_get(it, "name"));
			size_t w = 0;
			while (w < sizeof(watched) / sizeof(watched[0]) && strcmp(watched[w].kind, kind))
				w++;
			if (w == sizeof(watched) / sizeof(watched[0])) {
				state[i] = 1;   /* nothing to wait for */
				continue;
			}
			kt_kube_target t = { .group = watched[w].group, .version = watched[w].version,
			                     .resource = watched[w].resource, .namespace = ns,
			                     .name = name };
			json_t *obj = NULL;
			kt_error e;
			kt_code g = kt_kube_get_object(c, &t, &obj, &e);
			if (g == KT_ECANCELED) {
				rc = kt_error_set(err, g, "interrupted while waiting for the restored "
				                  "objects");
				break;
			}
			if (g) {
				snprintf(why[i], sizeof(why[i]), "%.250s", e.msg);
				state[i] = g == KT_ENOTFOUND ? -1 : 0;
			} else {
				state[i] = kt_app_ready_state(kind, obj, why[i], sizeof(why[i]));
			}
			json_decref(obj);
			if (state[i] && fn)
				fn(ctx, kind, ns, name, state[i] > 0, state[i] > 0 ? NULL : why[i],
				   kt_now_ms() - start);
			if (state[i] < 0)
				(*n_not_ready)++;
			waiting += !state[i];
		}
		if (rc || !waiting)
			break;
		if (kt_now_ms() - start >= timeout_ms) {
			for (size_t i = 0; i < n; i++) {
				if (state[i])
					continue;
				json_t *it = json_array_get(items, i);
				if (fn)
					fn(ctx, json_string_value(json_object_get(it, "kind")),
					   json_string_value(json_object_get(it, "namespace")),
					   json_string_value(json_object_get(it, "name")), 0, why[i],
					   kt_now_ms() - start);
				(*n_not_ready)++;
			}
			break;
		}
		kt_sleep_ms(delay);
		if (delay < 2000)
			delay *= 2;
	}
	free(state);
	free(why);
	return rc;
}
