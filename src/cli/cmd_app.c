/*
 * cmd_app.c - `kontinuity app backup|restore` and `kontinuity restorepoint
 * list` and `app import`: application restore points in a repository
 * (src/app, docs/app-backup.md): the one --repo names, or the one in the
 * bucket of an export profile (--profile; docs/profiles.md), which another
 * cluster imports from.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "archive/archive.h"
#include "cli.h"
#include "kube/kube.h"

static void on_backup_note(void *ctx, kt_app_note_kind k, const char *what, const char *why)
{
	(void)ctx;
	if (k == KT_APP_NOTE_FAILED)
		kt_log(KT_LOG_WARN, "not captured: %s: %s", what, why);
	else if (k == KT_APP_NOTE_SKIPPED_OBJECT)
		kt_log(KT_LOG_DEBUG, "skipped %s: %s", what, why);
}

static void on_backup_progress(void *ctx, uint64_t objects, uint64_t bytes)
{
	int64_t *last = ctx;
	int64_t now = kt_now_ms();
	if (now - *last < 1000)
		return;
	*last = now;
	char b[32];
	fprintf(stderr, "\r%llu objects, %s", (unsigned long long)objects, kt_human_bytes(bytes, b));
}

int kt_cmd_app_backup(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "app backup";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	kt_cli_target tg;
	memset(&kf, 0, sizeof(kf));
	const char *selector = NULL, *snap_timeout = "10m";
	int rbac = 0, no_snap = 0, copy = 0;
	kt_opt opts[24], *o = kt_cli_target_opts(&tg, opts);
	o = kt_cli_kube_opts(&kf, o, NULL);
	*o++ = (kt_opt){ "selector", 'l', "LABELS", "only the namespaced objects with these "
	                 "labels (app=pg,tier!=cache)", &selector, NULL };
	*o++ = (kt_opt){ "include-cluster-rbac", 0, NULL, "also the ClusterRoleBindings that "
	                 "name its ServiceAccounts, and their ClusterRoles", NULL, &rbac };
	*o++ = (kt_opt){ "no-volume-snapshots", 0, NULL, "do not snapshot the PVCs (their data is "
	                 "then not kept)", NULL, &no_snap };
	*o++ = (kt_opt){ "snapshot-timeout", 0, "DURATION", "how long each VolumeSnapshot may take "
	                 "to become ready (default 10m)", &snap_timeout, NULL };
	kt_cli_mover_flags mf;
	o = kt_cli_mover_opts(&mf, o, 0);
	memset(o, 0, sizeof(*o));
	char help[3000];
	snprintf(help, sizeof(help),
	         "Capture an application - a namespace, optionally narrowed by a label\n"
	         "selector - into a restore point in the repository: every namespaced object\n"
	         "the API server serves (found by discovery), minus what the cluster recreates\n"
	         "(events, endpoints, pods and replica sets owned by controllers...: the list\n"
	         "and the reasons are in docs/app-backup.md), plus the PersistentVolumes and\n"
	         "CustomResourceDefinitions it depends on, and a crash-consistent CSI\n"
	         "VolumeSnapshot of every Bound PVC (waited for until ready; restores create\n"
	         "the PVCs from them).  Secrets are encrypted like\n"
	         "everything in the repository and never written to local disk.  A resource\n"
	         "that cannot be read is named and recorded in the restore point; the command\n"
	         "then exits 1 after making it.  With --profile, each volume's data is also\n"
	         "copied into the repository by a mover Job (docs/app-backup.md), so another\n"
	         "cluster can import it (--volume-data snapshot-only: the CSI snapshots only).\n%s\n"
	         "Examples:\n"
	         "  kontinuity app backup pg --repo /var/backups/kontinuity\n"
	         "  kontinuity app backup shop -l app=cart --repo s3://backups/cluster-a -o json\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "NAMESPACE --repo URL [-l LABELS]", help, pos,
	                      1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the namespace to back up");
	int64_t snap_ms;
	kt_error perr;
	if (kt_parse_duration_ms(snap_timeout, &snap_ms, &perr))
		return kt_cli_usage(path, "--snapshot-timeout: %s", perr.msg);
	if ((rc = kt_cli_mover_check(&mf, tg.profile, path, tg.profile && !no_snap, &copy)))
		return rc;
	if (copy && no_snap)
		return kt_cli_usage(path, "--volume-data copy moves the data of the volume snapshots: "
		                    "drop --no-volume-snapshots");
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = kt_cli_target_connect(&kf, &tg, path, 1, &c, &s, &a)))
		return rc;
	if (copy && (rc = kt_cli_mover_load(&mf, c, tg.profile_ns, tg.profile))) {
		kt_cli_target_close(&tg, s, a);
		kt_kube_client_free(c);
		return rc;
	}
	kt_error err;
	int64_t last = 0;
	kt_app_backup_opts bo = { .namespace = pos[0], .selector = selector, .cluster_rbac = rbac,
	                          .note = on_backup_note, .progress = on_backup_progress,
	                          .progress_ctx = &last, .no_volume_snapshots = no_snap,
	                          .snapshot_timeout_ms = snap_ms, .mover = copy ? &mf.m : NULL };
	kt_app_backup_result res;
	kt_code code = kt_archive_lock(a, 0, &err);
	if (!code) {
		code = kt_app_backup(c, a, &bo, &res, &err);
		kt_archive_unlock(a);
	}
	if (last)
		fprintf(stderr, "\n");
	kt_cli_target_close(&tg, s, a);
	kt_kube_client_free(c);
	kt_cli_mover_release(&mf);
	if (code)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b1[32], b2[32], b3[32];
		printf("restore point %.8s of namespace %s: %llu objects (%s, %s new), %u volume "
		       "snapshots (%u copied, %s), %llu skipped, %llu failed, %.1fs\n", res.id, pos[0],
		       (unsigned long long)res.st.objects, kt_human_bytes(res.bytes, b1),
		       kt_human_bytes(res.bytes_new, b2), res.volumes, res.volumes_copied,
		       kt_human_bytes(res.data_bytes, b3),
		       (unsigned long long)res.st.skipped_objects, (unsigned long long)res.st.failed,
		       (double)res.duration_ms / 1000.0);
	} else {
		json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:I, s:I, s:I, s:I, s:f}", "id", res.id,
		                      "namespace", pos[0], "objects", (json_int_t)res.st.objects,
		                      "volumes", (int)res.volumes,
		                      "skippedObjects", (json_int_t)res.st.skipped_objects,
		                      "failed", (json_int_t)res.st.failed, "bytes",
		                      (json_int_t)res.bytes, "bytesNew", (json_int_t)res.bytes_new,
		                      "seconds", (double)res.duration_ms / 1000.0);
		json_object_set_new(j, "volumesCopied", json_integer(res.volumes_copied));
		json_object_set_new(j, "dataBytes", json_integer((json_int_t)res.data_bytes));
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	if (res.st.failed)
		fprintf(stderr, "kontinuity: %llu resources or objects could not be captured (named "
		        "above; recorded in the restore point)\n", (unsigned long long)res.st.failed);
	return res.st.failed ? 1 : 0;
}

/* "A,B,C" into a NULL-terminated array pointing into a copy (*keep frees). */
static const char **split_kinds(const char *list, char **keep)
{
	if (!list)
		return NULL;
	*keep = kt_xstrdup(list);
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	const char **v = kt_xcalloc(n + 1, sizeof(*v));
	size_t k = 0;
	for (char *p = *keep, *comma; p; p = comma ? comma + 1 : NULL) {
		comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (*p)
			v[k++] = p;
	}
	return v;
}

typedef struct report_rows {
	json_t *rows;
	int table;
} report_rows;

static void on_report(void *ctx, const char *kind, const char *ns, const char *name,
                      kt_app_outcome out, const char *detail)
{
	report_rows *r = ctx;
	json_array_append_new(r->rows, json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", kind,
	                      "namespace", ns, "name", name, "result", kt_app_outcome_name(out),
	                      "detail", detail));
}

/* --wait: the restored objects to wait for, and each one's readiness into
 * its report row as it comes. */
static json_t *wait_items(json_t *rows)
{
	json_t *items = json_array(), *r;
	size_t i;
	json_array_foreach(rows, i, r) {
		const char *res = json_string_value(json_object_get(r, "result"));
		if (res && (!strcmp(res, "created") || !strcmp(res, "updated")))
			json_array_append(items, r);
	}
	return items;
}

static void on_ready(void *ctx, const char *kind, const char *ns, const char *name, int ready,
                     const char *why, int64_t elapsed_ms)
{
	report_rows *r = ctx;
	size_t i;
	json_t *row;
	json_array_foreach(r->rows, i, row) {
		if (strcmp(json_string_value(json_object_get(row, "kind")), kind) ||
		    strcmp(json_string_value(json_object_get(row, "namespace")), ns) ||
		    strcmp(json_string_value(json_object_get(row, "name")), name))
			continue;
		json_object_set_new(row, "ready", json_boolean(ready));
		if (!ready)
			json_object_set_new(row, "detail", kt_cli_json_text(why));
		break;
	}
	if (r->table)
		fprintf(stderr, "%s %s %s/%s after %.1fs%s%s\n", ready ? "ready:" : "NOT READY:",
		        kind, ns, name, (double)elapsed_ms / 1000.0, ready ? "" : ": ",
		        ready ? "" : why);
}

/* app restore, and app import (which lists without a restore point). */
static int restore_cmd(int argc, char **argv, const kt_globals *g0, int import)
{
	const char *path = import ? "app import" : "app restore";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	kt_cli_target tg;
	memset(&kf, 0, sizeof(kf));
	const char *to = NULL, *include = NULL, *exclude = NULL, *existing = "skip";
	const char *wait_to = "10m";
	int dry = 0, node_ports = 0, wait = 0, copy = 0;
	kt_opt opts[32], *o = kt_cli_target_opts(&tg, opts);
	o = kt_cli_kube_opts(&kf, o, NULL);
	*o++ = (kt_opt){ "to-namespace", 0, "NS", "restore into NS (default: the namespace it "
	                 "came from); references to the old name are rewritten", &to, NULL };
	*o++ = (kt_opt){ "include-kinds", 0, "K,K", "only these kinds (Deployment,Secret,...)",
	                 &include, NULL };
	*o++ = (kt_opt){ "exclude-kinds", 0, "K,K", "not these kinds", &exclude, NULL };
	*o++ = (kt_opt){ "existing", 0, "skip|update", "objects that exist: leave them (skip, the "
	                 "default) or bring them back to the restore point (update)", &existing,
	                 NULL };
	*o++ = (kt_opt){ "dry-run", 0, NULL, "read the cluster and report what would happen; "
	                 "change nothing", NULL, &dry };
	*o++ = (kt_opt){ "keep-node-ports", 0, NULL, "keep Services' node ports (else the "
	                 "cluster allocates new ones)", NULL, &node_ports };
	*o++ = (kt_opt){ "wait", 0, NULL, "then wait until what was restored is ready: PVCs Bound, "
	                 "Deployments, StatefulSets, DaemonSets and ReplicaSets with their replicas "
	                 "ready, Jobs complete (exit 1 if not by --wait-timeout)", NULL, &wait };
	*o++ = (kt_opt){ "wait-timeout", 0, "DURATION", "how long --wait waits (default 10m)",
	                 &wait_to, NULL };
	kt_cli_mover_flags mf;
	o = kt_cli_mover_opts(&mf, o, 1);
	memset(o, 0, sizeof(*o));
	char help[3000];
	snprintf(help, sizeof(help),
	         "Recreate an application from a restore point, in the same or another\n"
	         "namespace (or cluster), in dependency order: CRDs, the namespace,\n"
	         "ServiceAccounts and RBAC, Secrets and ConfigMaps, PVCs, Services, workloads,\n"
	         "then the rest.  Cluster-assigned fields (uid, resourceVersion, status, cluster\n"
	         "IPs, volume names, owner references...) are dropped; Helm's labels and\n"
	         "annotations stay, so helm list and helm upgrade go on working.  One line per\n"
	         "object: created, skipped, updated, or failed with the API server's reason.\n"
	         "RESTORE-POINT is an id (prefix) from 'kontinuity restorepoint list' or latest.\n%s\n"
	         "Examples:\n"
	         "  kontinuity app restore 1a2b3c4d --repo /var/backups/kontinuity\n"
	         "  kontinuity app restore latest --to-namespace pg-copy --dry-run --repo ...\n"
	         "  kontinuity app restore 1a2b3c4d --wait --wait-timeout 15m --repo ...\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos = 0, done = 0;
	if (import)
		snprintf(help, sizeof(help),
		         "Restore points exported by any cluster to a profile's bucket: without\n"
		         "RESTORE-POINT, list them (with the cluster each came from); with it,\n"
		         "restore it here exactly as 'app restore' does (for DR and migration);\n"
		         "volumes whose data was exported come back through mover Jobs.\n\n"
		         "Examples:\n"
		         "  kontinuity app import --profile offsite\n"
		         "  kontinuity app import 1a2b3c4d --profile offsite --to-namespace pg\n");
	int rc = kt_cli_parse(argc, argv, opts, path, import ? "[RESTORE-POINT] --profile NAME"
	                      : "RESTORE-POINT --repo URL|--profile NAME [--to-namespace NS]",
	                      help, pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (import && !tg.profile)
		return kt_cli_usage(path, "--profile NAME is required (where the restore points were "
		                    "exported)");
	if (n_pos != 1 && !import)
		return kt_cli_usage(path, "name the restore point (kontinuity restorepoint list)");
	if (strcmp(existing, "skip") && strcmp(existing, "update"))
		return kt_cli_usage(path, "--existing is skip or update, not '%s'", existing);
	if (to && !kt_kube_valid_label(to))
		return kt_cli_usage(path, "--to-namespace '%s' is not a valid namespace name", to);
	int64_t wait_ms;
	kt_error perr;
	if (kt_parse_duration_ms(wait_to, &wait_ms, &perr))
		return kt_cli_usage(path, "--wait-timeout: %s", perr.msg);
	if ((rc = kt_cli_mover_check(&mf, tg.profile, path, import, &copy)))
		return rc;
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = kt_cli_target_connect(&kf, &tg, path, 1, &c, &s, &a)))
		return rc;
	if (copy && n_pos && (rc = kt_cli_mover_load(&mf, c, tg.profile_ns, tg.profile))) {
		kt_cli_target_close(&tg, s, a);
		kt_kube_client_free(c);
		return rc;
	}
	if (n_pos == 0) {   /* app import without a restore point: the list */
		rc = kt_cli_list_restore_points(a, NULL, &g);
		kt_cli_target_close(&tg, s, a);
		kt_kube_client_free(c);
		return rc;
	}
	char *keep_in = NULL, *keep_ex = NULL;
	report_rows rep = { json_array(), g.output == KT_OUT_TABLE };
	kt_app_restore_opts ro = { .to_namespace = to, .keep_node_ports = node_ports,
	                           .mover = copy ? &mf.m : NULL,
	                           .storage_class = mf.storage_class };
	ro.apply.update_existing = !strcmp(existing, "update");
	ro.apply.dry_run = dry;
	ro.apply.include_kinds = split_kinds(include, &keep_in);
	ro.apply.exclude_kinds = split_kinds(exclude, &keep_ex);
	ro.apply.report = on_report;
	ro.apply.ctx = &rep;
	kt_error err;
	char id[65];
	kt_app_apply_stats st = { 0 };
	kt_code code = kt_app_find_restore_point(a, pos[0], id, &err);
	if (!code && !(code = kt_archive_lock(a, 0, &err))) {
		code = kt_app_restore(c, a, id, &ro, &st, &err);
		kt_archive_unlock(a);
	}
	kt_cli_target_close(&tg, s, a);
	kt_cli_mover_release(&mf);
	free((void *)ro.apply.include_kinds);
	free((void *)ro.apply.exclude_kinds);
	free(keep_in);
	free(keep_ex);
	/* --wait: for what was restored, even when some objects failed. */
	unsigned not_ready = 0;
	if (wait && !dry && (!code || code == KT_EREMOTE)) {
		json_t *items = wait_items(rep.rows);
		if (rep.table && json_array_size(items))
			fprintf(stderr, "waiting up to %s for %zu restored objects to be ready\n", wait_to,
			        json_array_size(items));
		kt_error werr;
		kt_code wc = kt_app_wait_ready(c, items, wait_ms, on_ready, &rep, &not_ready, &werr);
		json_decref(items);
		if (wc && !code) {
			code = wc;
			err = werr;
		}
	}
	kt_kube_client_free(c);
	static const kt_column cols[] = {
		{ "KIND", "kind" }, { "NAMESPACE", "namespace" }, { "NAME", "name" },
		{ "RESULT", "result" }, { "READY", "ready" }, { "DETAIL", "detail" },
	};
	static const kt_column cols_nowait[] = {
		{ "KIND", "kind" }, { "NAMESPACE", "namespace" }, { "NAME", "name" },
		{ "RESULT", "result" }, { "DETAIL", "detail" },
	};
	if (json_array_size(rep.rows) && wait && !dry)
		kt_cli_print(rep.rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	else if (json_array_size(rep.rows))
		kt_cli_print(rep.rows, g.output, cols_nowait, sizeof(cols_nowait) / sizeof(cols_nowait[0]));
	json_decref(rep.rows);
	if (g.output == KT_OUT_TABLE && (st.created || st.updated || st.skipped || st.failed))
		printf("%s%u created, %u updated, %u skipped, %u failed\n", dry ? "dry run: " : "",
		       st.created, st.updated, st.skipped, st.failed);
	if (code)
		return kt_cli_fail(&err);
	if (not_ready) {
		fprintf(stderr, "kontinuity: %u restored objects are not ready after %s (READY no: "
		        "their DETAIL says what is missing)\n", not_ready, wait_to);
		return 1;
	}
	return 0;
}

int kt_cmd_app_restore(int argc, char **argv, const kt_globals *g)
{
	return restore_cmd(argc, argv, g, 0);
}

int kt_cmd_app_import(int argc, char **argv, const kt_globals *g)
{
	return restore_cmd(argc, argv, g, 1);
}
