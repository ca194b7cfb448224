/*
 * doctor.c - `kontinuity doctor`: is this cluster ready for kontinuity?
 * One check per line, each with what was found and, when it is not ok,
 * the fix.  The checks, in order:
 *   crds          the snapshot.storage.k8s.io/v1 resources are served
 *   classes       at most one default VolumeSnapshotClass per driver, and one
 *                 at all
 *   driver:<d>    for every CSI driver in use (PVs, StorageClasses): a class
 *                 for it, default for it
 *   rbac          SelfSubjectAccessReview of every verb the snapshot and
 *                 restore commands use
 *   etcd          on a control-plane node (the etcd static pod manifest
 *                 exists): etcd answers Status with the kubeadm
 *                 health-check client certificate
 * Only an unreachable API server is an error; everything else is a result.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "etcd/etcd.h"
#include "volsnap.h"

#define MAX_DRIVERS 32

typedef struct checks {
	kt_doctor_check *v;
	size_t n, cap;
} checks;

static kt_doctor_check *add(checks *c, const char *id, kt_doctor_result r)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		kt_doctor_check *v = realloc(c->v, c->cap * sizeof(*v));
		if (!v)
			abort();
		c->v = v;
	}
	kt_doctor_check *k = &c->v[c->n++];
	memset(k, 0, sizeof(*k));
	k->id = id;
	k->result = r;
	return k;
}

static const char *jstr(json_t *o, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	const char *s = json_string_value(v);
	return s ? s : "";
}

/* ---- drivers and classes --------------------------------------------- */

typedef struct drivers {
	char name[MAX_DRIVERS][254];
	unsigned n_classes[MAX_DRIVERS], n_default[MAX_DRIVERS];
	char class_names[MAX_DRIVERS][254];
	size_t n;
	unsigned total_classes, total_default;
} drivers;

static int driver_slot(drivers *d, const char *name)
{
	if (!*name || !strncmp(name, "kubernetes.io/", 14))
		return -1; /* in-tree provisioners cannot take CSI snapshots */
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->name[i], name))
			return (int)i;
	if (d->n == MAX_DRIVERS)
		return -1;
	snprintf(d->name[d->n], sizeof(d->name[0]), "%s", name);
	return (int)d->n++;
}

static kt_code on_pv(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	driver_slot(ctx, jstr(obj, "spec", "csi", "driver"));
	return KT_OK;
}

static kt_code on_sc(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	driver_slot(ctx, jstr(obj, "provisioner", NULL, NULL));
	return KT_OK;
}

static kt_code on_class(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	drivers *d = ctx;
	int is_default = !strcmp(jstr(obj, "metadata", "annotations", KT_VS_DEFAULT_ANNOTATION),
	                         "true");
	d->total_classes++;
	d->total_default += (unsigned)is_default;
	int i = driver_slot(d, jstr(obj, "driver", NULL, NULL));
	if (i < 0)
		return KT_OK;
	d->n_classes[i]++;
	if (is_default) {
		d->n_default[i]++;
		snprintf(d->class_names[i], sizeof(d->class_names[0]), "%s",
		         jstr(obj, "metadata", "name", NULL));
	}
	return KT_OK;
}

static void list_into(kt_kube *c, const char *group, const char *resource,
                      kt_kube_object_fn fn, void *ctx)
{
	kt_kube_target t = { .group = group, .version = "v1", .resource = resource };
	kt_error e;
	kt_kube_list(c, &t, NULL, fn, ctx, NULL, &e); /* best effort: RBAC is checked below */
}

static void check_classes(kt_kube *c, checks *out)
{
	drivers *d = kt_xcalloc(1, sizeof(*d));
	list_into(c, "", "persistentvolumes", on_pv, d);
	list_into(c, "storage.k8s.io", "storageclasses", on_sc, d);
	size_t in_use = d->n;
	kt_kube_target t = { .group = KT_VS_GROUP, .version = KT_VS_VERSION,
	                     .resource = "volumesnapshotclasses" };
	kt_error e;
	if (kt_kube_list(c, &t, NULL, on_class, d, NULL, &e)) {
		kt_doctor_check *k = add(out, "classes", KT_DOCTOR_FAIL);
		snprintf(k->detail, sizeof(k->detail), "cannot list VolumeSnapshotClasses: %.400s", e.msg);
		snprintf(k->fix, sizeof(k->fix), "install the snapshot CRDs, and allow this identity "
		         "to list volumesnapshotclasses");
		free(d);
		return;
	}
	kt_doctor_check *k;
	if (d->total_default == 0) {
		k = add(out, "classes", KT_DOCTOR_FAIL);
		snprintf(k->detail, sizeof(k->detail), "%u VolumeSnapshotClasses, none marked default",
		         d->total_classes);
		snprintf(k->fix, sizeof(k->fix), "kubectl annotate volumesnapshotclass NAME "
		         "%s=true (one per CSI driver)", KT_VS_DEFAULT_ANNOTATION);
	} else {
		k = add(out, "classes", KT_DOCTOR_OK);
		snprintf(k->detail, sizeof(k->detail), "%u VolumeSnapshotClasses, %u marked default",
		         d->total_classes, d->total_default);
	}
	for (size_t i = 0; i < in_use; i++) {
		k = add(out, "driver", KT_DOCTOR_OK);
		if (d->n_classes[i] == 0) {
			k->result = KT_DOCTOR_FAIL;
			snprintf(k->detail, sizeof(k->detail), "CSI driver %s is in use and has no "
			         "VolumeSnapshotClass: its volumes cannot be snapshotted", d->name[i]);
			snprintf(k->fix, sizeof(k->fix), "create a VolumeSnapshotClass with driver: %s "
			         "and annotation %s: \"true\"", d->name[i], KT_VS_DEFAULT_ANNOTATION);
		} else if (d->n_default[i] == 0) {
			k->result = KT_DOCTOR_WARN;
			snprintf(k->detail, sizeof(k->detail), "CSI driver %s has %u VolumeSnapshotClasses "
			         "but no default one", d->name[i], d->n_classes[i]);
			snprintf(k->fix, sizeof(k->fix), "annotate one of them with %s=true, or always "
			         "pass --class", KT_VS_DEFAULT_ANNOTATION);
		} else if (d->n_default[i] > 1) {
			k->result = KT_DOCTOR_FAIL;
			snprintf(k->detail, sizeof(k->detail), "CSI driver %s has %u default "
			         "VolumeSnapshotClasses: snapshots without a class will fail",
			         d->name[i], d->n_default[i]);
			snprintf(k->fix, sizeof(k->fix), "remove the %s annotation from all but one",
			         KT_VS_DEFAULT_ANNOTATION);
		} else {
			snprintf(k->detail, sizeof(k->detail), "CSI driver %s has the default "
			         "VolumeSnapshotClass %s", d->name[i], d->class_names[i]);
		}
	}
	free(d);
}

/* ---- RBAC ------------------------------------------------------------ */

static const struct {
	const char *group, *resource, *verbs;
} needs[] = {
	{ KT_VS_GROUP, "volumesnapshots", "create get list watch delete" },
	{ KT_VS_GROUP, "volumesnapshotcontents", "get list" },
	{ KT_VS_GROUP, "volumesnapshotclasses", "get list" },
	{ "", "persistentvolumeclaims", "create get list watch" },
	{ "", "persistentvolumes", "get list" },
	{ "storage.k8s.io", "storageclasses", "get list" },
};

static void check_rbac(kt_kube *c, checks *out)
{
	char denied[480] = "";
	unsigned n_checked = 0, n_denied = 0;
	kt_error e;
	kt_kube_target t = { .group = "authorization.k8s.io", .version = "v1",
	                     .resource = "selfsubjectaccessreviews" };
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		char verbs[64];
		snprintf(verbs, sizeof(verbs), "%s", needs[i].verbs);
		for (char *v = verbs, *sp; v && *v; v = sp ? sp + 1 : NULL) {
			sp = strchr(v, ' ');
			if (sp)
				*sp = '\0';
			json_t *req = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:s}}}", "apiVersion",
			                        "authorization.k8s.io/v1", "kind",
			                        "SelfSubjectAccessReview", "spec", "resourceAttributes",
			                        "verb", v, "group", needs[i].group, "resource",
			                        needs[i].resource);
			json_t *res = NULL;
			kt_code rc = kt_kube_create(c, &t, req, &res, &e);
			json_decref(req);
			if (rc) {
				kt_doctor_check *k = add(out, "rbac", KT_DOCTOR_FAIL);
				snprintf(k->detail, sizeof(k->detail), "cannot ask the API server what this "
				         "identity may do: %.400s", e.msg);
				snprintf(k->fix, sizeof(k->fix), "allow create on "
				         "selfsubjectaccessreviews.authorization.k8s.io (every role has it by "
				         "default)");
				return;
			}
			n_checked++;
			if (!json_is_true(json_object_get(json_object_get(res, "status"), "allowed"))) {
				size_t n = strlen(denied);
				snprintf(denied + n, sizeof(denied) - n, "%s%s %s%s%s", n ? ", " : "", v,
				         needs[i].resource, *needs[i].group ? "." : "", needs[i].group);
				n_denied++;
			}
			json_decref(res);
		}
	}
	kt_doctor_check *k = add(out, "rbac", n_denied ? KT_DOCTOR_FAIL : KT_DOCTOR_OK);
	if (n_denied) {
		snprintf(k->detail, sizeof(k->detail), "%u of %u permissions missing: %s", n_denied,
		         n_checked, denied);
		snprintf(k->fix, sizeof(k->fix), "grant them to this identity with a ClusterRole and "
		         "binding (kubectl auth can-i --list shows what it has)");
	} else {
		snprintf(k->detail, sizeof(k->detail), "all %u permissions the snapshot commands use "
		         "are granted", n_checked);
	}
}

/* ---- etcd ------------------------------------------------------------ */

static void check_etcd(const kt_doctor_opts *o, checks *out)
{
	const char *manifest = o && o->etcd_manifest ? o->etcd_manifest
	                                             : "/etc/kubernetes/manifests/etcd.yaml";
	struct stat st;
	if (stat(manifest, &st) != 0) {
		kt_doctor_check *k = add(out, "etcd", KT_DOCTOR_SKIP);
		snprintf(k->detail, sizeof(k->detail), "not a control-plane node (no %s)", manifest);
		return;
	}
	kt_kube_staticpod pod;
	kt_error e;
	kt_doctor_check *k;
	if (kt_kube_staticpod_load(&pod, manifest, NULL, &e)) {
		k = add(out, "etcd", KT_DOCTOR_FAIL);
		snprintf(k->detail, sizeof(k->detail), "%.500s", e.msg);
		snprintf(k->fix, sizeof(k->fix), "fix the etcd manifest, or pass --etcd-manifest");
		return;
	}
	const char *urls = kt_kube_staticpod_flag(&pod, "listen-client-urls");
	const char *ca = kt_kube_staticpod_flag(&pod, "trusted-ca-file");
	char endpoint[256] = "https://127.0.0.1:2379";
	if (urls) {
		/* The first URL on the loopback, else the first one. */
		const char *pick = urls;
		for (const char *u = urls; *u; u += strcspn(u, ",") + (u[strcspn(u, ",")] != 0))
			if (!strncmp(u, "https://127.0.0.1:", 18) || !strncmp(u, "http://127.0.0.1:", 17)) {
				pick = u;
				break;
			}
		size_t n = strcspn(pick, ",");
		snprintf(endpoint, sizeof(endpoint), "%.*s", (int)n, pick);
	}
	char dir[512] = "/etc/kubernetes/pki/etcd";
	if (ca && strrchr(ca, '/'))
		snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(ca, '/') - ca), ca);
	char cert[600], key[600];
	snprintf(cert, sizeof(cert), "%s/healthcheck-client.crt", dir);
	snprintf(key, sizeof(key), "%s/healthcheck-client.key", dir);
	kt_etcd_conn conn = { .endpoint = endpoint, .cacert = ca, .cert = cert, .key = key,
	                      .timeout_ms = o && o->etcd_timeout_ms ? o->etcd_timeout_ms : 5000,
	                      .connect_timeout_ms = 3000 };
	kt_etcd_status_msg st_msg;
	if (kt_etcd_status(&conn, &st_msg, &e)) {
		k = add(out, "etcd", KT_DOCTOR_FAIL);
		snprintf(k->detail, sizeof(k->detail), "etcd at %s does not answer: %.300s", endpoint,
		         e.msg);
		snprintf(k->fix, sizeof(k->fix), "check the etcd pod (crictl ps, crictl logs) and "
		         "the certificates in %s", dir);
	} else {
		k = add(out, "etcd", KT_DOCTOR_OK);
		snprintf(k->detail, sizeof(k->detail), "etcd %s at %s, revision %lld",
		         st_msg.version, endpoint, (long long)st_msg.header.revision);
	}
	kt_kube_staticpod_release(&pod);
}

/* ---- all ------------------------------------------------------------- */

kt_code kt_doctor_run(kt_kube *c, const kt_doctor_opts *o, kt_doctor_check **out,
                      size_t *n_out, kt_error *err)
{
	const kt_kube_resource *res;
	size_t n_res;
	kt_code rc = kt_kube_discover(c, &res, &n_res, err);
	if (rc)
		return rc;
	checks cs = { 0 };
	static const char *const want[] = { "volumesnapshots", "volumesnapshotcontents",
		                            "volumesnapshotclasses" };
	char missing[200] = "";
	for (size_t w = 0; w < 3; w++) {
		int found = 0;
		for (size_t i = 0; i < n_res && !found; i++)
			found = !strcmp(res[i].group, KT_VS_GROUP) &&
			        !strcmp(res[i].version, KT_VS_VERSION) &&
			        !strcmp(res[i].resource, want[w]);
		if (!found) {
			size_t n = strlen(missing);
			snprintf(missing + n, sizeof(missing) - n, "%s%s", n ? ", " : "", want[w]);
		}
	}
	kt_doctor_check *k = add(&cs, "crds", missing[0] ? KT_DOCTOR_FAIL : KT_DOCTOR_OK);
	if (missing[0]) {
		snprintf(k->detail, sizeof(k->detail), "%s/%s not served: %s", KT_VS_GROUP,
		         KT_VS_VERSION, missing);
		snprintf(k->fix, sizeof(k->fix), "install the VolumeSnapshot CRDs and the snapshot "
		         "controller (kubectl apply -f deploy/crds/snapshot.storage.k8s.io/)");
		k = add(&cs, "classes", KT_DOCTOR_SKIP);
		snprintf(k->detail, sizeof(k->detail), "needs the CRDs");
	} else {
		snprintf(k->detail, sizeof(k->detail), "%s/%s VolumeSnapshot, VolumeSnapshotContent "
		         "and VolumeSnapshotClass are served", KT_VS_GROUP, KT_VS_VERSION);
		check_classes(c, &cs);
	}
	check_rbac(c, &cs);
	check_etcd(o, &cs);
	*out = cs.v;
	*n_out = cs.n;
	return KT_OK;
}
