/*
 * recover.c - the control-plane recovery runbook of a kubeadm-style node,
 * where etcd is a static pod the kubelet runs from a manifest.
 *
 * State diagram (each arrow is one step; on the left, what undoes it):
 *
 *   [running or broken etcd]
 *      | 1. check the source, etcdutl and the data directory (nothing moves)
 *      | 2. move the manifest to STASH; wait until no etcd process serves
 *      |    the data directory and its bbolt lock is free
 *      |       (failure: the manifest is moved back)
 *      | 3. restore: staging -> DIR, old DIR kept as DIR.before-restore-T
 *      |       (failure: the data directory is untouched, manifest back)
 *      | 4. write the manifest with --force-new-cluster; wait for a healthy,
 *      |    linearizable etcd
 *      | 5. move the original manifest back; wait until the process without
 *      |    the flag answers
 *   [one-member cluster serving the restored data]
 *
 * After step 3 nothing is rolled back automatically: the restored data is
 * the point, and the report says where the old data and manifest are.
 * Processes are found through /proc (argv[0] named etcd and a --data-dir
 * equal to the manifest's), which sees containers on the node too.
 */
#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"
#include "kube/kube.h"

static void say(const kt_recover_opts *o, int step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(const kt_recover_opts *o, int step, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	kt_log(KT_LOG_INFO, "recover: %s", text);
	if (o->step)
		o->step(o->step_ctx, step, text);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Healthy: Status answers and a linearizable read goes through (which
 * needs a leader and a quorum), as `etcdctl endpoint health` checks. */
static kt_code etcd_healthy(const kt_etcd_conn *conn, kt_etcd_status_msg *st, kt_error *err)
{
	kt_etcd_conn c = *conn;
	c.timeout_ms = 3000;
	c.connect_timeout_ms = 1000;
	kt_code rc = kt_etcd_status(&c, st, err);
	if (rc)
		return rc;
	kt_etcd_range_req req = { .key = (const uint8_t *)"health", .key_len = 6,
	                          .count_only = 1 };
	kt_etcd_range_resp resp;
	rc = kt_etcd_range(&c, &req, &resp, err);
	if (!rc)
		kt_etcd_range_resp_release(&resp);
	return rc;
}

typedef enum wait_for { WAIT_STOPPED, WAIT_FORCED_UP, WAIT_PLAIN_UP } wait_for;

static kt_code wait_state(const kt_recover_opts *o, const char *data_dir, wait_for what,
                          kt_etcd_status_msg *st, kt_error *err)
{
	int64_t deadline = kt_now_ms() + (o->wait_ms > 0 ? o->wait_ms : 300000);
	kt_error last;
	kt_error_clear(&last);
	snprintf(last.msg, sizeof(last.msg), "no etcd process for '%s' yet", data_dir);
	while (kt_now_ms() < deadline) {
		if (o->cancel && *o->cancel)
			return kt_error_set(err, KT_ECANCELED, "interrupted");
		int forced, n = kt_etcd_processes(data_dir, &forced);
		if (what == WAIT_STOPPED) {
			if (n == 0 && !kt_etcd_db_locked(data_dir))
				return KT_OK;
			snprintf(last.msg, sizeof(last.msg), "%d etcd process%s still serve%s '%s'", n,
			         n == 1 ? "" : "es", n == 1 ? "s" : "", data_dir);
		} else if (n > 0 && (what == WAIT_FORCED_UP ? forced == n : forced == 0)) {
			if (etcd_healthy(&o->conn, st, &last) == KT_OK)
				return KT_OK;
		} else if (n > 0) {
			snprintf(last.msg, sizeof(last.msg), "etcd still runs %s --force-new-cluster",
			         what == WAIT_FORCED_UP ? "without" : "with");
		}
		sleep_ms(200);
	}
	return kt_error_set(err, KT_ETRANSIENT, "gave up after %lld s: %s",
	                    (long long)((o->wait_ms > 0 ? o->wait_ms : 300000) / 1000), last.msg);
}

/* Write data to path through a hidden temp file in the same directory
 * (the kubelet ignores dot files), mode 0600, then rename over path. */
static kt_code write_manifest(const char *path, const kt_buf *data, kt_error *err)
{
	char copy[4096], tmp[4200];
	snprintf(copy, sizeof(copy), "%s", path);
	const char *base = basename(copy);
	char copy2[4096];
	snprintf(copy2, sizeof(copy2), "%s", path);
	snprintf(tmp, sizeof(tmp), "%s/.%s.kontinuity-tmp", dirname(copy2), base);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot write '%s'", tmp);
	ssize_t w = write(fd, data->data, data->len);
	int e = errno;
	if (w != (ssize_t)data->len || fsync(fd) != 0) {
		e = w < 0 ? e : errno ? errno : ENOSPC;
		close(fd);
		unlink(tmp);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot write '%s'", tmp);
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot write '%s'", path);
	}
	return KT_OK;
}

static kt_code read_file(const char *path, kt_buf *out, kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot read '%s'", path);
	char chunk[8192];
	ssize_t r;
	kt_code c = KT_OK;
	while (!c && (r = read(fd, chunk, sizeof(chunk))) > 0)
		c = kt_buf_add(out, chunk, (size_t)r, err);
	close(fd);
	return c;
}

kt_code kt_etcdbackup_recover(const kt_recover_opts *o, kt_recover_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	int64_t start = kt_now_ms();
	kt_etcd_member_flags *m = &res->member;
	kt_code c = kt_etcdbackup_manifest_member(o->manifest, m, err);
	if (c)
		return kt_error_wrap(err, "cannot read the etcd static pod manifest");
	if (!m->data_dir[0])
		return kt_error_set(err, KT_EUSAGE, "the manifest '%s' has no --data-dir", o->manifest);
	if (!m->name[0] || !m->peer_urls[0])
		return kt_error_set(err, KT_EUSAGE, "the manifest '%s' lacks --name or "
		                    "--initial-advertise-peer-urls; restore by hand with "
		                    "`kontinuity etcd restore`", o->manifest);
	say(o, 1, "manifest %s: member %s, data dir %s, client URL %s", o->manifest, m->name,
	    m->data_dir, o->conn.endpoint);

	c = kt_etcdbackup_resolve_source(o->backup, o->from, o->dry_run, &res->src, err);
	if (c)
		return c;
	if (res->src.verified)
		say(o, 1, "source %s: revision %lld, %llu keys, %llu Kubernetes objects, verified",
		    res->src.origin, (long long)res->src.revision,
		    (unsigned long long)res->src.total_key,
		    (unsigned long long)res->src.n_kube_objects);
	else
		say(o, 1, "source %s: %llu bytes (downloaded and verified when run for real)",
		    res->src.origin, (unsigned long long)res->src.size);
	kt_restore_opts ro = { .etcdutl = o->etcdutl, .data_dir = m->data_dir, .member = m,
	                       .bump_revision = o->bump_revision,
	                       .mark_compacted = o->mark_compacted, .cancel = o->cancel };
	if ((c = kt_etcdbackup_restore_plan(&ro, &res->src, &res->plan, err)))
		return c;

	/* Where the manifest waits while etcd is stopped. */
	char mcopy[4096], stamp[32];
	snprintf(mcopy, sizeof(mcopy), "%s", o->manifest);
	char *mdir = dirname(mcopy);
	char mcopy2[4096];
	snprintf(mcopy2, sizeof(mcopy2), "%s", o->manifest);
	const char *mbase = basename(mcopy2);
	char sdir[4096];
	snprintf(sdir, sizeof(sdir), "%s", o->stash_dir && *o->stash_dir ? o->stash_dir : mdir);
	if (!(o->stash_dir && *o->stash_dir)) {
		char *p = dirname(sdir);   /* the parent of the manifests directory */
		memmove(sdir, p, strlen(p) + 1);
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(res->stash, sizeof(res->stash), "%s/%s.before-recover-%s", sdir, mbase, stamp);
	if (access(sdir, W_OK) != 0)
		return kt_error_sys(err, KT_EPERM, errno, "cannot write in '%s' to park the manifest "
		                    "(pass --stash-dir)", sdir);
	if (access(mdir, W_OK) != 0)
		return kt_error_sys(err, KT_EPERM, errno, "cannot write in '%s'", mdir);
	kt_buf orig;
	kt_buf_init(&orig, 1u << 20);
	kt_buf forced;
	kt_buf_init(&forced, 2u << 20);
	static const char *const add[] = { "--force-new-cluster", NULL };
	static const char *const rm[] = { "force-new-cluster", NULL };
	if ((c = read_file(o->manifest, &orig, err)) ||
	    (c = kt_kube_staticpod_rewrite(orig.data, orig.len, NULL, add, rm, &forced, err)))
		goto out;

	/* etcd must be visible to us to be waited for: a locked database with
	 * no etcd process in /proc means another PID namespace. */
	int n_forced;
	if (kt_etcd_processes(m->data_dir, &n_forced) == 0 && kt_etcd_db_locked(m->data_dir)) {
		c = kt_error_set(err, KT_EUSAGE, "the etcd database in '%s' is in use but no etcd "
		                 "process is visible: run kontinuity in the host's PID namespace "
		                 "(hostPID: true in a pod)", m->data_dir);
		goto out;
	}

	if (o->dry_run) {
		say(o, 2, "would move %s to %s and wait until etcd stops", o->manifest, res->stash);
		say(o, 3, "would restore into %s%s%s", m->data_dir,
		    res->plan.aside[0] ? ", keeping the current one as " : " (absent now)",
		    res->plan.aside);
		say(o, 4, "would write %s with --force-new-cluster and wait until etcd is healthy",
		    o->manifest);
		say(o, 5, "would move the original manifest back and wait until etcd runs without "
		    "--force-new-cluster");
		goto out;
	}

	/* 2. Stop etcd. */
	say(o, 2, "stopping etcd: moving %s to %s", o->manifest, res->stash);
	if (rename(o->manifest, res->stash) != 0) {
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot move '%s' to '%s'",
		                 o->manifest, res->stash);
		goto out;
	}
	kt_etcd_status_msg st;
	if ((c = wait_state(o, m->data_dir, WAIT_STOPPED, &st, err))) {
		kt_error_wrap(err, "etcd did not stop");
		if (rename(res->stash, o->manifest) == 0)
			kt_error_wrap(err, "the manifest is back in place, nothing changed");
		goto out;
	}
	res->stopped_ms = kt_now_ms() - start;
	say(o, 2, "etcd stopped");

	/* 3. Restore. */
	say(o, 3, "restoring %s into %s", res->src.origin, m->data_dir);
	if ((c = kt_etcdbackup_restore_run(&ro, &res->plan, err))) {
		/* Never restart etcd on a missing data directory: it would start
		 * a new, empty cluster. */
		struct stat st;
		if (res->plan.data_dir_exists && stat(res->plan.data_dir, &st) != 0)
			kt_error_wrap(err, "etcd stays stopped (its manifest is in %s)", res->stash);
		else if (rename(res->stash, o->manifest) == 0)
			kt_error_wrap(err, "the manifest is back in place");
		goto out;
	}
	if (res->plan.aside[0])
		say(o, 3, "restored; the previous data directory is kept as %s", res->plan.aside);
	else
		say(o, 3, "restored");

	/* 4. Start once with --force-new-cluster. */
	say(o, 4, "starting etcd with --force-new-cluster (%s)", o->manifest);
	if ((c = write_manifest(o->manifest, &forced, err)))
		goto out;
	if ((c = wait_state(o, m->data_dir, WAIT_FORCED_UP, &st, err))) {
		kt_error_wrap(err, "etcd did not become healthy with --force-new-cluster; the manifest "
		              "in place still has that flag: once etcd is healthy, move the original "
		              "%s back to %s (the old data is in %s)", res->stash, o->manifest,
		              res->plan.aside[0] ? res->plan.aside : "(none)");
		goto out;
	}
	say(o, 4, "etcd is healthy as a new one-member cluster (revision %lld)",
	    (long long)st.header.revision);

	/* 5. Back to the original manifest. */
	say(o, 5, "restarting etcd without --force-new-cluster (original manifest back)");
	if (rename(res->stash, o->manifest) != 0) {
		c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot move '%s' back to '%s'",
		                 res->stash, o->manifest);
		goto out;
	}
	res->stash[0] = '\0';
	if ((c = wait_state(o, m->data_dir, WAIT_PLAIN_UP, &st, err))) {
		kt_error_wrap(err, "etcd did not come back healthy after dropping "
		              "--force-new-cluster");
		goto out;
	}
	res->revision = st.header.revision;
	res->cluster_id = st.header.cluster_id;
	res->member_id = st.header.member_id;
	snprintf(res->version, sizeof(res->version), "%s", st.version);
	say(o, 5, "etcd %s is healthy: cluster %016llx, member %016llx, revision %lld",
	    st.version, (unsigned long long)st.header.cluster_id,
	    (unsigned long long)st.header.member_id, (long long)st.header.revision);
out:
	kt_buf_release(&orig);
	kt_buf_release(&forced);
	res->duration_ms = kt_now_ms() - start;
	return c;
}
