/*
 * drill.c - prove a backup restores: restore it into a temporary
 * directory, start a throwaway etcd on loopback, and compare what it
 * serves with what the file says.
 *
 * Checks, in order (a failed check stops the ones that need etcd running):
 *   restore   etcdutl snapshot restore succeeds
 *   start     the etcd answers Status within the start timeout
 *   revision  its revision equals the snapshot's
 *   keys      the number of live keys equals the snapshot's (etcdutl's totalKey)
 *   objects   per Kubernetes resource, the object count equals the census
 *   sample    objects read back are Kubernetes objects (protobuf "k8s\0" or JSON)
 * The etcd gets no bump: a drill compares the revision exactly.  It listens
 * on Unix sockets only (client and peer), in a 0700 directory of its own: the
 * restored cluster holds every Secret, and a loopback port would serve them
 * to any local process.  Whatever happens, the etcd is stopped and both
 * directories removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "snapshot/snapshot.h"

static void check(kt_drill_result *r, const char *name, int ok, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void check(kt_drill_result *r, const char *name, int ok, const char *fmt, ...)
{
	if (r->n_checks == KT_DRILL_MAX_CHECKS)
		return;
	kt_drill_check *c = &r->checks[r->n_checks++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->ok = ok;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	if (!ok)
		r->pass = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The last line etcd logged (its reason for exiting). */
static const char *last_log_line(const char *log, char *out, size_t outlen)
{
	kt_proc_result r;
	memset(&r, 0, sizeof(r));
	kt_buf_init(&r.output, 8192);
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		off_t size = lseek(fd, 0, SEEK_END);
		char buf[4096];
		ssize_t n = pread(fd, buf, sizeof(buf), size > 4096 ? size - 4096 : 0);
		if (n > 0)
			kt_buf_add(&r.output, buf, (size_t)n, NULL);
		close(fd);
	}
	kt_proc_last_line(&r, out, outlen);
	kt_buf_release(&r.output);
	return out[0] ? out : "(no log)";
}

/* Live keys in [key, key+prefix range), counted by the drill etcd. */
static kt_code count_prefix(const kt_etcd_conn *conn, const char *prefix, int64_t *out,
                            kt_error *err)
{
	kt_buf end;
	kt_buf_init(&end, 4096);
	size_t n = strlen(prefix);
	kt_code c = kt_etcd_prefix_end(&end, (const uint8_t *)prefix, n, err);
	kt_etcd_range_req req = { .key = (const uint8_t *)(n ? prefix : "\0"), .key_len = n ? n : 1,
	                          .range_end = (const uint8_t *)end.data,
	                          .range_end_len = end.len, .serializable = 1, .count_only = 1 };
	kt_etcd_range_resp resp;
	if (!c && !(c = kt_etcd_range(conn, &req, &resp, err))) {
		*out = resp.count;
		kt_etcd_range_resp_release(&resp);
	}
	kt_buf_release(&end);
	return c;
}

static int is_kube_object(const kt_etcd_kv *kv)
{
	if (kv->value_len >= 4 && !memcmp(kv->value, "k8s\0", 4))
		return 1;
	for (size_t i = 0; i < kv->value_len; i++) {
		uint8_t b = kv->value[i];
		if (b == ' ' || b == '\n' || b == '\t' || b == '\r')
			continue;
		return b == '{';
	}
	return 0;
}

/* The checks that need the running etcd. */
static void compare(const kt_drill_opts *o, const kt_etcd_conn *conn, pid_t *pid,
                    const char *log, const kt_restore_source *src, kt_drill_result *r)
{
	kt_error err;
	kt_etcd_status_msg st;
	int64_t deadline = kt_now_ms() + (o->start_timeout_ms > 0 ? o->start_timeout_ms : 60000);
	kt_code c;
	while ((c = kt_etcd_status(conn, &st, &err)) && kt_now_ms() < deadline &&
	       !(o->cancel && *o->cancel)) {
		kt_proc_result pr;
		if (kt_proc_exited(*pid, &pr)) {
			*pid = 0;
			char line[400];
			check(r, "start", 0, "the restored etcd exited (status %d): %s", pr.exit_code,
			      last_log_line(log, line, sizeof(line)));
			kt_proc_result_release(&pr);
			return;
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (c) {
		check(r, "start", 0, "the restored etcd did not answer: %s", err.msg);
		return;
	}
	snprintf(r->etcd_version, sizeof(r->etcd_version), "%s", st.version);
	check(r, "start", 1, "etcd %s answers on its private socket", st.version);
	r->revision_got = st.header.revision;
	r->revision_expected = src->revision;
	check(r, "revision", r->revision_got == r->revision_expected,
	      "etcd is at revision %lld, the snapshot at %lld", (long long)r->revision_got,
	      (long long)r->revision_expected);

	int64_t n_keys = 0;
	if ((c = count_prefix(conn, "", &n_keys, &err))) {
		check(r, "keys", 0, "cannot count keys: %s", err.msg);
		return;
	}
	r->keys_got = (uint64_t)n_keys;
	r->keys_expected = src->total_key;
	check(r, "keys", r->keys_got == r->keys_expected, "etcd serves %llu live keys, the "
	      "snapshot holds %llu", (unsigned long long)r->keys_got,
	      (unsigned long long)r->keys_expected);

	/* The census comes from reading the file again: a drill is not a hot
	 * path, and the census is too big to carry in the source. */
	kt_snapshot_report rep;
	if ((c = kt_snapshot_verify(src->path, &rep, &err))) {
		check(r, "objects", 0, "cannot read the census: %s", err.msg);
		kt_snapshot_report_release(&rep);
		return;
	}
	unsigned n_bad = 0, n_sample_bad = 0;
	char first_bad[300] = "", sample_bad[200] = "";
	unsigned sample = o->sample ? o->sample : 20;
	for (size_t i = 0; i < rep.n_resources; i++) {
		char prefix[1024];
		snprintf(prefix, sizeof(prefix), "/registry/%s/", rep.resources[i].resource);
		int64_t n = 0, exact = 0;
		c = count_prefix(conn, prefix, &n, &err);
		if (!c) {
			/* A resource that is a single key (/registry/<name>) counts too. */
			prefix[strlen(prefix) - 1] = '\0';
			kt_etcd_range_req req = { .key = (const uint8_t *)prefix, .key_len = strlen(prefix),
			                          .serializable = 1, .count_only = 1 };
			kt_etcd_range_resp resp;
			if (!(c = kt_etcd_range(conn, &req, &resp, &err))) {
				exact = resp.count;
				kt_etcd_range_resp_release(&resp);
			}
			prefix[strlen(prefix)] = '/';
		}
		r->n_resources++;
		if (c || (uint64_t)(n + exact) != rep.resources[i].count) {
			if (!n_bad++)
				snprintf(first_bad, sizeof(first_bad), "%.120s: etcd %lld, snapshot %llu%s%.120s",
				         rep.resources[i].resource, (long long)(n + exact),
				         (unsigned long long)rep.resources[i].count, c ? "; " : "",
				         c ? err.msg : "");
			continue;
		}
		if (r->n_sampled + n_sample_bad >= sample || n == 0)
			continue;
		/* One object of each resource until the sample is full. */
		kt_buf end;
		kt_buf_init(&end, 4096);
		kt_etcd_range_resp resp;
		kt_etcd_range_req req = { .key = (const uint8_t *)prefix, .key_len = strlen(prefix),
		                          .limit = 1, .serializable = 1 };
		if (!kt_etcd_prefix_end(&end, (const uint8_t *)prefix, strlen(prefix), &err)) {
			req.range_end = (const uint8_t *)end.data;
			req.range_end_len = end.len;
			if (!kt_etcd_range(conn, &req, &resp, &err)) {
				if (resp.n_kvs == 1 && is_kube_object(&resp.kvs[0]))
					r->n_sampled++;
				else if (!n_sample_bad++)
					snprintf(sample_bad, sizeof(sample_bad), "%.120s: the object read back is "
					         "neither Kubernetes protobuf nor JSON", rep.resources[i].resource);
				kt_etcd_range_resp_release(&resp);
			}
		}
		kt_buf_release(&end);
	}
	if (n_bad)
		check(r, "objects", 0, "%u of %u resources differ; first: %s", n_bad, r->n_resources,
		      first_bad);
	else
		check(r, "objects", 1, "%u resources, %llu objects: every count matches the snapshot",
		      r->n_resources, (unsigned long long)rep.n_kube_objects);
	if (n_sample_bad)
		check(r, "sample", 0, "%u of %u objects read back are not Kubernetes objects; first: %s",
		      n_sample_bad, n_sample_bad + r->n_sampled, sample_bad);
	else if (rep.n_resources)
		check(r, "sample", r->n_sampled > 0, "%u objects read back and decoded as Kubernetes "
		      "objects", r->n_sampled);
	kt_snapshot_report_release(&rep);
}

kt_code kt_etcdbackup_drill(const kt_drill_opts *o, const kt_restore_source *src,
                            kt_drill_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	res->pass = 1;
	int64_t start = kt_now_ms();
	char etcd[4096];
	kt_code c = kt_proc_find(o->etcd && *o->etcd ? o->etcd : "etcd", etcd, sizeof(etcd), err);
	if (c)
		return kt_error_wrap(err, "a drill runs etcd (pass --etcd)");
	const char *tmp = o->work_dir && *o->work_dir ? o->work_dir
	                  : getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	/* Room for the restored database, its WAL and etcd's own copy. */
	struct statvfs vfs;
	uint64_t need = 2 * src->size + (64ull << 20);
	if (statvfs(tmp, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
		char a[32], b[32];
		return kt_error_set(err, KT_ENOSPC, "not enough room in '%s' for a drill: %s free, %s "
		                    "needed (pass --work-dir)", tmp,
		                    kt_human_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, a),
		                    kt_human_bytes(need, b));
	}
	char work[4096], sock[64];
	snprintf(work, sizeof(work), "%s/kontinuity-drill-XXXXXX", tmp);
	if (!mkdtemp(work))
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create a drill "
		                    "directory in '%s'", tmp);
	/* Socket paths are limited to 108 bytes: a short private directory. */
	snprintf(sock, sizeof(sock), "/tmp/kt-drill-XXXXXX");
	if (!mkdtemp(sock)) {
		int e = errno;
		rmdir(work);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot create a socket directory "
		                    "in /tmp");
	}
	kt_etcd_member_flags m;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "drill");
	snprintf(m.peer_urls, sizeof(m.peer_urls), "unix://localhost:2380");
	snprintf(m.initial_cluster, sizeof(m.initial_cluster), "drill=unix://localhost:2380");
	snprintf(m.token, sizeof(m.token), "kontinuity-drill");
	char data[4200], log[4200], sock_path[128];
	const char *curl = "unix://localhost:2379";
	snprintf(data, sizeof(data), "%s/data", work);
	snprintf(log, sizeof(log), "%s/etcd.log", work);
	snprintf(sock_path, sizeof(sock_path), "%s/localhost:2379", sock);
	kt_restore_opts ro = { .etcdutl = o->etcdutl, .data_dir = data, .member = &m,
	                       .cancel = o->cancel };
	kt_restore_plan plan;
	pid_t pid = 0;
	if ((c = kt_etcdbackup_restore_plan(&ro, src, &plan, err)))
		goto out;
	kt_error rerr;
	if ((c = kt_etcdbackup_restore_run(&ro, &plan, &rerr))) {
		if (c != KT_EREMOTE) {   /* etcdutl did not refuse: the drill could not run */
			*err = rerr;
			goto out;
		}
		c = KT_OK;
		check(res, "restore", 0, "%s", rerr.msg);
		goto out;
	}
	check(res, "restore", 1, "etcdutl restored %s", src->path);
	const char *argv[] = { etcd, "--name", "drill", "--data-dir", data,
	                       "--listen-client-urls", curl, "--advertise-client-urls", curl,
	                       "--listen-peer-urls", m.peer_urls,
	                       "--initial-advertise-peer-urls", m.peer_urls,
	                       "--initial-cluster", m.initial_cluster, NULL };
	if ((c = kt_proc_spawn(argv, sock, log, &pid, err)))
		goto out;
	kt_etcd_conn conn = { .endpoint = "http://localhost:2379", .unix_socket = sock_path,
	                      .timeout_ms = 10000, .connect_timeout_ms = 1000,
	                      .cancel = o->cancel };
	compare(o, &conn, &pid, log, src, res);
out:
	if (pid > 0)
		kt_proc_stop(pid, 10000);
	nftw(work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	nftw(sock, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	res->duration_ms = kt_now_ms() - start;
	if (!c && o->cancel && *o->cancel)
		c = kt_error_set(err, KT_ECANCELED, "drill interrupted");
	return c;
}
