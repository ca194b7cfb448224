/*
 * save.c - one snapshot saved safely: the pipeline behind both
 * `etcd snapshot save` and every backup cycle.
 *
 * etcd --gRPC--> chunks --> PATH.part (0600, flock'ed) ; trailer SHA-256
 * checked by kt_etcd_snapshot as the bytes come --> fsync --> bbolt walk of
 * the descriptor we wrote --> cancel polled --> rename without replacing.
 * Every failure path aborts the outfile, which removes the .part.
 */
#include <string.h>

#include "etcdbackup.h"
#include "snapshot/snapshot.h"

typedef struct save_ctx {
	kt_outfile out;
	const kt_etcd_conn *conn;
	kt_save_progress_fn progress;
	void *progress_ctx;
} save_ctx;

static kt_code on_chunk(void *ctx, const uint8_t *data, size_t n, uint64_t remaining,
                        kt_error *err)
{
	save_ctx *s = ctx;
	if (s->conn->cancel && *s->conn->cancel)
		return kt_error_set(err, KT_ECANCELED, "interrupted");
	kt_code rc = kt_outfile_write(&s->out, data, n, err);
	if (rc)
		return rc;
	if (s->progress)
		s->progress(s->progress_ctx, s->out.written, remaining);
	return KT_OK;
}

kt_code kt_etcdbackup_save(const kt_etcd_conn *conn, const char *path,
                           kt_save_progress_fn progress, void *progress_ctx,
                           kt_save_result *res, kt_error *err)
{
	int64_t start = kt_now_ms();
	save_ctx s = { .conn = conn, .progress = progress, .progress_ctx = progress_ctx };
	kt_code c = kt_outfile_open(&s.out, path, err);
	if (c)
		return c;

	kt_etcd_snapshot_info info;
	memset(&info, 0, sizeof(info));
	c = kt_etcd_snapshot(conn, on_chunk, &s, &info, err);
	if (conn->cancel && *conn->cancel)
		c = kt_error_set(err, KT_ECANCELED, "interrupted after %llu bytes; no snapshot was written",
		                 (unsigned long long)s.out.written);
	/* kt_etcd_snapshot checked the trailer as the bytes came; a stream
	 * without one is not a snapshot. */
	if (c == KT_OK && !info.trailer_ok)
		c = kt_error_set(err, KT_ECORRUPT,
		                 "etcd sent %llu bytes without a valid SHA-256 trailer; nothing was saved",
		                 (unsigned long long)s.out.written);
	if (c == KT_OK)
		c = kt_outfile_sync(&s.out, err);
	kt_snapshot_stat st;
	memset(&st, 0, sizeof(st));
	if (c == KT_OK) {
		/* Check the very descriptor we wrote, not a path someone could swap. */
		c = kt_snapshot_check_fd(s.out.fd, s.out.written, s.out.part_path, &st, err);
		if (c)
			kt_error_wrap(err, "the snapshot received from %s fails verification; "
			              "nothing was saved", conn->endpoint);
	}
	if (c == KT_OK && conn->cancel && *conn->cancel)
		c = kt_error_set(err, KT_ECANCELED, "interrupted; no snapshot was written");
	uint64_t size = s.out.written;
	if (c == KT_OK)
		c = kt_outfile_commit(&s.out, err);
	else
		kt_outfile_abort(&s.out);
	if (c)
		return c;

	memset(res, 0, sizeof(*res));
	res->size = size;
	res->revision = st.revision;
	kt_hex(res->sha256, info.sha256, 32);
	snprintf(res->version, sizeof(res->version), "%s", info.version[0] ? info.version : st.version);
	res->duration_ms = kt_now_ms() - start;
	return KT_OK;
}
