/*
 * restore.c - the way back from a backup to an etcd data directory.
 *
 *   resolve source -> (download) -> verify -> plan (every check that can
 *   fail) -> etcdutl snapshot restore into DIR.restore-<time>
 *   -> rename DIR to DIR.before-restore-<time> -> rename staging to DIR
 *
 * Invariants:
 *   1. Nothing in the data directory changes before the source verified
 *      and etcdutl succeeded: etcdutl writes into a staging directory next
 *      to it (same file system, so the final step is two renames).
 *   2. An existing data directory is renamed aside, never deleted.
 *   3. Revisions keep going forward for watchers: by default etcdutl bumps
 *      the revision by KT_RESTORE_DEFAULT_BUMP and marks it compacted, so
 *      every client with a cached revision re-lists (etcd issue 16028).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"
#include "kube/kube.h"
#include "snapshot/snapshot.h"

/* ------------------------------------------------------------------ */
/* The source. */

/* Verify path into out; sha256 is checked against want when it is set. */
static kt_code check_file(const char *path, const char *want_sha, kt_restore_source *out,
                          kt_error *err)
{
	char have[65];
	kt_code c = kt_etcdbackup_file_sha256(path, have, err);
	if (c)
		return c;
	if (want_sha && *want_sha && strcmp(have, want_sha))
		return kt_error_set(err, KT_ECORRUPT, "'%s': wrong checksum: the file hashes to sha256 "
		                    "%s but the backup index recorded %s (the file changed after it "
		                    "was saved; do not restore it)", path, have, want_sha);
	kt_snapshot_report r;
	c = kt_snapshot_verify(path, &r, err);
	if (!c && r.trailer == KT_TRAILER_BAD)
		c = kt_error_set(err, KT_ECORRUPT, "'%s': its SHA-256 trailer does not match", path);
	if (c) {
		kt_snapshot_report_release(&r);
		return kt_error_wrap(err, "cannot restore from '%s'", path);
	}
	snprintf(out->sha256, sizeof(out->sha256), "%s", have);
	out->size = r.file_size;
	out->revision = r.status.revision;
	out->total_key = r.status.total_key;
	out->n_kube_objects = r.n_kube_objects;
	out->has_trailer = r.trailer == KT_TRAILER_OK;
	out->verified = 1;
	kt_snapshot_report_release(&r);
	return KT_OK;
}

/* The SHA-256 the index of path's directory recorded for it, or NULL. */
static char *indexed_sha(const char *path)
{
	char *copy = kt_xstrdup(path), *copy2 = kt_xstrdup(path);
	json_t *idx = kt_backup_index_load(dirname(copy));
	json_t *rec = json_object_get(json_object_get(idx, "backups"), basename(copy2));
	const char *sha = json_string_value(json_object_get(rec, "sha256"));
	char *res = sha ? kt_xstrdup(sha) : NULL;
	json_decref(idx);
	free(copy);
	free(copy2);
	return res;
}

kt_code kt_etcdbackup_resolve_source(const kt_backup_config *cfg, const char *from, int dry_run,
                                     kt_restore_source *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!from || !*from)
		return kt_error_set(err, KT_EUSAGE, "no source given (a file, 'latest' or "
		                    "'remote:latest')");
	if (!strncmp(from, "remote:", 7)) {
		out->kind = "remote";
		kt_fetched f;
		kt_code c = kt_etcdbackup_fetch_remote(cfg, from[7] ? from + 7 : "latest", dry_run, &f,
		                                       err);
		if (c)
			return c;
		snprintf(out->path, sizeof(out->path), "%s", f.path);
		snprintf(out->origin, sizeof(out->origin), "%s", f.object);
		snprintf(out->sha256, sizeof(out->sha256), "%s", f.sha256);
		out->size = f.size;
		out->has_trailer = 1;   /* exports are saved snapshots; checked when fetched */
		if (dry_run)
			return KT_OK;
		return check_file(f.path, f.sha256, out, err);
	}
	if (!strcmp(from, "latest")) {
		out->kind = "latest";
		kt_backup_entry *v;
		size_t n;
		kt_code c = kt_etcdbackup_list(cfg->dir, &v, &n, err);
		if (c)
			return kt_error_wrap(err, "cannot find the latest backup");
		json_t *idx = kt_backup_index_load(cfg->dir);
		json_t *backups = json_object_get(idx, "backups");
		c = KT_ENOTFOUND;
		kt_error last;
		kt_error_clear(&last);
		for (size_t i = n; i-- > 0;) {
			if (!v[i].verified)
				continue;
			/* Revisions only go forward in one etcd (a kontinuity restore
			 * bumps them).  An older backup with a higher revision means
			 * etcd was re-created, typically empty after the loss, and the
			 * agent kept backing up that: never pick it on our own. */
			for (size_t j = 0; j < i && v[i].revision >= 0; j++) {
				if (v[j].verified && v[j].revision > v[i].revision) {
					c = kt_error_set(&last, KT_EUSAGE, "the newest backup '%s' (revision "
					                 "%lld) is older in etcd's history than '%s' (revision "
					                 "%lld): etcd was re-created, probably empty, after the "
					                 "older one was taken; choose the one to restore with "
					                 "--from FILE (see `kontinuity etcd backups list`)",
					                 v[i].file, (long long)v[i].revision, v[j].file,
					                 (long long)v[j].revision);
					break;
				}
			}
			if (c == KT_EUSAGE)
				break;
			snprintf(out->path, sizeof(out->path), "%s/%s", cfg->dir, v[i].file);
			const char *sha = json_string_value(json_object_get(
				json_object_get(backups, v[i].file), "sha256"));
			c = check_file(out->path, sha, out, &last);
			if (!c)
				break;
			out->n_skipped++;
			kt_log(KT_LOG_WARN, "skipping backup '%s': %s", v[i].file, last.msg);
		}
		json_decref(idx);
		kt_backup_entries_free(v, n);
		if (c == KT_EUSAGE)
			return kt_error_set(err, c, "%s", last.msg);
		if (c == KT_ENOTFOUND && !out->n_skipped)
			return kt_error_set(err, KT_ENOTFOUND, "no verified backup in '%s' (see `kontinuity "
			                    "etcd backups list`; restore from the export with --from "
			                    "remote:latest)", cfg->dir);
		if (c)
			return kt_error_set(err, c, "none of the %u verified backups in '%s' passes its "
			                    "checks; the newest failure: %s", out->n_skipped, cfg->dir,
			                    last.msg);
		snprintf(out->origin, sizeof(out->origin), "%s", out->path);
		return KT_OK;
	}
	out->kind = "file";
	struct stat st;
	if (stat(from, &st) != 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read snapshot '%s'",
		                    from);
	if (!S_ISREG(st.st_mode))
		return kt_error_set(err, KT_EUSAGE, "'%s' is not a snapshot file", from);
	if ((size_t)snprintf(out->path, sizeof(out->path), "%s", from) >= sizeof(out->path))
		return kt_error_set(err, KT_ELIMIT, "path too long");
	snprintf(out->origin, sizeof(out->origin), "%s", from);
	char *sha = indexed_sha(from);
	kt_code c = check_file(from, sha, out, err);
	free(sha);
	return c;
}

/* ------------------------------------------------------------------ */
/* The member flags from the static pod manifest. */

/* 0, or -1 when the value does not fit (a cut name or URL list would
 * change its meaning). */
static int copy_flag(const kt_kube_staticpod *p, const char *name, char *out, size_t n)
{
	const char *v = kt_kube_staticpod_flag(p, name);
	return (size_t)snprintf(out, n, "%s", v ? v : "") < n ? 0 : -1;
}

kt_code kt_etcdbackup_manifest_member(const char *manifest, kt_etcd_member_flags *out,
                                      kt_error *err)
{
	memset(out, 0, sizeof(*out));
	kt_kube_staticpod p;
	kt_code c = kt_kube_staticpod_load(&p, manifest, NULL, err);
	if (c)
		return c;
	int cut = copy_flag(&p, "name", out->name, sizeof(out->name)) |
	          copy_flag(&p, "data-dir", out->data_dir, sizeof(out->data_dir)) |
	          copy_flag(&p, "initial-cluster", out->initial_cluster,
	                    sizeof(out->initial_cluster)) |
	          copy_flag(&p, "initial-advertise-peer-urls", out->peer_urls,
	                    sizeof(out->peer_urls)) |
	          copy_flag(&p, "initial-cluster-token", out->token, sizeof(out->token)) |
	          copy_flag(&p, "cert-file", out->cert, sizeof(out->cert)) |
	          copy_flag(&p, "key-file", out->key, sizeof(out->key)) |
	          copy_flag(&p, "trusted-ca-file", out->cacert, sizeof(out->cacert));
	if (cut) {
		kt_kube_staticpod_release(&p);
		memset(out, 0, sizeof(*out));
		return kt_error_set(err, KT_ELIMIT, "static pod manifest '%s': a member flag value is "
		                    "longer than kontinuity accepts (name 255, URL lists 4095 bytes)",
		                    manifest);
	}
	const char *urls = kt_kube_staticpod_flag(&p, "advertise-client-urls");
	if (!urls || !*urls)
		urls = kt_kube_staticpod_flag(&p, "listen-client-urls");
	if (urls) {
		size_t n = strcspn(urls, ",");
		snprintf(out->client_url, sizeof(out->client_url), "%.*s", (int)n, urls);
	}
	kt_kube_staticpod_release(&p);
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* etcd processes of a data directory, through /proc. */

int kt_etcd_db_locked(const char *data_dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/member/snap/db", data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd);
	return locked;
}

/* Equal paths: the same text without trailing slashes, or the same
 * directory once symlinks, "." and ".." are resolved. */
static int same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	if (realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb))
		return 1;
	size_t la = strlen(a), lb = strlen(b);
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && !memcmp(a, b, la);
}

int kt_etcd_processes(const char *data_dir, int *n_forced)
{
	*n_forced = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int n = 0;
	pid_t self = getpid();
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]) || strtol(de->d_name, NULL, 10) == self)
			continue;
		char path[300], buf[16384];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		const char *arg0 = buf, *base = strrchr(arg0, '/');
		base = base ? base + 1 : arg0;
		if (strcmp(base, "etcd"))
			continue;
		int match = 0, forced = 0;
		for (const char *a = buf + strlen(buf) + 1; a < buf + len; a += strlen(a) + 1) {
			const char *f = a[0] == '-' ? a + (a[1] == '-' ? 2 : 1) : NULL;
			if (!f)
				continue;
			if (!strncmp(f, "data-dir=", 9) && same_dir(f + 9, data_dir))
				match = 1;
			else if (!strcmp(f, "data-dir") && a + strlen(a) + 1 < buf + len &&
			         same_dir(a + strlen(a) + 1, data_dir))
				match = 1;
			else if (!strcmp(f, "force-new-cluster") || !strcmp(f, "force-new-cluster=true"))
				forced = 1;
		}
		if (match) {
			n++;
			*n_forced += forced;
		}
	}
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* The plan and the run. */

static void utc_stamp(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y%m%dT%H%M%SZ", &tm);
}

/* Does etcdutl's restore know --bump-revision?  (3.6 does; older ones do
 * not, and refuse the flag.) */
static kt_code etcdutl_supports_bump(const char *etcdutl, int *yes, kt_error *err)
{
	const char *argv[] = { etcdutl, "snapshot", "restore", "--help", NULL };
	kt_proc_opts po = { .timeout_ms = 30000 };
	kt_proc_result r;
	kt_code c = kt_proc_run(argv, &po, &r, err);
	if (!c)
		*yes = strstr(r.output.data, "--bump-revision") != NULL;
	if (!c && r.exit_code != 0 && !strstr(r.output.data, "restore"))
		c = kt_error_set(err, KT_EUSAGE, "'%s' does not look like etcdutl (`%s snapshot restore "
		                 "--help` failed)", etcdutl, etcdutl);
	kt_proc_result_release(&r);
	return c;
}

kt_code kt_etcdbackup_restore_plan(const kt_restore_opts *o, const kt_restore_source *src,
                                   kt_restore_plan *plan, kt_error *err)
{
	memset(plan, 0, sizeof(*plan));
	if (!o->data_dir || !*o->data_dir)
		return kt_error_set(err, KT_EUSAGE, "no data directory given");
	kt_code c = kt_proc_find(o->etcdutl && *o->etcdutl ? o->etcdutl : "etcdutl", plan->etcdutl,
	                         sizeof(plan->etcdutl), err);
	if (c)
		return kt_error_wrap(err, "etcdutl is needed to restore (pass --etcdutl)");
	int bump = 0;
	if ((c = etcdutl_supports_bump(plan->etcdutl, &bump, err)))
		return c;
	if (o->bump_revision && !bump)
		return kt_error_set(err, KT_EUSAGE, "'%s' cannot bump the revision (etcdutl 3.6 or "
		                    "newer can); use it, or pass --no-bump-revision knowing that "
		                    "watchers will see revisions go backwards", plan->etcdutl);
	/* The data directory and its parent. */
	char dir[4096];
	size_t dl = strlen(o->data_dir);
	while (dl > 1 && o->data_dir[dl - 1] == '/')
		dl--;
	if (dl >= sizeof(dir) - 64)
		return kt_error_set(err, KT_ELIMIT, "data directory path too long");
	memcpy(dir, o->data_dir, dl);
	dir[dl] = '\0';
	snprintf(plan->data_dir, sizeof(plan->data_dir), "%s", dir);
	struct stat st;
	if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
		/* /var/lib/etcd -> /data/etcd: restore where the data really is, so
		 * it stays on that disk and the link keeps working. */
		char real[PATH_MAX];
		if (!realpath(dir, real))
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "data directory '%s' "
			                    "is a symbolic link that does not resolve", dir);
		if (strlen(real) >= sizeof(dir) - 64)
			return kt_error_set(err, KT_ELIMIT, "data directory path too long");
		kt_log(KT_LOG_INFO, "data directory '%s' is a link to '%s'; restoring there", dir,
		       real);
		snprintf(dir, sizeof(dir), "%s", real);
		snprintf(plan->data_dir, sizeof(plan->data_dir), "%s", dir);
	}
	if (lstat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return kt_error_set(err, KT_EUSAGE, "data directory '%s' exists and is not a "
			                    "directory", dir);
		plan->data_dir_exists = 1;
	} else if (errno != ENOENT) {
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot examine '%s'", dir);
	}
	dev_t dir_dev = st.st_dev;
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *pp = dirname(parent);
	if (stat(pp, &st) != 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "the parent of the data "
		                    "directory, '%s', is not usable", pp);
	if (access(pp, W_OK) != 0)
		return kt_error_sys(err, KT_EPERM, errno, "cannot write in '%s', where the data "
		                    "directory '%s' lives (run as root?)", pp, dir);
	if (plan->data_dir_exists && st.st_dev != dir_dev)
		return kt_error_set(err, KT_EUSAGE, "data directory '%s' is a mount point: it cannot "
		                    "be moved aside, and a restore next to it would land on another "
		                    "disk; point --data-dir at a directory inside it (and etcd's "
		                    "--data-dir too)", dir);
	struct statvfs vfs;
	uint64_t need = src->size + (64ull << 20);
	if (statvfs(pp, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
		char a[32], b[32];
		return kt_error_set(err, KT_ENOSPC, "not enough room in '%s' to restore: %s free, %s "
		                    "needed (the database plus a 64 MiB WAL)", pp,
		                    kt_human_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, a),
		                    kt_human_bytes(need, b));
	}
	int forced;
	int n_running = o->check_not_running && plan->data_dir_exists ? kt_etcd_processes(dir, &forced)
	                                                              : 0;
	if (o->check_not_running && plan->data_dir_exists && (n_running || kt_etcd_db_locked(dir)))
		return kt_error_set(err, KT_EEXIST, "etcd is running on '%s' (%s): stop it first (on "
		                    "a kubeadm node move its static pod manifest out, or run "
		                    "`kontinuity etcd recover`, which does every step)", dir,
		                    n_running ? "its process is on this host"
		                              : "its database is locked by a process");
	char stamp[32];
	utc_stamp(stamp);
	snprintf(plan->staging, sizeof(plan->staging), "%s.restore-%s", dir, stamp);
	if (plan->data_dir_exists)
		snprintf(plan->aside, sizeof(plan->aside), "%s.before-restore-%s", dir, stamp);
	if (lstat(plan->staging, &st) == 0 || (plan->aside[0] && lstat(plan->aside, &st) == 0))
		return kt_error_set(err, KT_EEXIST, "'%s' or '%s' already exists (another restore "
		                    "this second?); try again", plan->staging, plan->aside);
	/* The staging directory is created (exclusively) by the run. */

	/* The command line. */
	size_t n = 0, a = 0;
	const kt_etcd_member_flags *m = o->member;
	plan->argv[n++] = plan->etcdutl;
	plan->argv[n++] = "snapshot";
	plan->argv[n++] = "restore";
	plan->argv[n++] = src->path;
	plan->argv[n++] = "--data-dir";
	plan->argv[n++] = plan->staging;
#define ARG(flag, val) do { if ((val)[0]) { \
		snprintf(plan->args[a], sizeof(plan->args[a]), "--%s=%s", flag, val); \
		plan->argv[n++] = plan->args[a++]; } } while (0)
	if (m) {
		ARG("name", m->name);
		ARG("initial-cluster", m->initial_cluster);
		ARG("initial-advertise-peer-urls", m->peer_urls);
		ARG("initial-cluster-token", m->token);
	}
	if (o->bump_revision) {
		char v[32];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)o->bump_revision);
		ARG("bump-revision", v);
		if (o->mark_compacted)
			plan->argv[n++] = "--mark-compacted";
	}
#undef ARG
	if (!src->has_trailer)
		plan->argv[n++] = "--skip-hash-check";   /* a raw member/snap/db copy */
	plan->argv[n] = NULL;
	return KT_OK;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fsync_dir_of(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

kt_code kt_etcdbackup_restore_run(const kt_restore_opts *o, kt_restore_plan *plan,
                                  kt_error *err)
{
	/* Ours alone: created exclusively now, so the cleanup below can never
	 * remove a directory someone else made under this name. */
	if (mkdir(plan->staging, 0700) != 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create the staging "
		                    "directory '%s'", plan->staging);
	kt_proc_opts po = { .timeout_ms = 30 * 60 * 1000, .cancel = o->cancel };
	kt_proc_result r;
	kt_code c = kt_proc_run(plan->argv, &po, &r, err);
	if (!c && (r.exit_code != 0 || r.signal)) {
		char line[400], how[48];
		if (r.signal)
			snprintf(how, sizeof(how), "killed by signal %d", r.signal);
		else
			snprintf(how, sizeof(how), "exit %d", r.exit_code);
		c = kt_error_set(err, KT_EREMOTE, "etcdutl snapshot restore failed (%s): %s; the "
		                 "data directory was not touched", how,
		                 kt_proc_last_line(&r, line, sizeof(line)));
	}
	kt_proc_result_release(&r);
	if (c) {
		/* Only ever our own staging directory. */
		nftw(plan->staging, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return c;
	}
	const char *dir = plan->data_dir;
	if (plan->data_dir_exists && rename(dir, plan->aside) != 0) {
		int e = errno;
		nftw(plan->staging, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot move the data directory "
		                    "'%s' aside to '%s'%s", dir, plan->aside,
		                    e == EBUSY ? " (it is a mount point: restore into a directory "
		                    "inside it and point --data-dir there)" : "");
	}
	if (rename(plan->staging, dir) != 0) {
		int e = errno;
		if (plan->data_dir_exists && rename(plan->aside, dir) == 0) {
			plan->aside[0] = '\0';
			return kt_error_sys(err, kt_code_from_errno(e), e, "cannot move the restored data "
			                    "from '%s' to '%s' (the old data directory is back in place; "
			                    "the restored one is kept)", plan->staging, dir);
		}
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot move the restored data from "
		                    "'%s' to '%s', and the old data directory stays at '%s': '%s' does "
		                    "not exist now; rename one of them there by hand before etcd "
		                    "starts", plan->staging, dir, plan->aside, dir);
	}
	chmod(dir, 0700);
	fsync_dir_of(dir);
	return KT_OK;
}
