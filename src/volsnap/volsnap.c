/*
 * volsnap.c - VolumeSnapshots through the API server: create (with the
 * class resolved the way the snapshot controller resolves it), wait for
 * readiness, list with the contents' handles, delete, restore into a new
 * PVC, and resource quantities.
 *
 * Invariants:
 *   1. Nothing is created before every precondition that can be checked
 *      was checked (PVC exists and is Bound, class exists, restore size
 *      fits): a failed command leaves the cluster as it was.
 *   2. Waiting is a watch on the one object (field selector), resumed from
 *      the last resourceVersion when the server closes it, restarted from a
 *      fresh GET after 410 Gone; never a tight poll loop.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "volsnap.h"

/* ---- small JSON helpers --------------------------------------------- */

/* The string at a path of object keys (NULL-terminated list), or "". */
static const char *jpath(json_t *o, ...)
{
	va_list ap;
	va_start(ap, o);
	const char *k;
	while (o && (k = va_arg(ap, const char *)))
		o = json_object_get(o, k);
	va_end(ap);
	const char *s = json_string_value(o);
	return s ? s : "";
}

static json_t *jget(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	return b ? json_object_get(v, b) : v;
}

static void copy(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static void target(kt_kube_target *t, const char *group, const char *version,
                   const char *resource, const char *ns, const char *name)
{
	memset(t, 0, sizeof(*t));
	t->group = group;
	t->version = version;
	t->resource = resource;
	t->namespace = ns;
	t->name = name;
}

#define VS(t, ns, name) target(t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshots", ns, name)

void kt_vs_info_from(kt_vs_info *out, json_t *vs)
{
	memset(out, 0, sizeof(*out));
	copy(out->namespace, sizeof(out->namespace), jpath(vs, "metadata", "namespace", NULL));
	copy(out->name, sizeof(out->name), jpath(vs, "metadata", "name", NULL));
	copy(out->uid, sizeof(out->uid), jpath(vs, "metadata", "uid", NULL));
	copy(out->pvc, sizeof(out->pvc),
	     jpath(vs, "spec", "source", "persistentVolumeClaimName", NULL));
	copy(out->class_name, sizeof(out->class_name),
	     jpath(vs, "spec", "volumeSnapshotClassName", NULL));
	copy(out->content, sizeof(out->content),
	     jpath(vs, "status", "boundVolumeSnapshotContentName", NULL));
	copy(out->created, sizeof(out->created), jpath(vs, "status", "creationTime", NULL));
	copy(out->error, sizeof(out->error), jpath(vs, "status", "error", "message", NULL));
	json_t *rs = jget(vs, "status", "restoreSize");
	if (json_is_string(rs))
		copy(out->restore_size, sizeof(out->restore_size), json_string_value(rs));
	else if (json_is_integer(rs))
		snprintf(out->restore_size, sizeof(out->restore_size), "%lld",
		         (long long)json_integer_value(rs));
	json_t *ready = jget(vs, "status", "readyToUse");
	out->ready = json_is_boolean(ready) ? json_is_true(ready) : -1;
}

/* ---- quantities ------------------------------------------------------ */

kt_code kt_vs_quantity(const char *q, uint64_t *bytes, kt_error *err)
{
	static const struct { const char *suffix; long double mult; } units[] = {
		{ "Ki", 1024.0L }, { "Mi", 1048576.0L }, { "Gi", 1073741824.0L },
		{ "Ti", 1099511627776.0L }, { "Pi", 1125899906842624.0L },
		{ "Ei", 1152921504606846976.0L }, { "k", 1e3L }, { "M", 1e6L }, { "G", 1e9L },
		{ "T", 1e12L }, { "P", 1e15L }, { "E", 1e18L }, { "", 1.0L },
	};
	if (!q)
		goto bad;
	const char *p = q;
	size_t digits = strspn(p, "0123456789");
	long double v = 0;
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (p[i] - '0');
	p += digits;
	if (*p == '.') {
		size_t frac = strspn(p + 1, "0123456789");
		long double scale = 0.1L;
		for (size_t i = 0; i < frac; i++, scale /= 10)
			v += (p[1 + i] - '0') * scale;
		digits += frac;
		p += 1 + frac;
	}
	if (!digits || strlen(q) > 40)
		goto bad;
	long double mult = 0;
	if ((*p == 'e' || *p == 'E') && p[1] >= '0' && p[1] <= '9' && strspn(p + 1, "0123456789") ==
	    strlen(p + 1) && strlen(p + 1) <= 2) {
		int e = 0;
		for (const char *d = p + 1; *d; d++)
			e = e * 10 + (*d - '0');
		for (mult = 1; e > 0; e--)
			mult *= 10;
	} else {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (!strcmp(p, units[i].suffix)) {
				mult = units[i].mult;
				break;
			}
	}
	if (mult == 0)
		goto bad;
	v *= mult;
	if (v >= 9223372036854775808.0L)
		goto bad;
	uint64_t b = (uint64_t)v;
	if ((long double)b < v)
		b++;
	*bytes = b;
	return KT_OK;
bad:
	return kt_error_set(err, KT_EUSAGE, "'%.40s' is not a size (use a quantity such as 10Gi, "
	                    "500Mi or 1G)", q ? q : "(none)");
}

/* ---- classes --------------------------------------------------------- */

typedef struct class_scan {
	const char *driver;
	char found[254];
	char others[512];
	unsigned n_default;
} class_scan;

static kt_code on_class(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	class_scan *s = ctx;
	if (s->driver && strcmp(jpath(obj, "driver", NULL), s->driver))
		return KT_OK;
	if (strcmp(jpath(obj, "metadata", "annotations", KT_VS_DEFAULT_ANNOTATION, NULL), "true"))
		return KT_OK;
	const char *name = jpath(obj, "metadata", "name", NULL);
	if (s->n_default++ == 0) {
		copy(s->found, sizeof(s->found), name);
	} else {
		size_t n = strlen(s->others);
		snprintf(s->others + n, sizeof(s->others) - n, "%s'%s'", n ? ", " : "", name);
	}
	return KT_OK;
}

kt_code kt_vs_default_class(kt_kube *c, const char *driver, char out[254], kt_error *err)
{
	kt_kube_target t;
	target(&t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshotclasses", NULL, NULL);
	class_scan s = { .driver = driver };
	kt_code rc = kt_kube_list(c, &t, NULL, on_class, &s, NULL, err);
	if (rc == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "the cluster does not serve "
		                    "volumesnapshotclasses.%s/%s: install the snapshot CRDs and the "
		                    "snapshot controller (see 'kontinuity doctor')", KT_VS_GROUP,
		                    KT_VS_VERSION);
	if (rc)
		return rc;
	if (s.n_default == 0)
		return kt_error_set(err, KT_ENOTFOUND, "no default VolumeSnapshotClass%s%s%s: annotate "
		                    "one with %s: \"true\" or pass --class", driver ? " for driver '" : "",
		                    driver ? driver : "", driver ? "'" : "", KT_VS_DEFAULT_ANNOTATION);
	if (s.n_default > 1)
		return kt_error_set(err, KT_EUSAGE, "%u VolumeSnapshotClasses%s%s%s are marked default "
		                    "('%s', %s): keep the annotation on one, or pass --class",
		                    s.n_default, driver ? " for driver '" : "", driver ? driver : "",
		                    driver ? "'" : "", s.found, s.others);
	memcpy(out, s.found, sizeof(s.found));
	return KT_OK;
}

/* The CSI driver behind a bound PVC: its PV's spec.csi.driver, else the
 * provisioner of its StorageClass; "" when neither says. */
static void pvc_driver(kt_kube *c, json_t *pvc, char out[254])
{
	out[0] = '\0';
	kt_kube_target t;
	kt_error e;
	json_t *o = NULL;
	const char *pv = jpath(pvc, "spec", "volumeName", NULL);
	if (*pv) {
		target(&t, "", "v1", "persistentvolumes", NULL, pv);
		if (kt_kube_get_object(c, &t, &o, &e) == KT_OK) {
			copy(out, 254, jpath(o, "spec", "csi", "driver", NULL));
			json_decref(o);
			if (out[0])
				return;
		}
	}
	const char *sc = jpath(pvc, "spec", "storageClassName", NULL);
	if (*sc) {
		target(&t, "storage.k8s.io", "v1", "storageclasses", NULL, sc);
		if (kt_kube_get_object(c, &t, &o, &e) == KT_OK) {
			copy(out, 254, jpath(o, "provisioner", NULL));
			json_decref(o);
		}
	}
}

/* ---- create ---------------------------------------------------------- */

static kt_code get_pvc(kt_kube *c, const char *ns, const char *name, json_t **out,
                       kt_error *err)
{
	kt_kube_target t;
	target(&t, "", "v1", "persistentvolumeclaims", ns, name);
	kt_code rc = kt_kube_get_object(c, &t, out, err);
	if (rc == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "PersistentVolumeClaim '%s' not found in "
		                    "namespace '%s' (list them with kubectl get pvc -n %s)", name, ns,
		                    ns);
	return rc;
}

kt_code kt_vs_create(kt_kube *c, const kt_vs_create_opts *o, kt_vs_info *out, kt_error *err)
{
	if (!o->namespace || !kt_kube_valid_name(o->namespace) || !o->pvc ||
	    !kt_kube_valid_name(o->pvc))
		return kt_error_set(err, KT_EUSAGE, "a snapshot needs a valid PVC name and namespace");
	json_t *pvc = NULL;
	kt_code rc = get_pvc(c, o->namespace, o->pvc, &pvc, err);
	if (rc)
		return rc;
	const char *phase = jpath(pvc, "status", "phase", NULL);
	if (strcmp(phase, "Bound")) {
		rc = kt_error_set(err, KT_EUSAGE, "PersistentVolumeClaim '%s/%s' is %s, not Bound: a "
		                  "snapshot needs a provisioned volume (wait until it is bound)",
		                  o->namespace, o->pvc, *phase ? phase : "without a phase");
		json_decref(pvc);
		return rc;
	}
	char class_name[254], driver[254];
	pvc_driver(c, pvc, driver);
	json_decref(pvc);
	if (o->class_name) {
		kt_kube_target t;
		target(&t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshotclasses", NULL, o->class_name);
		json_t *cls = NULL;
		if ((rc = kt_kube_get_object(c, &t, &cls, err))) {
			if (rc == KT_ENOTFOUND)
				kt_error_set(err, KT_ENOTFOUND, "VolumeSnapshotClass '%s' does not exist "
				             "(list them with kubectl get volumesnapshotclass)",
				             o->class_name);
			return rc;
		}
		const char *d = jpath(cls, "driver", NULL);
		if (driver[0] && strcmp(d, driver)) {
			rc = kt_error_set(err, KT_EUSAGE, "VolumeSnapshotClass '%s' is for driver '%s' "
			                  "but the volume of '%s/%s' belongs to '%s'", o->class_name, d,
			                  o->namespace, o->pvc, driver);
			json_decref(cls);
			return rc;
		}
		json_decref(cls);
		copy(class_name, sizeof(class_name), o->class_name);
	} else if ((rc = kt_vs_default_class(c, driver[0] ? driver : NULL, class_name, err))) {
		return rc;
	}

	char name[254];
	if (o->name) {
		if (!kt_kube_valid_name(o->name))
			return kt_error_set(err, KT_EUSAGE, "'%s' is not a valid object name (lowercase "
			                    "letters, digits, '-' and '.', at most 253)", o->name);
		copy(name, sizeof(name), o->name);
	} else {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		snprintf(name, sizeof(name), "%.*s-%.14s", 253 - 15, o->pvc, stamp);
	}
	json_t *vs = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:{s:s}}}",
	                       "apiVersion", KT_VS_GROUP "/" KT_VS_VERSION, "kind", "VolumeSnapshot",
	                       "metadata", "name", name, "namespace", o->namespace, "labels",
	                       "app.kubernetes.io/managed-by", "kontinuity",
	                       "spec", "volumeSnapshotClassName", class_name, "source",
	                       "persistentVolumeClaimName", o->pvc);
	kt_kube_target t;
	VS(&t, o->namespace, NULL);
	json_t *created = NULL;
	rc = kt_kube_create(c, &t, vs, &created, err);
	json_decref(vs);
	if (rc == KT_EEXIST)
		return kt_error_set(err, KT_EEXIST, "a VolumeSnapshot '%s' already exists in namespace "
		                    "'%s' (choose another --name)", name, o->namespace);
	if (rc)
		return rc;
	kt_vs_info_from(out, created);
	json_decref(created);
	return KT_OK;
}

/* ---- wait ------------------------------------------------------------ */

typedef struct wait_ctx {
	kt_vs_info *now;
	kt_vs_progress_fn progress;
	void *pctx;
	int64_t start;
	int done;    /* 1 ready, 2 error, 3 deleted */
} wait_ctx;

static void judge(wait_ctx *w, json_t *obj)
{
	kt_vs_info_from(w->now, obj);
	if (w->now->ready == 1)
		w->done = 1;
	else if (w->now->error[0])
		w->done = 2;
	if (w->progress)
		w->progress(w->pctx, w->now, kt_now_ms() - w->start);
}

static kt_code on_vs_event(void *ctx, const char *type, json_t *obj, int *stop, kt_error *err)
{
	(void)err;
	wait_ctx *w = ctx;
	if (!strcmp(type, "DELETED"))
		w->done = 3;
	else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED"))
		judge(w, obj);
	*stop = w->done != 0;
	return KT_OK;
}

/* The snapshotHandle and driver of a content (best effort: "" if
 * unreadable). */
static void content_handle(kt_kube *c, kt_vs_info *v)
{
	v->handle[0] = v->driver[0] = '\0';
	if (!v->content[0])
		return;
	kt_kube_target t;
	target(&t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshotcontents", NULL, v->content);
	json_t *o = NULL;
	kt_error e;
	if (kt_kube_get_object(c, &t, &o, &e) == KT_OK) {
		copy(v->handle, sizeof(v->handle), jpath(o, "status", "snapshotHandle", NULL));
		copy(v->driver, sizeof(v->driver), jpath(o, "spec", "driver", NULL));
		json_decref(o);
	}
}

kt_code kt_vs_wait_ready(kt_kube *c, const char *ns, const char *name, int64_t timeout_ms,
                         kt_vs_progress_fn progress, void *ctx, kt_vs_info *out,
                         kt_error *err)
{
	wait_ctx w = { out, progress, ctx, kt_now_ms(), 0 };
	char rv[128] = "", selector[300];
	snprintf(selector, sizeof(selector), "metadata.name=%s", name);
	kt_kube_target t;
	kt_code rc = KT_OK;
	while (!w.done) {
		if (!rv[0]) {
			/* (Re)start from the object as it is now. */
			json_t *o = NULL;
			VS(&t, ns, name);
			if ((rc = kt_kube_get_object(c, &t, &o, err))) {
				if (rc == KT_ENOTFOUND)
					kt_error_set(err, KT_ENOTFOUND, "VolumeSnapshot '%s/%s' does not exist "
					             "(it was deleted while we waited?)", ns, name);
				return rc;
			}
			copy(rv, sizeof(rv), jpath(o, "metadata", "resourceVersion", NULL));
			judge(&w, o);
			json_decref(o);
			if (w.done)
				break;
		}
		int64_t left = timeout_ms - (kt_now_ms() - w.start);
		if (left <= 0)
			break;
		VS(&t, ns, NULL);
		kt_kube_watch_opts wo = { .resource_version = rv, .field_selector = selector,
		                          .timeout_s = (unsigned)(left / 1000 + 1) };
		char last[128] = "";
		rc = kt_kube_watch(c, &t, &wo, on_vs_event, &w, last, err);
		if (rc && err && err->status == 410) {
			rv[0] = '\0';  /* too old: read the object again */
			continue;
		}
		if (rc)
			return rc;
		if (last[0])
			copy(rv, sizeof(rv), last);
	}
	switch (w.done) {
	case 1:
		content_handle(c, out);
		return KT_OK;
	case 2:
		return kt_error_set(err, KT_EREMOTE, "VolumeSnapshot '%s/%s' failed: %s", ns, name,
		                    out->error);
	case 3:
		return kt_error_set(err, KT_ENOTFOUND, "VolumeSnapshot '%s/%s' was deleted while we "
		                    "waited for it", ns, name);
	default:
		return kt_error_set(err, KT_ETRANSIENT, "VolumeSnapshot '%s/%s' is not ready after "
		                    "%.0f s (it may still become ready: 'kontinuity snapshot list -n "
		                    "%s')", ns, name, (double)timeout_ms / 1000.0, ns);
	}
}

/* ---- list, delete ---------------------------------------------------- */

typedef struct handle_map {
	char (*content)[254];
	char (*handle)[1024];
	size_t n, cap;
} handle_map;

static kt_code on_content(void *ctx, json_t *obj, kt_error *err)
{
	handle_map *m = ctx;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		void *a = realloc(m->content, m->cap * sizeof(*m->content));
		void *b = a ? realloc(m->handle, m->cap * sizeof(*m->handle)) : NULL;
		if (!a || !b) {
			if (a)
				m->content = a;
			return kt_error_set(err, KT_ENOMEM, "out of memory listing snapshot contents");
		}
		m->content = a;
		m->handle = b;
	}
	copy(m->content[m->n], sizeof(m->content[0]), jpath(obj, "metadata", "name", NULL));
	copy(m->handle[m->n], sizeof(m->handle[0]), jpath(obj, "status", "snapshotHandle", NULL));
	m->n++;
	return KT_OK;
}

typedef struct list_ctx {
	handle_map *m;
	kt_vs_info_fn fn;
	void *ctx;
	kt_vs_info info;
} list_ctx;

static kt_code on_vs(void *ctx, json_t *obj, kt_error *err)
{
	list_ctx *l = ctx;
	kt_vs_info_from(&l->info, obj);
	for (size_t i = 0; i < l->m->n && l->info.content[0]; i++)
		if (!strcmp(l->m->content[i], l->info.content)) {
			copy(l->info.handle, sizeof(l->info.handle), l->m->handle[i]);
			break;
		}
	return l->fn(l->ctx, &l->info, err);
}

kt_code kt_vs_list(kt_kube *c, const char *ns, kt_vs_info_fn fn, void *ctx, kt_error *err)
{
	handle_map m = { 0 };
	kt_kube_target t;
	kt_error e;
	kt_error_clear(&e);
	/* Contents are cluster-scoped; reading them may be forbidden to a
	 * namespace user: then the handles stay empty. */
	target(&t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshotcontents", NULL, NULL);
	kt_code rc = kt_kube_list(c, &t, NULL, on_content, &m, NULL, &e);
	if (rc == KT_ENOTFOUND) {
		rc = kt_error_set(err, KT_ENOTFOUND, "the cluster does not serve %s/%s volume "
		                  "snapshots: install the snapshot CRDs and controller (see "
		                  "'kontinuity doctor')", KT_VS_GROUP, KT_VS_VERSION);
	} else {
		list_ctx *l = kt_xcalloc(1, sizeof(*l));
		l->m = &m;
		l->fn = fn;
		l->ctx = ctx;
		VS(&t, ns, NULL);
		rc = kt_kube_list(c, &t, NULL, on_vs, l, NULL, err);
		free(l);
	}
	free(m.content);
	free(m.handle);
	return rc;
}

kt_code kt_vs_import(kt_kube *c, const char *ns, const char *name, const char *handle,
                     const char *driver, const char *class_name, kt_error *err)
{
	if (!handle || !*handle || !driver || !*driver)
		return kt_error_set(err, KT_EUSAGE, "importing a snapshot into '%s' needs its "
		                    "snapshotHandle and driver", ns);
	char content[254];
	snprintf(content, sizeof(content), "kt-%.*s-%.*s", 100, ns, 140, name);
	json_t *vsc = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:s, s:{s:s}, "
	                        "s:{s:s, s:s}}}",
	                        "apiVersion", KT_VS_GROUP "/" KT_VS_VERSION, "kind",
	                        "VolumeSnapshotContent", "metadata", "name", content, "labels",
	                        "app.kubernetes.io/managed-by", "kontinuity", "spec",
	                        "deletionPolicy", "Retain", "driver", driver, "source",
	                        "snapshotHandle", handle, "volumeSnapshotRef", "namespace", ns,
	                        "name", name);
	json_t *spec = json_object_get(vsc, "spec");
	if (class_name && *class_name)
		json_object_set_new(spec, "volumeSnapshotClassName", json_string(class_name));
	kt_kube_target t;
	target(&t, KT_VS_GROUP, KT_VS_VERSION, "volumesnapshotcontents", NULL, NULL);
	kt_code rc = kt_kube_create(c, &t, vsc, NULL, err);
	json_decref(vsc);
	if (rc && rc != KT_EEXIST)
		return rc;
	json_t *vs = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:{s:s}}}",
	                       "apiVersion", KT_VS_GROUP "/" KT_VS_VERSION, "kind", "VolumeSnapshot",
	                       "metadata", "name", name, "namespace", ns, "labels",
	                       "app.kubernetes.io/managed-by", "kontinuity", "spec", "source",
	                       "volumeSnapshotContentName", content);
	VS(&t, ns, NULL);
	rc = kt_kube_create(c, &t, vs, NULL, err);
	json_decref(vs);
	if (rc == KT_EEXIST)
		return kt_error_set(err, KT_EEXIST, "VolumeSnapshot '%s' already exists in namespace "
		                    "'%s'", name, ns);
	return rc;
}

kt_code kt_vs_delete(kt_kube *c, const char *ns, const char *name, kt_error *err)
{
	kt_kube_target t;
	VS(&t, ns, name);
	kt_code rc = kt_kube_delete(c, &t, NULL, err);
	if (rc == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "VolumeSnapshot '%s' not found in namespace "
		                    "'%s'", name, ns);
	return rc;
}

/* ---- restore --------------------------------------------------------- */

kt_code kt_vs_restore(kt_kube *c, const kt_vs_restore_opts *o, json_t **out, kt_error *err)
{
	if (!o->pvc || !kt_kube_valid_name(o->pvc))
		return kt_error_set(err, KT_EUSAGE, "--to-pvc needs a valid object name");
	kt_kube_target t;
	json_t *vs = NULL;
	VS(&t, o->namespace, o->snapshot);
	kt_code rc = kt_kube_get_object(c, &t, &vs, err);
	if (rc == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "VolumeSnapshot '%s' not found in namespace "
		                    "'%s'", o->snapshot, o->namespace);
	if (rc)
		return rc;
	kt_vs_info info;
	kt_vs_info_from(&info, vs);
	json_decref(vs);
	if (info.ready != 1)
		return kt_error_set(err, KT_EUSAGE, "VolumeSnapshot '%s/%s' is not ready to use%s%s "
		                    "(wait with 'kontinuity snapshot create --wait' or check 'snapshot "
		                    "list')", o->namespace, o->snapshot, info.error[0] ? ": " : "",
		                    info.error);
	const char *size = o->size ? o->size : info.restore_size;
	uint64_t want = 0, min = 0;
	if (!*size)
		return kt_error_set(err, KT_EUSAGE, "VolumeSnapshot '%s/%s' reports no restoreSize: "
		                    "pass --size", o->namespace, o->snapshot);
	if ((rc = kt_vs_quantity(size, &want, err)))
		return rc;
	if (info.restore_size[0] && kt_vs_quantity(info.restore_size, &min, NULL) == KT_OK &&
	    want < min)
		return kt_error_set(err, KT_EUSAGE, "--size %s is smaller than the snapshot's "
		                    "restoreSize %s: a volume cannot be restored into less", size,
		                    info.restore_size);

	/* Defaults from the source claim when it still exists. */
	json_t *src = NULL;
	kt_error e;
	const char *sc = o->storage_class, *mode = o->access_mode;
	const char *volume_mode = "";
	if (info.pvc[0] && get_pvc(c, o->namespace, info.pvc, &src, &e) == KT_OK) {
		if (!sc && *jpath(src, "spec", "storageClassName", NULL))
			sc = jpath(src, "spec", "storageClassName", NULL);
		json_t *modes = jget(src, "spec", "accessModes");
		if (!mode && json_is_string(json_array_get(modes, 0)))
			mode = json_string_value(json_array_get(modes, 0));
		volume_mode = jpath(src, "spec", "volumeMode", NULL);
	}
	if (!mode)
		mode = "ReadWriteOnce";
	if (strcmp(mode, "ReadWriteOnce") && strcmp(mode, "ReadOnlyMany") &&
	    strcmp(mode, "ReadWriteMany") && strcmp(mode, "ReadWriteOncePod")) {
		json_decref(src);
		return kt_error_set(err, KT_EUSAGE, "access mode '%s' is not one of ReadWriteOnce, "
		                    "ReadOnlyMany, ReadWriteMany, ReadWriteOncePod", mode);
	}
	char source[600];
	snprintf(source, sizeof(source), "%s/%s", o->namespace, o->snapshot);
	json_t *pvc = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s}}, "
	                        "s:{s:[s], s:{s:{s:s}}, s:{s:s, s:s, s:s}}}",
	                        "apiVersion", "v1", "kind", "PersistentVolumeClaim",
	                        "metadata", "name", o->pvc, "namespace", o->namespace,
	                        "labels", "app.kubernetes.io/managed-by", "kontinuity",
	                        "annotations", "kontinuity.io/restored-from", source,
	                        "spec", "accessModes", mode, "resources", "requests", "storage", size,
	                        "dataSource", "apiGroup", KT_VS_GROUP, "kind", "VolumeSnapshot",
	                        "name", o->snapshot);
	json_t *spec = json_object_get(pvc, "spec");
	if (sc)
		json_object_set_new(spec, "storageClassName", json_string(sc));
	if (*volume_mode)
		json_object_set_new(spec, "volumeMode", json_string(volume_mode));
	json_decref(src);
	target(&t, "", "v1", "persistentvolumeclaims", o->namespace, NULL);
	rc = kt_kube_create(c, &t, pvc, out, err);
	json_decref(pvc);
	if (rc == KT_EEXIST)
		return kt_error_set(err, KT_EEXIST, "PersistentVolumeClaim '%s' already exists in "
		                    "namespace '%s': restore into a new name", o->pvc, o->namespace);
	return rc;
}

typedef struct bound_ctx {
	int bound, gone;
} bound_ctx;

static kt_code on_pvc_event(void *ctx, const char *type, json_t *obj, int *stop,
                            kt_error *err)
{
	(void)err;
	bound_ctx *b = ctx;
	if (!strcmp(type, "DELETED"))
		b->gone = 1;
	else if (!strcmp(jpath(obj, "status", "phase", NULL), "Bound"))
		b->bound = 1;
	*stop = b->bound || b->gone;
	return KT_OK;
}

kt_code kt_vs_wait_bound(kt_kube *c, const char *ns, const char *name, int64_t timeout_ms,
                         int *waits_for_consumer, kt_error *err)
{
	*waits_for_consumer = 0;
	json_t *pvc = NULL;
	kt_code rc = get_pvc(c, ns, name, &pvc, err);
	if (rc)
		return rc;
	const char *sc = jpath(pvc, "spec", "storageClassName", NULL);
	bound_ctx b = { !strcmp(jpath(pvc, "status", "phase", NULL), "Bound"), 0 };
	char rv[128];
	copy(rv, sizeof(rv), jpath(pvc, "metadata", "resourceVersion", NULL));
	kt_kube_target t;
	if (!b.bound && *sc) {
		json_t *cls = NULL;
		kt_error e;
		target(&t, "storage.k8s.io", "v1", "storageclasses", NULL, sc);
		if (kt_kube_get_object(c, &t, &cls, &e) == KT_OK) {
			*waits_for_consumer = !strcmp(jpath(cls, "volumeBindingMode", NULL),
			                              "WaitForFirstConsumer");
			json_decref(cls);
		}
	}
	json_decref(pvc);
	if (b.bound || *waits_for_consumer)
		return KT_OK;
	char selector[300];
	snprintf(selector, sizeof(selector), "metadata.name=%s", name);
	int64_t start = kt_now_ms();
	while (!b.bound && !b.gone) {
		int64_t left = timeout_ms - (kt_now_ms() - start);
		if (left <= 0)
			return kt_error_set(err, KT_ETRANSIENT, "PersistentVolumeClaim '%s/%s' is not "
			                    "bound after %.0f s (kubectl describe pvc -n %s %s shows why)",
			                    ns, name, (double)timeout_ms / 1000.0, ns, name);
		target(&t, "", "v1", "persistentvolumeclaims", ns, NULL);
		kt_kube_watch_opts wo = { .resource_version = rv, .field_selector = selector,
		                          .timeout_s = (unsigned)(left / 1000 + 1) };
		char last[128] = "";
		if ((rc = kt_kube_watch(c, &t, &wo, on_pvc_event, &b, last, err)))
			return rc;
		if (last[0])
			copy(rv, sizeof(rv), last);
	}
	if (b.gone)
		return kt_error_set(err, KT_ENOTFOUND, "PersistentVolumeClaim '%s/%s' was deleted "
		                    "while we waited for it", ns, name);
	return KT_OK;
}
