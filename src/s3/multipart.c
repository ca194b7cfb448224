/*
 * multipart.c - multipart upload of a file: CreateMultipartUpload, parts
 * uploaded in parallel by worker threads, CompleteMultipartUpload, and
 * AbortMultipartUpload on any failure.
 *
 * Invariants:
 *   1. Each worker owns one kt_http handle (a handle is single-threaded)
 *      and takes the next part number from a shared counter under the lock;
 *      parts are read with pread, hashed, then sent: memory per worker is
 *      one 1 MiB hash buffer plus libcurl's, whatever the part size.
 *   2. The first failure wins: it is kept, every worker stops taking parts
 *      and in-flight parts stop sending (their read callback sees `failed`).
 *   3. Success is reported only after CompleteMultipartUpload answered with
 *      a CompleteMultipartUploadResult (an <Error> in a 200 is a failure).
 *      If a retried Complete finds the upload gone (NoSuchUpload: the first
 *      attempt did complete but its answer was lost), a HEAD must show the
 *      expected size and a "-<parts>" ETag to count as success; so must a
 *      write-once upload (If-None-Match: * on Complete) refused on a retry.
 *   4. Every failure after CreateMultipartUpload aborts the upload, on a
 *      fresh handle that ignores the cancel flag (a canceled upload must
 *      still be cleaned up); an abort failure is appended to the message.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "s3_call.h"

typedef struct upload {
	kt_s3 *s;
	const char *key;
	int fd;
	uint64_t size, part_size;
	unsigned n_parts;
	const char *upload_id;
	char query_id[1200];      /* encoded uploadId value */
	char (*etags)[132];
	const kt_s3_put_opts *opts;

	pthread_mutex_t lock;
	unsigned next;            /* next part index to take */
	volatile int failed;      /* set once; read without the lock by read callbacks */
	kt_error first_err;
	uint64_t done;
} upload;

static void fail(upload *u, const kt_error *e)
{
	pthread_mutex_lock(&u->lock);
	if (!u->failed) {
		u->first_err = *e;
		u->failed = 1;
	}
	pthread_mutex_unlock(&u->lock);
}

static kt_code upload_part(upload *u, kt_http *h, unsigned i, kt_error *err)
{
	char hash[65], pn[16];
	uint64_t off = (uint64_t)i * u->part_size;
	uint64_t len = u->size - off < u->part_size ? u->size - off : u->part_size;
	kt_buf query;
	kt_code rc = kt_s3_hash_fd(hash, u->fd, off, len, err);
	if (rc)
		return rc;
	snprintf(pn, sizeof(pn), "%u", i + 1);
	const char *names[2] = { "partNumber", "uploadId" };
	const char *values[2] = { pn, u->upload_id };
	kt_buf_init(&query, 8192);
	rc = kt_s3_query(&query, names, values, 2, err);
	if (rc) {
		kt_buf_release(&query);
		return rc;
	}
	kt_s3_call call = {
		.op = "part upload", .method = "PUT", .key = u->key, .query = query.data,
		.payload_hash = hash, .body_fd = u->fd, .body_off = off, .body_len = len,
		.stop = &u->failed,
	};
	kt_s3_result res;
	rc = kt_s3_run(u->s, h, &call, &res, err);
	kt_buf_release(&query);
	if (!rc && !res.info.etag[0])
		rc = kt_error_set(err, KT_EPROTO, "the S3 server at %s sent no ETag for part %u of "
		                  "'%.200s'", u->s->origin, i + 1, u->key);
	if (!rc) {
		memcpy(u->etags[i], res.info.etag, sizeof(u->etags[i]));
		pthread_mutex_lock(&u->lock);
		u->done += len;
		if (u->opts && u->opts->progress)
			u->opts->progress(u->opts->progress_ctx, u->done, u->size, i + 1);
		pthread_mutex_unlock(&u->lock);
	}
	kt_s3_object_info_release(&res.info);
	return rc;
}

static void *worker(void *arg)
{
	upload *u = arg;
	kt_http *h = NULL;
	kt_error e;
	kt_error_clear(&e);
	if (kt_s3_http_new(u->s, &h, 0, &e)) {
		fail(u, &e);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&u->lock);
		unsigned i = u->next;
		int stop = u->failed || i >= u->n_parts;
		if (!stop)
			u->next++;
		pthread_mutex_unlock(&u->lock);
		if (stop)
			break;
		if (upload_part(u, h, i, &e)) {
			fail(u, &e);
			break;
		}
	}
	kt_http_free(h);
	return NULL;
}

/* AbortMultipartUpload; on failure, say so in err's message. */
static void abort_upload(upload *u, kt_error *err)
{
	kt_http *h = NULL;
	kt_error e;
	kt_error_clear(&e);
	kt_code rc = kt_s3_http_new(u->s, &h, 1, &e);
	if (!rc) {
		kt_s3_call call = {
			.op = "abort of the multipart upload", .method = "DELETE", .key = u->key,
			.query = u->query_id,
			.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			.max_attempts = 3,
		};
		kt_s3_result res;
		rc = kt_s3_run(u->s, h, &call, &res, &e);
		kt_s3_object_info_release(&res.info);
		/* Already gone counts as aborted. */
		if (rc == KT_ENOTFOUND)
			rc = KT_OK;
	}
	kt_http_free(h);
	if (rc && err) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n,
		         "; the incomplete upload could not be aborted either (%s): its parts stay "
		         "in the bucket until a lifecycle rule (AbortIncompleteMultipartUpload) "
		         "removes them", e.msg);
	}
	kt_log(rc ? KT_LOG_WARN : KT_LOG_DEBUG, "s3: abort of multipart upload of '%s': %s",
	       u->key, rc ? e.msg : "done");
}

static kt_code initiate(upload *u, const kt_sigv4_header *hdrs, size_t n_hdrs, char id[1024],
                        kt_error *err)
{
	kt_buf body;
	kt_buf_init(&body, 64u << 10);
	kt_s3_call call = {
		.op = "start of multipart upload", .method = "POST", .key = u->key,
		.query = "uploads=", .extra = hdrs, .n_extra = n_hdrs,
		.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		.body_fd = -1, .collect = &body,
	};
	kt_s3_result res;
	kt_code rc = kt_s3_run(u->s, u->s->h, &call, &res, err);
	kt_s3_object_info_release(&res.info);
	if (!rc)
		rc = kt_s3_parse_initiate(body.data, body.len, id, err);
	kt_buf_release(&body);
	return rc;
}

static kt_code complete(upload *u, char etag_out[132], kt_error *err)
{
	kt_buf xml, body;
	char hash[65];
	kt_code rc = KT_OK;
	kt_buf_init(&xml, KT_BUF_UNLIMITED);
	kt_buf_init(&body, 1u << 20);
	rc = kt_buf_adds(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/"
	                 "2006-03-01/\">", err);
	for (unsigned i = 0; i < u->n_parts && !rc; i++)
		rc = kt_buf_addf(&xml, err, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag>"
		                 "</Part>", i + 1, u->etags[i]);
	if (!rc)
		rc = kt_buf_adds(&xml, "</CompleteMultipartUpload>", err);
	if (rc)
		goto out;
	kt_s3_sha256_hex(hash, xml.data, xml.len);
	kt_sigv4_header ct[2] = { { "content-type", "application/xml" },
	                          { "if-none-match", "*" } };
	kt_s3_call call = {
		.op = "completion of multipart upload", .method = "POST", .key = u->key,
		.query = u->query_id, .extra = ct,
		.n_extra = u->opts && u->opts->if_none_match ? 2 : 1, .payload_hash = hash,
		.body_mem = xml.data, .body_fd = -1, .body_len = xml.len, .collect = &body,
	};
	kt_s3_result res;
	rc = kt_s3_run(u->s, u->s->h, &call, &res, err);
	kt_s3_object_info_release(&res.info);
	if (!rc) {
		kt_s3_errdoc d;
		rc = kt_s3_parse_complete(body.data, body.len, etag_out, &d, err);
		if (rc == KT_EREMOTE)
			rc = kt_s3_map_failure(u->s, "completion of multipart upload", u->key,
			                       res.status, &d, err);
	} else if (res.attempts > 1 && ((rc == KT_ENOTFOUND && strstr(err->msg, "NoSuchUpload")) ||
	                                rc == KT_EEXIST)) {
		/* An earlier attempt may have completed it (a conditional one is
		 * then refused with 412); believe the object only if it has the size
		 * and the multipart ETag we expect. */
		kt_s3_object_info info;
		kt_error e;
		char suffix[16];
		snprintf(suffix, sizeof(suffix), "-%u", u->n_parts);
		if (kt_s3_head(u->s, u->key, &info, &e) == KT_OK) {
			size_t el = strlen(info.etag), sl = strlen(suffix);
			if (info.size == u->size && el > sl && !strcmp(info.etag + el - sl, suffix)) {
				memcpy(etag_out, info.etag, 132);
				rc = KT_OK;
				kt_error_clear(err);
			}
			kt_s3_object_info_release(&info);
		}
	}
out:
	kt_buf_release(&xml);
	kt_buf_release(&body);
	return rc;
}

kt_code kt_s3_put_multipart(kt_s3 *s, const char *key, int fd, uint64_t size,
                            const kt_s3_put_opts *opts, kt_s3_object_info *info_out,
                            kt_error *err)
{
	kt_sigv4_header hdrs[40];
	char names[40][128];
	size_t n_hdrs;
	char id[1024];
	kt_code rc = kt_s3_put_headers(opts, hdrs, 40, &n_hdrs, names, err);
	if (rc)
		return rc;

	upload *u = kt_xcalloc(1, sizeof(*u));
	u->s = s;
	u->key = key;
	u->fd = fd;
	u->size = size;
	u->opts = opts;
	u->part_size = s->cfg.part_size;
	if ((size + u->part_size - 1) / u->part_size > KT_S3_MAX_PARTS) {
		/* Grow parts (whole MiB) so the file fits in 10000 of them. */
		uint64_t ps = (size + KT_S3_MAX_PARTS - 1) / KT_S3_MAX_PARTS;
		u->part_size = (ps + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	}
	if (u->part_size > KT_S3_MAX_PART_SIZE) {
		free(u);
		return kt_error_set(err, KT_ELIMIT, "file of %llu bytes is too large for one S3 "
		                    "object", (unsigned long long)size);
	}
	u->n_parts = (unsigned)((size + u->part_size - 1) / u->part_size);
	pthread_mutex_init(&u->lock, NULL);

	rc = initiate(u, hdrs, n_hdrs, id, err);
	if (rc)
		goto out;
	u->upload_id = id;
	{
		kt_buf q;
		const char *qn[1] = { "uploadId" };
		const char *qv[1] = { id };
		kt_buf_init(&q, sizeof(u->query_id) - 1);
		rc = kt_s3_query(&q, qn, qv, 1, err);
		if (!rc)
			memcpy(u->query_id, q.data, q.len + 1);
		kt_buf_release(&q);
		if (rc)
			goto abort;
	}
	kt_log(KT_LOG_DEBUG, "s3: multipart upload of '%s': %u parts of %llu bytes", key,
	       u->n_parts, (unsigned long long)u->part_size);

	u->etags = kt_xcalloc(u->n_parts, sizeof(*u->etags));
	unsigned n_threads = (unsigned)s->cfg.n_threads;
	if (n_threads > u->n_parts)
		n_threads = u->n_parts;
	pthread_t tids[KT_S3_MAX_THREADS];
	unsigned started = 0;
	for (; started < n_threads; started++)
		if (pthread_create(&tids[started], NULL, worker, u) != 0)
			break;
	if (started == 0) {
		/* No thread at all: do the work here. */
		worker(u);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (u->failed) {
		if (err)
			*err = u->first_err;
		rc = u->first_err.code ? u->first_err.code : KT_EREMOTE;
		goto abort;
	}
	if (s->cfg.cancel && *s->cfg.cancel) {
		rc = kt_error_set(err, KT_ECANCELED, "upload of '%.200s' canceled", key);
		goto abort;
	}
	char etag[132];
	rc = complete(u, etag, err);
	if (rc)
		goto abort;
	if (info_out) {
		memset(info_out, 0, sizeof(*info_out));
		info_out->size = size;
		memcpy(info_out->etag, etag, sizeof(info_out->etag));
	}
	goto out;
abort:
	abort_upload(u, err);
out:
	pthread_mutex_destroy(&u->lock);
	free(u->etags);
	free(u);
	return rc;
}
