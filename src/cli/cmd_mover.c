/*
 * cmd_mover.c - `kontinuity mover backup|restore`: the command a volume
 * mover Job runs (src/app/mover.c starts those Jobs; docs/app-backup.md,
 * "Volume data: the mover").  It is `repo backup` / `repo restore` of one
 * directory - the mounted volume - with the tags the orchestrator finds
 * the result by ("volume", "ns=", "pvc=", "rp="), so nothing is read back
 * from the Job's log.  The repository comes from the environment only
 * (KONTINUITY_REPO, AWS_*, KONTINUITY_PASSWORD, KONTINUITY_S3_*: a Secret
 * through env valueFrom), never from arguments, which a pod spec shows.
 * Also the flags that choose and tune the mover on app backup/restore/import.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "archive/archive.h"
#include "cli.h"
#include "kube/kube.h"

/* KONTINUITY_S3_CA_PEM (an export profile's CA bundle) as a temporary
 * file for the S3 client, unless --s3-cacert names one.  0 or an exit code. */
static int ca_from_env(kt_cli_repo_flags *rf, char path[64])
{
	path[0] = '\0';
	const char *pem = getenv("KONTINUITY_S3_CA_PEM");
	if (rf->cacert || !pem || !*pem)
		return 0;
	snprintf(path, 64, "/tmp/kontinuity-ca-XXXXXX");
	int fd = mkstemp(path);
	size_t n = strlen(pem);
	if (fd < 0 || write(fd, pem, n) != (ssize_t)n) {
		kt_error err;
		kt_error_sys(&err, KT_EIO, errno, "cannot write KONTINUITY_S3_CA_PEM to a temporary "
		             "file (is /tmp writable? mount an emptyDir there)");
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		path[0] = '\0';
		return kt_cli_fail(&err);
	}
	close(fd);
	rf->cacert = path;
	return 0;
}

static int open_repo(kt_cli_repo_flags *rf, const char *path_cmd, char ca[64], kt_store **s,
                     kt_archive **a)
{
	int rc = ca_from_env(rf, ca);
	if (!rc && (rc = kt_cli_repo_open(rf, path_cmd, s, a)) && ca[0])
		unlink(ca);
	return rc;
}

static void close_repo(kt_store *s, kt_archive *a, const char ca[64])
{
	kt_archive_free(a);
	kt_store_free(s);
	if (ca[0])
		unlink(ca);
}

/* The newest volume snapshot of host tagged t_ns and t_pvc into parent
 * ("" when there is none). */
static kt_code find_parent(kt_archive *a, const char *host, const char *t_ns,
                           const char *t_pvc, char parent[65], kt_error *err)
{
	char me[256] = "";
	if (!host)
		gethostname(me, sizeof(me) - 1);
	kt_archive_snap *v = NULL;
	size_t n = 0;
	kt_code c = kt_archive_snapshots(a, &v, &n, err);
	for (size_t i = 0; !c && i < n; i++) {
		int hits = 0;
		for (size_t t = 0; t < v[i].n_tags; t++)
			hits += !strcmp(v[i].tags[t], KT_MOVER_TAG) || !strcmp(v[i].tags[t], t_ns) ||
			        !strcmp(v[i].tags[t], t_pvc);
		if (hits == 3 && !strcmp(v[i].hostname, host ? host : me))
			memcpy(parent, v[i].id, 65);
	}
	kt_archive_snaps_free(v, n);
	return c;
}

int kt_cmd_mover_backup(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "mover backup";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	const char *ns = NULL, *pvc = NULL, *run = NULL, *host = NULL;
	kt_opt opts[14], *o = kt_cli_repo_opts(&rf, opts);
	*o++ = (kt_opt){ "namespace", 'n', "NS", "the PVC's namespace (tag ns=NS)", &ns, NULL };
	*o++ = (kt_opt){ "pvc", 0, "NAME", "the PVC whose volume PATH is (tag pvc=NAME)", &pvc,
	                 NULL };
	*o++ = (kt_opt){ "run", 0, "ID", "the restore point run this belongs to (tag rp=ID)", &run,
	                 NULL };
	*o++ = (kt_opt){ "host", 0, "NAME", "host name recorded (the cluster's identity)", &host,
	                 NULL };
	memset(o, 0, sizeof(*o));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Back up the directory PATH - a volume mounted in a mover Job - into a new\n"
	         "snapshot tagged \"" KT_MOVER_TAG "\", ns=NS, pvc=NAME and rp=ID, which is how\n"
	         "'app backup' finds it once the Job succeeds.  Files keep their contents,\n"
	         "modes, owners, times and symbolic links.  The repository is read from the\n"
	         "environment only (KONTINUITY_REPO, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
	         "AWS_ENDPOINT_URL, KONTINUITY_PASSWORD; KONTINUITY_S3_PATH_STYLE=1,\n"
	         "KONTINUITY_S3_LOCK_DAYS and KONTINUITY_S3_CA_PEM as a profile gives them).\n%s\n"
	         "Examples:\n"
	         "  kontinuity mover backup /data -n shop --pvc data-pg-0 --run 5f0c2a9e\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "PATH --namespace NS --pvc NAME "
	                      "[--run ID]", help, pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path_cmd, "give the directory to back up (the mounted volume)");
	if (!ns || !pvc || !kt_kube_valid_label(ns) || !*pvc || strlen(pvc) > 253)
		return kt_cli_usage(path_cmd, "--namespace and --pvc name the volume's PVC");
	kt_cli_catch_signals();
	char ca[64];
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = open_repo(&rf, path_cmd, ca, &s, &a)))
		return rc;
	char t_ns[300], t_pvc[300], t_run[300];
	snprintf(t_ns, sizeof(t_ns), "ns=%s", ns);
	snprintf(t_pvc, sizeof(t_pvc), "pvc=%s", pvc);
	snprintf(t_run, sizeof(t_run), "rp=%s", run ? run : "");
	const char *tags[] = { KT_MOVER_TAG, t_ns, t_pvc, run ? t_run : NULL, NULL };
	kt_archive_backup_result res;
	kt_error err;
	const char *paths[] = { pos[0] };
	/* The parent is the last copy of this same PVC: every volume is backed up
	 * at the same mount path, so the default (same host and paths) would
	 * compare with another PVC's files. */
	char parent[65] = "";
	kt_code c = find_parent(a, host, t_ns, t_pvc, parent, &err);
	kt_archive_backup_opts bo = { .hostname = host, .tags = tags, .cancel = &kt_cli_cancel,
	                              .parent = parent[0] ? parent : NULL, .force = !parent[0] };
	if (!c)
		c = kt_archive_lock(a, 0, &err);
	if (!c)
		c = kt_archive_backup(a, paths, 1, &bo, &res, &err);
	close_repo(s, a, ca);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b1[32], b2[32];
		printf("volume of %s/%s saved as snapshot %.8s: %llu files, %llu dirs, %s (%s new) in "
		       "%.1fs\n", ns, pvc, res.snapshot_id, (unsigned long long)res.files,
		       (unsigned long long)res.dirs, kt_human_bytes(res.bytes, b1),
		       kt_human_bytes(res.bytes_new, b2), (double)res.duration_ms / 1000.0);
	} else {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f}", "id", res.snapshot_id,
		                      "files", (json_int_t)res.files, "dirs", (json_int_t)res.dirs,
		                      "bytes", (json_int_t)res.bytes, "bytesNew",
		                      (json_int_t)res.bytes_new, "seconds",
		                      (double)res.duration_ms / 1000.0);
		json_object_set_new(j, "parent", res.parent_id[0] ? json_string(res.parent_id)
		                                                  : json_null());
		json_object_set_new(j, "filesReused", json_integer((json_int_t)res.files_reused));
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

int kt_cmd_mover_restore(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "mover restore";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[10];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Restore the volume snapshot SNAPSHOT (made by 'mover backup') into the\n"
	         "directory PATH - a new, empty volume mounted in a mover Job (a lost+found\n"
	         "there is allowed): what was at the backed-up path comes back at PATH, with\n"
	         "contents, modes, times and links (and owners when run as root).  The\n"
	         "repository comes from the environment as for 'mover backup'.\n%s\n"
	         "Examples:\n"
	         "  kontinuity mover restore 1a2b3c4d /data\n", kt_cli_repo_help_tail);
	char *pos[2];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "SNAPSHOT PATH", help, pos, 2, &n_pos,
	                      &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 2)
		return kt_cli_usage(path_cmd, "give SNAPSHOT and PATH");
	kt_cli_catch_signals();
	char ca[64];
	kt_store *s = NULL;
	kt_archive *a = NULL;
	if ((rc = open_repo(&rf, path_cmd, ca, &s, &a)))
		return rc;
	kt_error err;
	char id[65];
	kt_archive_snap *v = NULL;
	size_t n = 0;
	char *subtree = NULL;
	kt_code c = kt_archive_find_snapshot(a, pos[0], id, &err);
	if (!c)
		c = kt_archive_snapshots(a, &v, &n, &err);
	for (size_t i = 0; !c && i < n; i++) {
		if (strcmp(v[i].id, id))
			continue;
		int vol = 0;
		for (size_t t = 0; t < v[i].n_tags; t++)
			vol |= !strcmp(v[i].tags[t], KT_MOVER_TAG);
		if (!vol || v[i].n_paths != 1)
			c = kt_error_set(&err, KT_EUSAGE, "snapshot %.8s is not a volume snapshot of "
			                 "'mover backup' (tag " KT_MOVER_TAG ", one path): use 'kontinuity "
			                 "repo restore'", id);
		else
			subtree = kt_xstrdup(v[i].paths[0]);
	}
	kt_archive_snaps_free(v, n);
	kt_archive_restore_result res;
	if (!c)
		c = kt_archive_lock(a, 0, &err);
	if (!c) {
		kt_archive_restore_opts ro = { .owners = geteuid() == 0, .subtree = subtree,
		                               .allow_lost_found = 1, .cancel = &kt_cli_cancel };
		c = kt_archive_restore(a, id, pos[1], &ro, &res, &err);
	}
	free(subtree);
	close_repo(s, a, ca);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b[32];
		printf("restored volume snapshot %.8s into %s: %llu files, %llu dirs, %llu links, %s "
		       "in %.1fs\n", id, pos[1], (unsigned long long)res.files,
		       (unsigned long long)res.dirs, (unsigned long long)res.links,
		       kt_human_bytes(res.bytes, b), (double)res.duration_ms / 1000.0);
	} else {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f}", "id", id, "files",
		                      (json_int_t)res.files, "dirs", (json_int_t)res.dirs, "links",
		                      (json_int_t)res.links, "bytes", (json_int_t)res.bytes,
		                      "seconds", (double)res.duration_ms / 1000.0);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

/* ---- the mover's flags on app backup, restore and import ---------------- */

kt_opt *kt_cli_mover_opts(kt_cli_mover_flags *f, kt_opt *o, int restore)
{
	memset(f, 0, sizeof(*f));
	*o++ = (kt_opt){ "volume-data", 0, restore ? "copy|snapshot" : "copy|snapshot-only",
	                 restore ? "volumes from the data the restore point holds, written by "
	                 "mover Jobs (copy; the default of app import) or from their CSI "
	                 "snapshots (snapshot; the default of app restore)"
	                 : "also copy each volume's data into the repository with a mover Job "
	                 "(copy; the default with --profile) or keep only the CSI snapshots "
	                 "(snapshot-only; the default with --repo)", &f->volume_data, NULL };
	*o++ = (kt_opt){ "mover-image", 0, "IMAGE", "image of the mover Jobs (default "
	                 KT_MOVER_IMAGE ")", &f->image, NULL };
	*o++ = (kt_opt){ "mover-timeout", 0, "DURATION", "how long each mover Job may run "
	                 "(default 1h)", &f->timeout, NULL };
	if (restore)
		*o++ = (kt_opt){ "storage-class", 0, "NAME", "StorageClass of the PVCs the mover "
		                 "fills (default: theirs; the cluster's default for static ones)",
		                 &f->storage_class, NULL };
	return o;
}

static void on_mover_progress(void *ctx, const char *line)
{
	(void)ctx;
	kt_log(KT_LOG_INFO, "%s", line);
}

int kt_cli_mover_check(kt_cli_mover_flags *f, const char *profile, const char *path, int dflt,
                       int *copy)
{
	const char *yes = "copy";
	const char *no = strncmp(path, "app backup", 10) ? "snapshot" : "snapshot-only";
	*copy = dflt;
	if (f->volume_data && strcmp(f->volume_data, yes) && strcmp(f->volume_data, no))
		return kt_cli_usage(path, "--volume-data is %s or %s, not '%s'", yes, no,
		                    f->volume_data);
	if (f->volume_data)
		*copy = !strcmp(f->volume_data, yes);
	if (*copy && !profile)
		return kt_cli_usage(path, "--volume-data copy needs --profile (a mover Job reaches "
		                    "the profile's bucket, not a local --repo)");
	int64_t ms = 0;
	kt_error perr;
	if (f->timeout && kt_parse_duration_ms(f->timeout, &ms, &perr))
		return kt_cli_usage(path, "--mover-timeout: %s", perr.msg);
	f->m = (kt_app_mover){ .profile = &f->profile, .image = f->image, .timeout_ms = ms,
	                       .progress = on_mover_progress };
	return 0;
}

int kt_cli_mover_load(kt_cli_mover_flags *f, kt_kube *c, const char *ns, const char *profile)
{
	kt_error err;
	if (kt_profile_get(c, ns, profile, &f->profile, &err))
		return kt_cli_fail(&err);
	f->loaded = 1;
	return 0;
}

void kt_cli_mover_release(kt_cli_mover_flags *f)
{
	if (f->loaded)
		kt_profile_release(&f->profile);
}
