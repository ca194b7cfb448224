/*
 * cmd_snapshot.c - `kontinuity snapshot create|list|delete|restore` (CSI
 * VolumeSnapshots of PVCs) and `kontinuity doctor`, over src/volsnap.
 * kt_cli_kube_connect turns the shared --kubeconfig/--context flags
 * (kube_flags.c) into a client.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kube/kube.h"
#include "volsnap/volsnap.h"

/* ---- the API client from the shared flags ----------------------------- */

int kt_cli_kube_connect(const kt_cli_kube_flags *f, kt_kube **out)
{
	kt_kube_config cfg;
	kt_error err;
	kt_kube_config_init(&cfg);
	int rc = kt_cli_kube_config(f, &cfg);
	if (!rc) {
		kt_kube_opts o = { .cancel = &kt_cli_cancel };
		if (kt_kube_client_new(out, &cfg, &o, &err))
			rc = kt_cli_fail(&err);
	}
	kt_kube_config_release(&cfg);
	return rc;
}

/* The flags of every snapshot command: --kubeconfig, --context and -n. */
static kt_opt *common_opts(kt_cli_kube_flags *kf, const char **ns, kt_opt *o,
                           const char *ns_help)
{
	return kt_cli_kube_ns_opts(kf, ns, NULL, o, ns_help ? ns_help
	                           : "namespace (default: the context's)");
}

/* Connect; *ns defaults to the context's namespace (unless all_ns). */
static int connect_ns(const kt_cli_kube_flags *kf, const char **ns, int all_ns, kt_kube **c)
{
	int rc = kt_cli_kube_connect(kf, c);
	if (!rc && !*ns && !all_ns)
		*ns = kt_kube_client_config(*c)->namespace;
	return rc;
}

/* ---- output ---------------------------------------------------------- */

static json_t *vs_json(const kt_vs_info *v)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "namespace",
	                      v->namespace, "name", v->name, "pvc", v->pvc, "class", v->class_name,
	                      "content", v->content, "snapshotHandle", v->handle, "restoreSize",
	                      v->restore_size, "creationTime", v->created);
	json_object_set_new(o, "readyToUse", v->ready < 0 ? json_null() : json_boolean(v->ready));
	json_object_set_new(o, "error", v->error[0] ? json_string(v->error) : json_null());
	return o;
}

static const kt_column vs_cols[] = {
	{ "NAMESPACE", "namespace" }, { "NAME", "name" }, { "PVC", "pvc" },
	{ "READY", "readyToUse" }, { "SIZE", "restoreSize" }, { "CLASS", "class" },
	{ "CONTENT", "content" }, { "HANDLE", "snapshotHandle" }, { "CREATED", "creationTime" },
	{ "ERROR", "error" },
};
#define N_VS_COLS (sizeof(vs_cols) / sizeof(vs_cols[0]))

static int parse_timeout(const char *path, const char *text, int64_t *ms)
{
	kt_error err;
	if (kt_parse_duration_ms(text, ms, &err))
		return kt_cli_usage(path, "--timeout: %s", err.msg);
	return 0;
}

/* ---- create ---------------------------------------------------------- */

typedef struct progress {
	int last_ready;
	char last_content[254];
	int64_t last_print;
} progress;

static void on_progress(void *ctx, const kt_vs_info *now, int64_t waited_ms)
{
	progress *p = ctx;
	if (now->ready == p->last_ready && !strcmp(now->content, p->last_content) &&
	    waited_ms - p->last_print < 10000)
		return;
	p->last_ready = now->ready;
	snprintf(p->last_content, sizeof(p->last_content), "%s", now->content);
	p->last_print = waited_ms;
	fprintf(stderr, "waiting for VolumeSnapshot %s/%s: readyToUse=%s content=%s (%.0f s)\n",
	        now->namespace, now->name,
	        now->ready < 0 ? "(not reported)" : now->ready ? "true" : "false",
	        now->content[0] ? now->content : "(none yet)", (double)waited_ms / 1000.0);
}

int kt_cmd_snapshot_create(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "snapshot create";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns, *class_name = NULL, *name = NULL, *timeout = "10m";
	int wait = 0;
	kt_opt opts[10], *o = common_opts(&kf, &ns, opts, "namespace of the PVC (default: the "
	                                  "context's)");
	*o++ = (kt_opt){ "class", 0, "NAME", "VolumeSnapshotClass (default: the one annotated "
	                 KT_VS_DEFAULT_ANNOTATION "=true for the volume's CSI driver)",
	                 &class_name, NULL };
	*o++ = (kt_opt){ "name", 0, "NAME", "name of the VolumeSnapshot (default: "
	                 "PVC-yyyymmddhhmmss, UTC)", &name, NULL };
	*o++ = (kt_opt){ "wait", 0, NULL, "wait until the snapshot is readyToUse, showing "
	                 "progress, and print its content and snapshotHandle", NULL, &wait };
	*o++ = (kt_opt){ "timeout", 0, "DURATION", "how long --wait waits (default 10m)",
	                 &timeout, NULL };
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "PVC [-n NS] [--class NAME] [--wait]",
	                      "Take a crash-consistent CSI snapshot of a PersistentVolumeClaim: "
	                      "create a\n"
	                      "VolumeSnapshot (snapshot.storage.k8s.io/v1) for it.  The snapshot "
	                      "controller\n"
	                      "and the volume's CSI driver do the work; with --wait this command "
	                      "follows\n"
	                      "the snapshot until it is ready to use (or failed) and prints the\n"
	                      "VolumeSnapshotContent and the storage system's snapshotHandle.\n\n"
	                      "Nothing is created unless the PVC exists and is Bound and a class is "
	                      "found.\n\n"
	                      "Examples:\n"
	                      "  kontinuity snapshot create data-pg-0 -n pg --wait\n"
	                      "  kontinuity snapshot create data -n app --class csi-snap "
	                      "--name before-upgrade\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the PVC to snapshot");
	int64_t timeout_ms;
	if ((rc = parse_timeout(path, timeout, &timeout_ms)))
		return rc;
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((rc = connect_ns(&kf, &ns, 0, &c)))
		return rc;
	kt_error err;
	kt_vs_info info;
	kt_vs_create_opts co = { .namespace = ns, .pvc = pos[0], .name = name,
	                         .class_name = class_name };
	kt_code code = kt_vs_create(c, &co, &info, &err);
	if (!code && wait) {
		progress p = { .last_ready = -2 };
		code = kt_vs_wait_ready(c, info.namespace, info.name, timeout_ms, on_progress, &p,
		                        &info, &err);
	}
	kt_kube_client_free(c);
	if (code)
		return kt_cli_fail(&err);
	json_t *j = vs_json(&info);
	kt_cli_print(j, g.output, vs_cols, N_VS_COLS);
	json_decref(j);
	return 0;
}

/* ---- list ------------------------------------------------------------ */

static kt_code collect(void *ctx, const kt_vs_info *vs, kt_error *err)
{
	(void)err;
	json_array_append_new(ctx, vs_json(vs));
	return KT_OK;
}

int kt_cmd_snapshot_list(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "snapshot list";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	int all = 0;
	kt_opt opts[6], *o = common_opts(&kf, &ns, opts, NULL);
	*o++ = (kt_opt){ "all-namespaces", 'A', NULL, "every namespace", NULL, &all };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "[-n NS | -A]",
	                      "List VolumeSnapshots with their readiness, restore size, class, "
	                      "content and\n"
	                      "the storage system's snapshotHandle.\n\n"
	                      "Examples:\n"
	                      "  kontinuity snapshot list -n pg\n"
	                      "  kontinuity snapshot list -A -o json\n",
	                      NULL, 0, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (all && ns)
		return kt_cli_usage(path, "-n and -A exclude each other");
	kt_kube *c = NULL;
	if ((rc = connect_ns(&kf, &ns, all, &c)))
		return rc;
	json_t *rows = json_array();
	kt_error err;
	kt_code code = kt_vs_list(c, all ? NULL : ns, collect, rows, &err);
	kt_kube_client_free(c);
	if (code) {
		json_decref(rows);
		return kt_cli_fail(&err);
	}
	kt_cli_print_list(rows, g.output, vs_cols, N_VS_COLS, "VolumeSnapshots", all ? NULL : ns);
	json_decref(rows);
	return 0;
}

/* ---- delete ---------------------------------------------------------- */

int kt_cmd_snapshot_delete(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "snapshot delete";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	kt_opt opts[5], *o = common_opts(&kf, &ns, opts, NULL);
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "NAME [-n NS]",
	                      "Delete a VolumeSnapshot.  With the usual deletionPolicy Delete the "
	                      "snapshot\n"
	                      "controller then deletes its VolumeSnapshotContent and the snapshot "
	                      "in the\n"
	                      "storage system; with Retain they stay.\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the VolumeSnapshot to delete");
	kt_kube *c = NULL;
	if ((rc = connect_ns(&kf, &ns, 0, &c)))
		return rc;
	kt_error err;
	kt_code code = kt_vs_delete(c, ns, pos[0], &err);
	kt_kube_client_free(c);
	if (code)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		printf("deleted VolumeSnapshot %s/%s\n", ns, pos[0]);
	} else {
		json_t *j = json_pack("{s:s, s:s, s:b}", "namespace", ns, "name", pos[0], "deleted", 1);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

/* ---- restore --------------------------------------------------------- */

int kt_cmd_snapshot_restore(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "snapshot restore";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns, *to = NULL, *size = NULL, *sc = NULL, *mode = NULL;
	const char *timeout = "10m";
	int wait = 0;
	kt_opt opts[12], *o = common_opts(&kf, &ns, opts, "namespace of the snapshot and the new "
	                                  "PVC (default: the context's)");
	*o++ = (kt_opt){ "to-pvc", 0, "NAME", "name of the PVC to create (required)", &to, NULL };
	*o++ = (kt_opt){ "size", 0, "QUANTITY", "requested size (default: the snapshot's "
	                 "restoreSize; never less)", &size, NULL };
	*o++ = (kt_opt){ "storage-class", 0, "NAME", "StorageClass (default: the source PVC's, "
	                 "else the cluster default)", &sc, NULL };
	*o++ = (kt_opt){ "access-mode", 0, "MODE", "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or "
	                 "ReadWriteOncePod (default: the source PVC's, else ReadWriteOnce)", &mode,
	                 NULL };
	*o++ = (kt_opt){ "wait", 0, NULL, "wait until the new PVC is Bound", NULL, &wait };
	*o++ = (kt_opt){ "timeout", 0, "DURATION", "how long --wait waits (default 10m)",
	                 &timeout, NULL };
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "SNAPSHOT --to-pvc NAME [-n NS] [--wait]",
	                      "Restore a VolumeSnapshot into a new PersistentVolumeClaim: a PVC "
	                      "whose\n"
	                      "dataSource names the snapshot, so the CSI driver provisions a volume "
	                      "holding\n"
	                      "the snapshot's data.  The snapshot must be ready to use.  The source "
	                      "PVC is\n"
	                      "never touched; its storage class, access mode and volume mode are the "
	                      "defaults.\n"
	                      "With a WaitForFirstConsumer storage class the PVC binds only when a "
	                      "pod uses\n"
	                      "it: --wait then says so instead of waiting.\n\n"
	                      "Example:\n"
	                      "  kontinuity snapshot restore data-pg-0-20261127120000 -n pg "
	                      "--to-pvc data-pg-0-copy --wait\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the VolumeSnapshot to restore");
	if (!to)
		return kt_cli_usage(path, "--to-pvc NAME is required (the PVC to create)");
	int64_t timeout_ms;
	if ((rc = parse_timeout(path, timeout, &timeout_ms)))
		return rc;
	kt_error err;
	uint64_t bytes;
	if (size && kt_vs_quantity(size, &bytes, &err))
		return kt_cli_usage(path, "--size: %s", err.msg);
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((rc = connect_ns(&kf, &ns, 0, &c)))
		return rc;
	kt_vs_restore_opts ro = { .namespace = ns, .snapshot = pos[0], .pvc = to, .size = size,
	                          .storage_class = sc, .access_mode = mode };
	json_t *pvc = NULL;
	kt_code code = kt_vs_restore(c, &ro, &pvc, &err);
	int consumer = 0;
	if (!code && wait)
		code = kt_vs_wait_bound(c, ns, to, timeout_ms, &consumer, &err);
	json_t *fresh = NULL;
	if (!code && wait && !consumer) {
		kt_kube_target t = { .group = "", .version = "v1",
		                     .resource = "persistentvolumeclaims", .namespace = ns,
		                     .name = to };
		kt_error e2;
		if (kt_kube_get_object(c, &t, &fresh, &e2) == KT_OK) {
			json_decref(pvc);
			pvc = fresh;
		}
	}
	kt_kube_client_free(c);
	if (code) {
		json_decref(pvc);
		return kt_cli_fail(&err);
	}
	json_t *spec = json_object_get(pvc, "spec");
	json_t *row = json_pack("{s:s, s:s, s:s, s:O*, s:O*, s:O*, s:O*, s:O*}", "namespace", ns,
	                        "name", to, "snapshot", pos[0], "storageClass",
	                        json_object_get(spec, "storageClassName"), "size",
	                        json_object_get(json_object_get(json_object_get(spec, "resources"),
	                                                        "requests"), "storage"),
	                        "accessMode", json_array_get(json_object_get(spec, "accessModes"), 0),
	                        "phase", json_object_get(json_object_get(pvc, "status"), "phase"),
	                        "volume", json_object_get(spec, "volumeName"));
	if (consumer)
		json_object_set_new(row, "note", json_string("binds when a pod uses it "
		                                              "(WaitForFirstConsumer)"));
	static const kt_column cols[] = {
		{ "NAMESPACE", "namespace" }, { "PVC", "name" }, { "FROM", "snapshot" },
		{ "SIZE", "size" }, { "CLASS", "storageClass" }, { "MODE", "accessMode" },
		{ "PHASE", "phase" }, { "VOLUME", "volume" }, { "NOTE", "note" },
	};
	kt_cli_print(row, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(row);
	json_decref(pvc);
	return 0;
}

/* ---- doctor ---------------------------------------------------------- */

int kt_cmd_doctor(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "doctor";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	memset(&kf, 0, sizeof(kf));
	const char *manifest = NULL;
	kt_opt opts[5], *o = kt_cli_kube_opts(&kf, opts, NULL);
	*o++ = (kt_opt){ "etcd-manifest", 0, "FILE", "the etcd static pod manifest that marks a "
	                 "control-plane node (default /etc/kubernetes/manifests/etcd.yaml)",
	                 &manifest, NULL };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "[--kubeconfig FILE] [--context NAME]",
	                      "Check that this cluster is ready for kontinuity, one line per "
	                      "check with the\n"
	                      "fix for every failure:\n"
	                      "  crds      VolumeSnapshot CRDs (snapshot.storage.k8s.io/v1) are "
	                      "served\n"
	                      "  classes   a default VolumeSnapshotClass exists\n"
	                      "  driver    every CSI driver in use has a (default) class\n"
	                      "  rbac      this identity may do what the snapshot commands do\n"
	                      "  etcd      on a control-plane node: etcd answers\n"
	                      "Exit status 0 when nothing failed (warnings allowed), 1 otherwise.\n",
	                      NULL, 0, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_doctor_opts dopts = { .etcd_manifest = manifest };
	kt_doctor_check *checks = NULL;
	size_t n = 0;
	kt_error err;
	kt_code code = kt_doctor_run(c, &dopts, &checks, &n, &err);
	kt_kube_client_free(c);
	if (code)
		return kt_cli_fail(&err);
	static const char *const names[] = { "ok", "WARN", "FAIL", "skip" };
	json_t *rows = json_array();
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		failed |= checks[i].result == KT_DOCTOR_FAIL;
		json_t *r = json_pack("{s:s, s:s, s:s}", "check", checks[i].id, "result",
		                      names[checks[i].result], "detail", checks[i].detail);
		json_object_set_new(r, "fix", checks[i].fix[0] ? json_string(checks[i].fix)
		                                               : json_null());
		json_array_append_new(rows, r);
	}
	free(checks);
	static const kt_column cols[] = {
		{ "CHECK", "check" }, { "RESULT", "result" }, { "DETAIL", "detail" }, { "FIX", "fix" },
	};
	kt_cli_print(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	return failed ? 1 : 0;
}
