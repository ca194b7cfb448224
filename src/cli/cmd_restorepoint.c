/*
 * cmd_restorepoint.c - `kontinuity restorepoint list|show|delete`: the
 * application restore points of a repository (--repo) or of an export
 * profile's bucket (--profile): which there are, what one holds (its
 * manifest: objects, volume snapshots, what was skipped or failed and
 * why), and removing one with the storage snapshots it kept
 * (src/app/rpinfo.c, docs/app-backup.md).
 */
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "archive/archive.h"
#include "cli.h"
#include "kube/kube.h"

int kt_cli_list_restore_points(kt_archive *a, const char *ns, const kt_globals *g)
{
	kt_archive_snap *v = NULL;
	size_t n = 0;
	kt_error err;
	kt_code code = kt_archive_snapshots(a, &v, &n, &err);
	if (code)
		return kt_cli_fail(&err);
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++) {
		const char *space = NULL;
		int app = 0;
		for (size_t t = 0; t < v[i].n_tags; t++) {
			app |= !strcmp(v[i].tags[t], KT_APP_TAG);
			if (!strncmp(v[i].tags[t], "ns=", 3))
				space = v[i].tags[t] + 3;
		}
		if (!app || !space || (ns && strcmp(ns, space)))
			continue;
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", v[i].id,
		                      "time", v[i].time, "cluster", v[i].hostname, "namespace", space,
		                      "objects", (json_int_t)(v[i].files ? v[i].files - 1 : 0),
		                      "bytes", (json_int_t)v[i].bytes));
	}
	kt_archive_snaps_free(v, n);
	static const kt_column cols[] = {
		{ "ID", "id" }, { "TIME", "time" }, { "NAMESPACE", "namespace" },
		{ "OBJECTS", "objects" }, { "CLUSTER", "cluster" },
	};
	if (g->output == KT_OUT_TABLE && !json_array_size(rows))
		fprintf(stderr, "no restore points%s%s\n", ns ? " of namespace " : "", ns ? ns : "");
	else
		kt_cli_print(rows, g->output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	return 0;
}

int kt_cmd_restorepoint_list(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "restorepoint list";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	kt_cli_target tg;
	memset(&kf, 0, sizeof(kf));
	const char *ns = NULL;
	kt_opt opts[14], *o = kt_cli_target_opts(&tg, opts);
	o = kt_cli_kube_opts(&kf, o, "kubeconfig to read --profile with (default: $KUBECONFIG, "
	                     "then ~/.kube/config, then the pod's service account)");
	*o++ = (kt_opt){ "namespace", 'n', "NS", "only restore points of this namespace", &ns,
	                 NULL };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "--repo URL|--profile NAME [-n NS]",
	                      "List the application restore points in the repository, oldest "
	                      "first.\n", NULL, 0, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	kt_kube *c = NULL;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if (!(rc = kt_cli_target_connect(&kf, &tg, path, 0, &c, &s, &a))) {
		rc = kt_cli_list_restore_points(a, ns, &g);
		kt_cli_target_close(&tg, s, a);
	}
	kt_kube_client_free(c);
	return rc;
}

/* restorepoint show: the manifest as a summary and four tables. */
static void print_section(json_t *rows, const char *title, const kt_column *cols, size_t n)
{
	if (!json_array_size(rows))
		return;
	printf("\n%s (%zu)\n", title, json_array_size(rows));
	kt_cli_print(rows, KT_OUT_TABLE, cols, n);
}

/* rows of {"what", "why"} with the reasons made safe for a terminal. */
static json_t *reasons(json_t *v)
{
	json_t *rows = json_array(), *x;
	size_t i;
	json_array_foreach(v, i, x)
		json_array_append_new(rows, json_pack("{s:o, s:o}", "what", kt_cli_json_text(
		                      json_string_value(json_object_get(x, "what"))), "why",
		                      kt_cli_json_text(json_string_value(json_object_get(x, "why")))));
	return rows;
}

static void show_table(const char *id, json_t *m)
{
	json_t *counts = json_object_get(m, "counts");
	const char *sel = json_string_value(json_object_get(m, "selector"));
	double secs = (double)json_integer_value(json_object_get(m, "durationMs")) / 1000.0;
	printf("restore point  %s\n", id);
	printf("time           %s (took %.1fs)\n", json_string_value(json_object_get(m, "time")),
	       secs);
	printf("namespace      %s%s%s\n", json_string_value(json_object_get(m, "namespace")),
	       sel ? "  selector " : "", sel ? sel : "");
	printf("cluster        %s\n", json_string_value(json_object_get(m, "cluster")));
	printf("objects        %lld captured, %lld skipped, %lld failed\n",
	       (long long)json_integer_value(json_object_get(counts, "objects")),
	       (long long)json_integer_value(json_object_get(counts, "skippedObjects")),
	       (long long)json_integer_value(json_object_get(counts, "failed")));
	printf("volumes        %zu\n", json_array_size(json_object_get(m, "volumes")));
	static const kt_column obj_cols[] = {
		{ "KIND", "kind" }, { "NAMESPACE", "namespace" }, { "NAME", "name" },
	};
	static const kt_column vol_cols[] = {
		{ "PVC", "pvc" }, { "SNAPSHOT", "snapshot" }, { "SIZE", "restoreSize" },
		{ "CLASS", "class" }, { "DRIVER", "driver" },
	};
	static const kt_column why_cols[] = { { "WHAT", "what" }, { "WHY", "why" } };
	print_section(json_object_get(m, "objects"), "objects", obj_cols, 3);
	print_section(json_object_get(m, "volumes"), "volume snapshots", vol_cols, 5);
	json_t *r = reasons(json_object_get(m, "skipped"));
	print_section(r, "skipped", why_cols, 2);
	json_decref(r);
	r = reasons(json_object_get(m, "failed"));
	print_section(r, "failed", why_cols, 2);
	json_decref(r);
}

int kt_cmd_restorepoint_show(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "restorepoint show";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	kt_cli_target tg;
	memset(&kf, 0, sizeof(kf));
	kt_opt opts[14], *o = kt_cli_target_opts(&tg, opts);
	o = kt_cli_kube_opts(&kf, o, "kubeconfig to read --profile with");
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "RESTORE-POINT --repo URL|--profile NAME",
	                      "What a restore point holds, from its manifest: when and where it "
	                      "was taken,\nevery object, the volume snapshots, what was skipped "
	                      "and what failed, and\nwhy.  -o json or -o yaml prints the manifest "
	                      "itself (docs/app-backup.md)\nwith the restore point's id.\n"
	                      "RESTORE-POINT is an id (prefix) from 'kontinuity restorepoint list' "
	                      "or latest.\n\nExamples:\n"
	                      "  kontinuity restorepoint show 1a2b3c4d --repo /var/backups/kontinuity\n"
	                      "  kontinuity restorepoint show latest --profile offsite -o yaml\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the restore point (kontinuity restorepoint list)");
	kt_kube *c = NULL;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = kt_cli_target_connect(&kf, &tg, path, 0, &c, &s, &a)))
		return rc;
	kt_error err;
	char id[65];
	json_t *m = NULL;
	kt_code code = kt_app_find_restore_point(a, pos[0], id, &err);
	if (!code && !(m = kt_app_restore_point_manifest(a, id, &err)))
		code = err.code;
	kt_cli_target_close(&tg, s, a);
	kt_kube_client_free(c);
	if (code)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		show_table(id, m);
	} else {
		json_object_set_new(m, "id", json_string(id));
		kt_cli_print(m, g.output, NULL, 0);
	}
	json_decref(m);
	return 0;
}

int kt_cmd_restorepoint_delete(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "restorepoint delete";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	kt_cli_target tg;
	memset(&kf, 0, sizeof(kf));
	int keep = 0, prune = 0, dry = 0;
	kt_opt opts[18], *o = kt_cli_target_opts(&tg, opts);
	o = kt_cli_kube_opts(&kf, o, NULL);
	*o++ = (kt_opt){ "keep-volume-snapshots", 0, NULL, "leave its VolumeSnapshots in the "
	                 "cluster (else they are deleted and the storage frees them)", NULL,
	                 &keep };
	*o++ = (kt_opt){ "prune", 0, NULL, "then remove the data no snapshot needs (repo prune)",
	                 NULL, &prune };
	*o++ = (kt_opt){ "dry-run", 0, NULL, "say what would be deleted; delete nothing", NULL,
	                 &dry };
	memset(o, 0, sizeof(*o));
	char *pos[32];
	int n_pos = 0, done = 0;
	char help[2000];
	snprintf(help, sizeof(help),
	         "Delete restore points: each one's snapshot in the repository, the copies of\n"
	         "its volumes' data a mover made there, and, when it was taken in this\n"
	         "cluster, the CSI VolumeSnapshots it kept (their contents go back to\n"
	         "deletionPolicy Delete, so the storage frees them).  Volume snapshots\n"
	         "of another cluster's restore points are never touched.  The objects' data\n"
	         "stays in the repository until `--prune` (or `kontinuity repo prune`); in an\n"
	         "immutable profile's bucket it stays until its retention date whatever is\n"
	         "deleted.  RESTORE-POINT is an id (prefix) from 'kontinuity restorepoint list';\n"
	         "up to 32 at once.\n%s\n"
	         "Examples:\n"
	         "  kontinuity restorepoint delete 1a2b3c4d --repo /var/backups/kontinuity\n"
	         "  kontinuity restorepoint delete 1a2b3c4d 5e6f7a8b --profile offsite --prune\n",
	         kt_cli_repo_help_tail);
	int rc = kt_cli_parse(argc, argv, opts, path, "RESTORE-POINT... --repo URL|--profile NAME",
	                      help, pos, 32, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos < 1)
		return kt_cli_usage(path, "name the restore points (kontinuity restorepoint list)");
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((tg.profile || !keep) && (rc = kt_cli_kube_connect(&kf, &c))) {
		if (!tg.profile)
			fprintf(stderr, "kontinuity: the cluster is needed to give the volume snapshots "
			        "back; with --keep-volume-snapshots only the restore points go\n");
		return rc;
	}
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = kt_cli_target_open(&tg, c, path, &s, &a))) {
		kt_kube_client_free(c);
		return rc;
	}
	kt_error err;
	kt_code code = KT_OK;
	json_t *rows = json_array();
	unsigned deleted = 0;
	kt_app_rp_delete_opts dopts = { .keep_volume_snapshots = keep, .dry_run = dry };
	/* Resolve every name first: a typo deletes nothing. */
	char (*ids)[65] = kt_xcalloc((size_t)n_pos, sizeof(*ids));
	for (int i = 0; !code && i < n_pos; i++)
		code = kt_app_find_restore_point(a, pos[i], ids[i], &err);
	for (int i = 0; !code && i < n_pos; i++) {
		kt_app_rp_delete_result r;
		code = kt_app_restore_point_delete(c, a, ids[i], &dopts, &r, &err);
		if (code)
			break;
		deleted++;
		json_array_append_new(rows, json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:o}", "id",
		                      ids[i], "cluster", r.cluster, "volumeSnapshots",
		                      (int)r.volumes_named, "volumeSnapshotsDeleted",
		                      (int)r.volumes_deleted, "volumeData", (int)r.data_named,
		                      "volumeDataDeleted", (int)r.data_deleted, "note",
		                      r.note[0] ? kt_cli_json_text(r.note) : json_null()));
		if (g.output == KT_OUT_TABLE)
			printf("%s restore point %.8s (%u of %u volume snapshots, %u of %u volume data "
			       "copies %s)\n", dry ? "would delete" : "deleted", ids[i],
			       dry ? r.volumes_named : r.volumes_deleted, r.volumes_named,
			       dry ? r.data_named : r.data_deleted, r.data_named,
			       dry ? "would go" : "deleted");
		if (r.note[0])
			fprintf(stderr, "kontinuity: restore point %.8s: %s\n", ids[i], r.note);
		if (!dry && r.volumes_deleted < r.volumes_named)
			fprintf(stderr, "kontinuity: restore point %.8s: %u volume snapshot(s) could "
			        "not be deleted (see above; `kontinuity snapshot list`)\n", ids[i],
			        r.volumes_named - r.volumes_deleted);
	}
	free(ids);
	kt_archive_prune_result pr;
	memset(&pr, 0, sizeof(pr));
	if (!code && prune && !dry && deleted)
		code = kt_archive_prune(a, 0, &pr, &err);
	kt_cli_target_close(&tg, s, a);
	kt_kube_client_free(c);
	if (g.output != KT_OUT_TABLE)
		kt_cli_print(rows, g.output, NULL, 0);
	json_decref(rows);
	if (code)
		return kt_cli_fail(&err);
	if (prune && !dry && g.output == KT_OUT_TABLE)
		printf("pruned: %llu packs removed, %llu repacked\n",
		       (unsigned long long)pr.packs_removed, (unsigned long long)pr.packs_repacked);
	return 0;
}
