/*
 * cmd_repo.c - `kontinuity repo ...`: the deduplicating, encrypted
 * repository (docs/repository-format.md) on a directory or S3.  The work is
 * in src/archive/; this file maps flags, finds the passphrase and prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli.h"

/* Parse, get the store and open the archive.  Returns 0 or an exit code. */
static int repo_setup(int argc, char **argv, kt_opt *opts, kt_cli_repo_flags *rf,
                      const char *path_cmd, const char *usage, const char *help, char **pos,
                      int max_pos, int *n_pos, kt_globals *g, int *done, kt_store **s,
                      kt_archive **a)
{
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, usage, help, pos, max_pos, n_pos, g, done);
	if (rc || *done)
		return rc;
	kt_cli_catch_signals();
	return kt_cli_repo_open(rf, path_cmd, s, a);
}

/* ------------------------------------------------------------------ */

int kt_cmd_repo_init(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo init";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[12];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Create a new, empty repository: a random repository id and master keys,\n"
	         "stored encrypted under the passphrase (scrypt).  The directory is created\n"
	         "(mode 0700); an S3 bucket must exist or is created.\n%s\n"
	         "Examples:\n"
	         "  KONTINUITY_PASSWORD=... kontinuity repo init --repo /var/backups/kontinuity\n"
	         "  kontinuity repo init --repo s3://backups/cluster-a --s3-endpoint https://s3.local\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "--repo URL", help, pos, 0, &n_pos, &g,
	                      &done);
	if (rc || done)
		return rc;
	kt_store *s;
	if ((rc = kt_cli_repo_store(&rf, path_cmd, 1, &s)))
		return rc;
	char pass[1024];
	if ((rc = kt_cli_repo_password(&rf, path_cmd, 1, pass, sizeof(pass)))) {
		kt_store_free(s);
		return rc;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	kt_archive_init_opts io = { .hostname = host };
	kt_error err;
	kt_code c = kt_archive_init(s, pass, strlen(pass), &io, &err);
	kt_archive *a = NULL;
	if (!c)
		c = kt_archive_open(s, pass, strlen(pass), &a, &err);
	explicit_bzero(pass, sizeof(pass));
	if (c) {
		kt_store_free(s);
		return kt_cli_fail(&err);
	}
	if (g.output == KT_OUT_TABLE) {
		printf("created repository %.16s at %s\n", kt_archive_id(a), kt_store_describe(s));
	} else {
		json_t *j = json_pack("{s:s, s:s}", "id", kt_archive_id(a), "repo",
		                      kt_store_describe(s));
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	kt_archive_free(a);
	kt_store_free(s);
	return 0;
}

static void backup_progress(void *ctx, uint64_t files, uint64_t bytes, const char *current)
{
	int64_t *last = ctx;
	int64_t now = kt_now_ms();
	if (!isatty(STDERR_FILENO) || now - *last < 500)
		return;
	*last = now;
	char b[32];
	fprintf(stderr, "\r%llu files, %s  %.60s\033[K", (unsigned long long)files,
	        kt_human_bytes(bytes, b), current);
}

int kt_cmd_repo_backup(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo backup";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	const char *tag = NULL, *host = NULL, *delta_parent = NULL, *delta_base = NULL;
	const char *delta_max = NULL, *parent = NULL;
	int force = 0;
	kt_opt opts[24];
	kt_opt *o = kt_cli_repo_opts(&rf, opts);
	const kt_opt own[] = {
		{ "tag", 0, "TAG", "a tag recorded in the snapshot (e.g. etcd)", &tag, NULL },
		{ "host", 0, "NAME", "host name recorded in the snapshot (default: this host's)",
		  &host, NULL },
		{ "delta-parent", 0, "SNAP", "store etcd databases as deltas against the one in "
		  "snapshot SNAP (id prefix or latest) when that is smaller", &delta_parent, NULL },
		{ "delta-base", 0, "FILE", "a local copy of that base (used only if its SHA-256 "
		  "matches; else it is restored from the repository)", &delta_base, NULL },
		{ "delta-max-depth", 0, "K", "longest delta chain before a full copy (default 20, at "
		  "most 100)", &delta_max, NULL },
		{ "parent", 0, "SNAP", "compare files with this snapshot (id prefix or latest; "
		  "default: the newest of this host with the same paths)", &parent, NULL },
		{ "force", 0, NULL, "read every file, even those unchanged since the parent",
		  NULL, &force },
	};
	memcpy(o, own, sizeof(own));
	memset(o + sizeof(own) / sizeof(own[0]), 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Back up files and directories into a new snapshot.  Files are cut into\n"
	         "chunks (content-defined for files, page-aware for etcd databases), and only\n"
	         "chunks the repository does not hold yet are compressed, encrypted and\n"
	         "uploaded.  The snapshot is written last: an interrupted backup leaves no\n"
	         "snapshot, only data the next backup reuses.  Files whose size, mtime, ctime\n"
	         "and inode match the parent snapshot are not read again (--force reads all).\n"
	         "Snapshots record the absolute paths.\n%s\n"
	         "Examples:\n"
	         "  kontinuity repo backup /etc/kubernetes/zadara --tag etcd\n"
	         "  kontinuity repo backup --repo s3://backups/a /srv/data -o json\n",
	         kt_cli_repo_help_tail);
	char *pos[256];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "PATH... [flags]", help, pos, 256,
	                    &n_pos, &g, &done, &s, &a);
	if (rc || done)
		return rc;
	if (n_pos == 0) {
		kt_archive_free(a);
		kt_store_free(s);
		return kt_cli_usage(path_cmd, "give the files or directories to back up");
	}
	const char *tags[2] = { tag, NULL };
	int64_t last = 0;
	unsigned long kmax = 0;
	if (delta_max) {
		char *end;
		errno = 0;
		kmax = strtoul(delta_max, &end, 10);
		if (errno || *end || kmax < 1 || kmax > 100) {
			kt_archive_free(a);
			kt_store_free(s);
			return kt_cli_usage(path_cmd, "--delta-max-depth takes a number from 1 to 100");
		}
	}
	kt_archive_backup_opts bo = { .hostname = host, .tags = tag ? tags : NULL,
	                              .parent = parent, .force = force,
	                              .progress = backup_progress, .progress_ctx = &last,
	                              .cancel = &kt_cli_cancel, .delta_parent = delta_parent,
	                              .delta_base_path = delta_base,
	                              .delta_max_depth = (unsigned)kmax };
	kt_archive_backup_result res;
	kt_error err;
	kt_code c = kt_archive_lock(a, 0, &err);
	if (!c)
		c = kt_archive_backup(a, (const char *const *)pos, (size_t)n_pos, &bo, &res, &err);
	if (last)
		fprintf(stderr, "\r\033[K");
	kt_archive_free(a);
	kt_store_free(s);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b1[32], b2[32], b3[32];
		printf("snapshot %.8s saved: %llu files, %llu dirs, %s; %s new, %s stored in %.1fs\n",
		       res.snapshot_id, (unsigned long long)res.files, (unsigned long long)res.dirs,
		       kt_human_bytes(res.bytes, b1), kt_human_bytes(res.bytes_new, b2),
		       kt_human_bytes(res.stored_bytes, b3), (double)res.duration_ms / 1000.0);
		if (res.files_delta)
			printf("%llu file%s stored as delta%s (chain depth %u)\n",
			       (unsigned long long)res.files_delta, res.files_delta == 1 ? "" : "s",
			       res.files_delta == 1 ? "" : "s", res.delta_depth);
		if (res.parent_id[0])
			printf("parent %.8s: %llu files read, %llu unchanged (%s) not read\n",
			       res.parent_id, (unsigned long long)res.files_read,
			       (unsigned long long)res.files_reused, kt_human_bytes(res.bytes_reused, b1));
	} else {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I}",
		                      "id", res.snapshot_id, "files", (json_int_t)res.files,
		                      "dirs", (json_int_t)res.dirs, "bytes", (json_int_t)res.bytes,
		                      "blobsNew", (json_int_t)res.blobs_new,
		                      "bytesNew", (json_int_t)res.bytes_new,
		                      "storedBytes", (json_int_t)res.stored_bytes,
		                      "packs", (json_int_t)res.packs,
		                      "seconds", (double)res.duration_ms / 1000.0,
		                      "filesDelta", (json_int_t)res.files_delta,
		                      "deltaDepth", (json_int_t)res.delta_depth);
		json_object_set_new(j, "filesRead", json_integer((json_int_t)res.files_read));
		json_object_set_new(j, "filesReused", json_integer((json_int_t)res.files_reused));
		json_object_set_new(j, "bytesReused", json_integer((json_int_t)res.bytes_reused));
		json_object_set_new(j, "parent", res.parent_id[0] ? json_string(res.parent_id)
		                                                  : json_null());
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

int kt_cmd_repo_snapshots(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo snapshots";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[12];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[1024];
	snprintf(help, sizeof(help), "List the snapshots, oldest first.%s\nExamples:\n"
	         "  kontinuity repo snapshots\n  kontinuity repo snapshots -o json\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                    &done, &s, &a);
	if (rc || done)
		return rc;
	kt_archive_snap *v;
	size_t n;
	kt_error err;
	kt_code c = kt_archive_snapshots(a, &v, &n, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (c)
		return kt_cli_fail(&err);
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *paths = json_array(), *tags = json_array();
		for (size_t j = 0; j < v[i].n_paths; j++)
			json_array_append_new(paths, kt_cli_json_text(v[i].paths[j]));
		for (size_t j = 0; j < v[i].n_tags; j++)
			json_array_append_new(tags, kt_cli_json_text(v[i].tags[j]));
		char short_id[9];
		snprintf(short_id, sizeof(short_id), "%.8s", v[i].id);
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:I, "
		                                      "s:i}",
		                                      "id", v[i].id, "short_id", short_id, "time",
		                                      v[i].time, "hostname",
		                                      kt_cli_json_text(v[i].hostname), "paths", paths,
		                                      "tags", tags, "files", (json_int_t)v[i].files,
		                                      "bytes", (json_int_t)v[i].bytes, "added_bytes",
		                                      (json_int_t)v[i].added_bytes, "version",
		                                      v[i].version));
	}
	kt_archive_snaps_free(v, n);
	static const kt_column cols[] = {
		{ "ID", "short_id" }, { "TIME", "time" }, { "HOST", "hostname" }, { "FILES", "files" },
		{ "BYTES", "bytes" }, { "ADDED", "added_bytes" }, { "PATHS", "paths" },
	};
	if (g.output == KT_OUT_TABLE && n == 0)
		printf("no snapshots\n");
	else
		kt_cli_print(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	return 0;
}

int kt_cmd_repo_restore(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo restore";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	int owners = 0;
	const char *path = NULL;
	kt_opt opts[15];
	kt_opt *o = kt_cli_repo_opts(&rf, opts);
	o[0] = (kt_opt){ "owners", 0, NULL, "give files their recorded owner and group (as root)",
	                 NULL, &owners };
	o[1] = (kt_opt){ "path", 0, "DIR", "restore only directory DIR of the snapshot (a path "
	                 "as 'repo ls' shows it): its contents go straight into TARGET", &path,
	                 NULL };
	memset(o + 2, 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Restore snapshot SNAP (an id prefix of at least 4 hex digits, or latest)\n"
	         "into the directory TARGET, which must be empty or absent.  Files are\n"
	         "byte-identical (every chunk is authenticated and checked), with their\n"
	         "modes and modification times; each appears only once complete.  The\n"
	         "whole snapshot goes below TARGET by its absolute paths (/srv/data as\n"
	         "TARGET/srv/data); with --path DIR only that directory is restored, as\n"
	         "TARGET itself.\n%s\n"
	         "Examples:\n"
	         "  kontinuity repo restore latest /tmp/restored\n"
	         "  kontinuity repo restore 1a2b3c4d /srv/restore --owners\n"
	         "  kontinuity repo restore latest /tmp/etc --path /etc/kubernetes\n",
	         kt_cli_repo_help_tail);
	char *pos[2];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "SNAP TARGET [flags]", help, pos, 2,
	                    &n_pos, &g, &done, &s, &a);
	if (rc || done)
		return rc;
	kt_error err;
	char id[65];
	kt_code c = n_pos != 2 ? KT_EUSAGE : kt_archive_find_snapshot(a, pos[0], id, &err);
	kt_archive_restore_result res;
	if (!c)
		c = kt_archive_lock(a, 0, &err);
	if (!c) {
		kt_archive_restore_opts ro = { .owners = owners, .subtree = path,
		                               .cancel = &kt_cli_cancel };
		c = kt_archive_restore(a, id, pos[1], &ro, &res, &err);
	}
	kt_archive_free(a);
	kt_store_free(s);
	if (n_pos != 2)
		return kt_cli_usage(path_cmd, "give SNAP and TARGET");
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b[32];
		printf("restored %s%ssnapshot %.8s into %s: %llu files, %llu dirs, %llu links, %s in "
		       "%.1fs\n", path ? path : "", path ? " of " : "", id, pos[1],
		       (unsigned long long)res.files, (unsigned long long)res.dirs,
		       (unsigned long long)res.links, kt_human_bytes(res.bytes, b),
		       (double)res.duration_ms / 1000.0);
	} else {
		json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:f}", "id", id, "target",
		                      kt_cli_json_text(pos[1]), "path",
		                      path ? kt_cli_json_text(path) : json_null(),
		                      "files", (json_int_t)res.files,
		                      "dirs", (json_int_t)res.dirs, "links", (json_int_t)res.links,
		                      "bytes", (json_int_t)res.bytes,
		                      "seconds", (double)res.duration_ms / 1000.0);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

typedef struct ls_ctx {
	kt_cli_stream st;
} ls_ctx;

static const kt_column ls_cols[] = {
	{ "TYPE", "type" }, { "MODE", "mode" }, { "SIZE", "size" }, { "MTIME", "mtime" },
	{ "DELTA", "delta_depth" }, { "PATH", "path" },
};

static void on_ls(void *ctx, const char *path, int type, uint32_t mode, uint64_t size,
                  const char *mtime, uint32_t delta_depth)
{
	ls_ctx *l = ctx;
	static const char *const types[] = { "file", "dir", "symlink" };
	char m[8];
	snprintf(m, sizeof(m), "%04o", mode);
	kt_cli_stream_add(&l->st, json_pack("{s:o, s:s, s:s, s:I, s:s, s:I}", "path",
	                                         kt_cli_json_text(path), "type",
	                                         types[type < 3 ? type : 0], "mode", m,
	                                         "size", (json_int_t)size, "mtime", mtime,
	                                         "delta_depth", (json_int_t)delta_depth));
}

int kt_cmd_repo_ls(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo ls";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[12];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[1024];
	snprintf(help, sizeof(help), "List what snapshot SNAP holds (id prefix or latest).%s\n"
	         "Examples:\n  kontinuity repo ls latest\n  kontinuity repo ls 1a2b3c4d -o json\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "SNAP [flags]", help, pos, 1, &n_pos,
	                    &g, &done, &s, &a);
	if (rc || done)
		return rc;
	kt_error err;
	char id[65];
	/* Printed as the walk goes: a listing of any length in bounded memory. */
	ls_ctx l;
	kt_cli_stream_init(&l.st, g.output, ls_cols, sizeof(ls_cols) / sizeof(ls_cols[0]));
	kt_code c = n_pos != 1 ? KT_EUSAGE : kt_archive_find_snapshot(a, pos[0], id, &err);
	if (!c)
		c = kt_archive_ls(a, id, on_ls, &l, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (n_pos != 1)
		rc = kt_cli_usage(path_cmd, "give SNAP");
	else if (c)
		rc = kt_cli_fail(&err);
	kt_cli_stream_end(&l.st, n_pos == 1 && !c);
	return rc;
}

static void on_problem(void *ctx, const char *what)
{
	(void)ctx;
	fprintf(stderr, "problem: %s\n", what);
}

int kt_cmd_repo_check(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo check";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	int read_data = 0;
	kt_opt opts[14];
	kt_opt *o = kt_cli_repo_opts(&rf, opts);
	o[0] = (kt_opt){ "read-data", 0, NULL, "read every pack and open every blob (slow: "
	                 "downloads the whole repository)", NULL, &read_data };
	memset(o + 1, 0, sizeof(kt_opt));
	char help[1536];
	snprintf(help, sizeof(help),
	         "Check the repository: every pack the index names exists and is long enough,\n"
	         "every snapshot opens and every blob its trees name is indexed.  With\n"
	         "--read-data also every byte: each pack must hash to its name and every blob\n"
	         "must authenticate and match its id, and every delta-encoded etcd database\n"
	         "is decoded and compared with its recorded SHA-256.  Each problem is\n"
	         "printed; exit status 3 when there is any.\n%s\n"
	         "Examples:\n  kontinuity repo check\n  kontinuity repo check --read-data\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                    &done, &s, &a);
	if (rc || done)
		return rc;
	kt_archive_check_result res;
	memset(&res, 0, sizeof(res));
	kt_error err;
	kt_code c = kt_archive_lock(a, 0, &err);
	if (!c)
		c = kt_archive_check(a, read_data, on_problem, NULL, &res, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (g.output == KT_OUT_TABLE) {
		printf("%llu snapshots, %llu trees, %llu packs, %llu blobs%s: %s\n",
		       (unsigned long long)res.snapshots, (unsigned long long)res.trees,
		       (unsigned long long)res.packs, (unsigned long long)res.blobs,
		       read_data ? " (all data read)" : "", c ? "PROBLEMS" : "no problems");
	} else {
		json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "ok", c == KT_OK,
		                      "snapshots", (json_int_t)res.snapshots, "trees",
		                      (json_int_t)res.trees, "contentLists", (json_int_t)res.lists,
		                      "packs", (json_int_t)res.packs, "blobs",
		                      (json_int_t)res.blobs, "problems", (json_int_t)res.problems,
		                      "readData", read_data);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return c ? kt_cli_fail(&err) : 0;
}

int kt_cmd_repo_stats(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo stats";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[12];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[1024];
	snprintf(help, sizeof(help), "Print what the repository holds: snapshots, packs, blobs,\n"
	         "the bytes the blobs stand for and the bytes stored.%s\nExamples:\n"
	         "  kontinuity repo stats -o json\n", kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                    &done, &s, &a);
	if (rc || done)
		return rc;
	kt_archive_stats st;
	kt_error err;
	kt_code c = kt_archive_stats_get(a, &st, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b1[32], b2[32];
		printf("%llu snapshots, %llu packs, %llu blobs: %s of unique data stored as %s\n",
		       (unsigned long long)st.snapshots, (unsigned long long)st.packs,
		       (unsigned long long)st.blobs, kt_human_bytes(st.raw_bytes, b1),
		       kt_human_bytes(st.stored_bytes, b2));
	} else {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I}", "snapshots",
		                      (json_int_t)st.snapshots, "packs", (json_int_t)st.packs,
		                      "blobs", (json_int_t)st.blobs, "rawBytes",
		                      (json_int_t)st.raw_bytes, "storedBytes",
		                      (json_int_t)st.stored_bytes);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

static void on_forget(void *ctx, const kt_archive_snap *s, const char *kept)
{
	json_t *rows = ctx;
	char short_id[9];
	snprintf(short_id, sizeof(short_id), "%.8s", s->id);
	json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", s->id, "short_id",
	                                      short_id, "time", s->time, "hostname",
	                                      kt_cli_json_text(s->hostname), "action",
	                                      kept ? kept : "remove"));
}

/* forget SNAPSHOT...: every name resolved first (one unknown name removes
 * nothing), each removed once however often it is named. */
static kt_code forget_named(kt_archive *a, char **names, int n, int dry_run, json_t *rows,
                            unsigned *removed, kt_error *err)
{
	char (*ids)[65] = kt_xcalloc((size_t)n, 65);
	kt_code c = KT_OK;
	for (int i = 0; !c && i < n; i++)
		c = kt_archive_find_snapshot(a, names[i], ids[i], err);
	kt_archive_snap *v = NULL;
	size_t n_snaps = 0;
	if (!c)
		c = kt_archive_snapshots(a, &v, &n_snaps, err);
	for (size_t j = 0; !c && j < n_snaps; j++) {
		int named = 0;
		for (int i = 0; i < n; i++)
			named |= !strcmp(ids[i], v[j].id);
		if (!named)
			continue;
		if (!dry_run && (c = kt_archive_forget_snapshot(a, v[j].id, err)))
			break;
		on_forget(rows, &v[j], NULL);
		(*removed)++;
	}
	kt_archive_snaps_free(v, n_snaps);
	free(ids);
	return c;
}

int kt_cmd_repo_forget(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo forget";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	const char *k[6] = { NULL };
	int dry_run = 0, prune = 0;
	kt_opt opts[20];
	kt_opt *o = kt_cli_repo_opts(&rf, opts);
	const kt_opt own[] = {
		{ "keep-last", 0, "N", "keep the newest N snapshots", &k[0], NULL },
		{ "keep-hourly", 0, "N", "keep the newest snapshot of each of the last N hours", &k[1],
		  NULL },
		{ "keep-daily", 0, "N", "... of each of the last N days (UTC)", &k[2], NULL },
		{ "keep-weekly", 0, "N", "... of each of the last N ISO weeks", &k[3], NULL },
		{ "keep-monthly", 0, "N", "... of each of the last N months", &k[4], NULL },
		{ "keep-yearly", 0, "N", "... of each of the last N years", &k[5], NULL },
		{ "dry-run", 'n', NULL, "show what would be removed; remove nothing", NULL, &dry_run },
		{ "prune", 0, NULL, "then remove the data no snapshot needs (repo prune)", NULL,
		  &prune },
	};
	memcpy(o, own, sizeof(own));
	memset(o + sizeof(own) / sizeof(own[0]), 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Remove snapshots by a tiered retention policy, or the snapshots named.\n"
	         "Snapshots are grouped by host and tags (untagged ones by paths: the agent's\n"
	         "etcd backups are tagged etcd); in each group a snapshot stays when any rule\n"
	         "keeps it: the newest --keep-last N, and the newest of each of the last N\n"
	         "hours, days, weeks, months and years that have one.  Named snapshots (an id,\n"
	         "at least 4 hex digits of one, or latest) are all looked up before any is\n"
	         "removed, and cannot be mixed with --keep rules.  Only the snapshot objects\n"
	         "go; `repo prune` (or --prune) then removes the data nothing needs any more.\n"
	         "%s\n"
	         "Examples:\n"
	         "  kontinuity repo forget --keep-hourly 24 --keep-daily 7 --keep-weekly 4 --dry-run\n"
	         "  kontinuity repo forget --keep-last 100 --prune\n"
	         "  kontinuity repo forget 4f3a9c1e 77d0b2aa --prune\n", kt_cli_repo_help_tail);
	char *pos[64];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd,
	                    "--keep-... N [flags] | SNAPSHOT... [flags]", help, pos, 64, &n_pos,
	                    &g, &done, &s, &a);
	if (rc || done)
		return rc;
	int any_rule = 0;
	for (int i = 0; i < 6; i++)
		any_rule |= k[i] != NULL;
	if (n_pos && any_rule) {
		kt_archive_free(a);
		kt_store_free(s);
		return kt_cli_usage(path_cmd, "give snapshots or --keep rules, not both");
	}
	unsigned v[6] = { 0 };
	for (int i = 0; i < 6; i++) {
		char *end;
		unsigned long x = k[i] ? strtoul(k[i], &end, 10) : 0;
		if (k[i] && (*end || !*k[i] || x > 1000000)) {
			kt_archive_free(a);
			kt_store_free(s);
			return kt_cli_usage(path_cmd, "--keep-... needs a number (got '%s')", k[i]);
		}
		v[i] = (unsigned)x;
	}
	kt_archive_policy pol = { .last = v[0], .hourly = v[1], .daily = v[2], .weekly = v[3],
	                          .monthly = v[4], .yearly = v[5] };
	kt_error err;
	json_t *rows = json_array();
	unsigned removed = 0;
	kt_code c = kt_archive_lock(a, 0, &err);
	if (!c && n_pos)
		c = forget_named(a, pos, n_pos, dry_run, rows, &removed, &err);
	else if (!c)
		c = kt_archive_forget(a, &pol, dry_run, on_forget, rows, &removed, &err);
	kt_archive_prune_result pr;
	if (!c && prune && !dry_run) {
		kt_archive_unlock(a);
		c = kt_archive_prune(a, 0, &pr, &err);
	}
	kt_archive_free(a);
	kt_store_free(s);
	if (c) {
		json_decref(rows);
		return kt_cli_fail(&err);
	}
	static const kt_column cols[] = {
		{ "ID", "short_id" }, { "TIME", "time" }, { "HOST", "hostname" }, { "KEPT BY", "action" },
	};
	kt_cli_print(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	if (g.output == KT_OUT_TABLE) {
		printf("%s %u snapshot%s\n", dry_run ? "would remove" : "removed", removed,
		       removed == 1 ? "" : "s");
		if (prune && !dry_run)
			printf("pruned: %llu packs removed, %llu repacked\n",
			       (unsigned long long)pr.packs_removed, (unsigned long long)pr.packs_repacked);
	}
	return 0;
}

int kt_cmd_repo_prune(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo prune";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	int dry_run = 0;
	kt_opt opts[14];
	kt_opt *o = kt_cli_repo_opts(&rf, opts);
	o[0] = (kt_opt){ "dry-run", 'n', NULL, "count what would go; change nothing", NULL,
	                 &dry_run };
	memset(o + 1, 0, sizeof(kt_opt));
	char help[2048];
	snprintf(help, sizeof(help),
	         "Remove the data no snapshot needs, under an exclusive lock: packs nothing\n"
	         "uses are deleted, packs partly used are rewritten with only what is used,\n"
	         "and packs left by interrupted backups are deleted.  New packs and the new\n"
	         "index are written before anything is deleted, so an interrupted prune\n"
	         "loses nothing.  Objects an Object Lock bucket refuses to delete are\n"
	         "reported and left.\n%s\n"
	         "Examples:\n  kontinuity repo prune --dry-run\n  kontinuity repo prune -o json\n",
	         kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                    &done, &s, &a);
	if (rc || done)
		return rc;
	kt_archive_prune_result pr;
	kt_error err;
	kt_code c = kt_archive_prune(a, dry_run, &pr, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE) {
		char b1[32], b2[32];
		printf("%s%llu packs kept, %llu removed (%llu rewritten), %llu left by interrupted "
		       "backups; %s freed, %s written%s\n", dry_run ? "dry run: " : "",
		       (unsigned long long)pr.packs_kept, (unsigned long long)pr.packs_removed,
		       (unsigned long long)pr.packs_repacked, (unsigned long long)pr.packs_unreferenced,
		       kt_human_bytes(pr.bytes_freed, b1), kt_human_bytes(pr.bytes_written, b2),
		       pr.remove_failed ? "; some deletions were refused (see above)" : "");
	} else {
		json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dryRun", dry_run,
		                      "packsKept", (json_int_t)pr.packs_kept, "packsRemoved",
		                      (json_int_t)pr.packs_removed, "packsRepacked",
		                      (json_int_t)pr.packs_repacked, "packsWritten",
		                      (json_int_t)pr.packs_written, "packsUnreferenced",
		                      (json_int_t)pr.packs_unreferenced, "bytesFreed",
		                      (json_int_t)pr.bytes_freed, "bytesWritten",
		                      (json_int_t)pr.bytes_written, "removeFailed",
		                      (json_int_t)pr.remove_failed);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	return 0;
}

int kt_cmd_repo_unlock(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "repo unlock";
	kt_globals g = *g0;
	kt_cli_repo_flags rf;
	kt_opt opts[12];
	memset(kt_cli_repo_opts(&rf, opts), 0, sizeof(kt_opt));
	char help[1024];
	snprintf(help, sizeof(help), "Remove stale locks (not refreshed for 30 minutes), left by "
	         "killed\nprocesses.  Live locks are never removed.%s\nExamples:\n"
	         "  kontinuity repo unlock\n", kt_cli_repo_help_tail);
	char *pos[1];
	int n_pos, done;
	kt_store *s = NULL;
	kt_archive *a = NULL;
	int rc = repo_setup(argc, argv, opts, &rf, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                    &done, &s, &a);
	if (rc || done)
		return rc;
	unsigned n = 0;
	kt_error err;
	kt_code c = kt_archive_remove_stale_locks(a, &n, &err);
	kt_archive_free(a);
	kt_store_free(s);
	if (c)
		return kt_cli_fail(&err);
	printf("removed %u stale lock%s\n", n, n == 1 ? "" : "s");
	return 0;
}
