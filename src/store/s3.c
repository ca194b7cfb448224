/*
 * s3.c - the S3 backend: object NAME is the key "PREFIX/NAME" (or "NAME"
 * without a prefix) in one bucket, through src/s3.
 *
 * Invariants:
 *   1. Write once is enforced by the server: every PUT (and every
 *      CompleteMultipartUpload) carries If-None-Match: *, so of two racing
 *      writers exactly one wins and the other gets KT_EEXIST; no
 *      check-then-write window exists.  put_file also HEADs first, only to
 *      refuse before uploading a big file for a name that is taken.
 *   2. Atomic appearance comes from S3 itself: a PUT or a completed
 *      multipart upload becomes visible whole; a failed multipart upload is
 *      aborted by src/s3.
 *   3. Ranged reads use GET with Range; a range starting at or past the end
 *      (HTTP 416) is answered with a HEAD for the size, so the dispatcher can
 *      say how long the object really is.
 *   4. Listing strips "PREFIX/" and skips keys that are not valid names
 *      (foreign objects, "folder/" markers); S3 lists in byte order, which
 *      stripping a common prefix keeps.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

typedef struct s3_store {
	kt_store base;
	kt_s3 *s3;
	char *prefix;      /* "" or a valid name without trailing '/' */
	size_t prefix_len;
	unsigned lock_days; /* Object Lock retention of every write, or 0 */
} s3_store;

/* Write-once options, with the retention asked for (until = now + days). */
static void put_opts(const s3_store *b, kt_s3_put_opts *po, char until[32])
{
	memset(po, 0, sizeof(*po));
	po->if_none_match = 1;
	if (!b->lock_days)
		return;
	time_t t = time(NULL) + (time_t)b->lock_days * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(until, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	po->lock_mode = "COMPLIANCE";
	po->retain_until = until;
}

/* The key of name (a valid name, so it always fits). */
static void key_of(const s3_store *b, const char *name, char key[KT_S3_MAX_KEY + 1])
{
	snprintf(key, KT_S3_MAX_KEY + 1, "%s%s%s", b->prefix, b->prefix_len ? "/" : "", name);
}

static kt_code s3_put(kt_store *s, const char *name, const void *data, size_t len,
                      kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char key[KT_S3_MAX_KEY + 1];
	key_of(b, name, key);
	kt_s3_put_opts po;
	char until[32];
	put_opts(b, &po, until);
	return kt_s3_put_mem(b->s3, key, data, len, &po, NULL, err);
}

static kt_code s3_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char key[KT_S3_MAX_KEY + 1];
	kt_s3_object_info info;
	key_of(b, name, key);
	kt_code rc = kt_s3_head(b->s3, key, &info, err);
	if (rc == KT_OK) {
		kt_s3_object_info_release(&info);
		return kt_error_set(err, KT_EEXIST, "object '%s' already exists in %s; objects are "
		                    "written once and never replaced", name, b->base.desc);
	}
	if (rc != KT_ENOTFOUND)
		return rc;
	kt_s3_put_opts po;
	char until[32];
	put_opts(b, &po, until);
	return kt_s3_put(b->s3, key, fd, &po, NULL, err);
}

typedef struct get_ctx {
	kt_buf *out;
	const char *name;
} get_ctx;

static kt_code on_get_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	get_ctx *g = ctx;
	if (kt_buf_add(g->out, data, n, err))
		return kt_error_set(err, KT_ELIMIT, "reading object '%s' would exceed the limit of "
		                    "%zu bytes", g->name, g->out->max);
	return KT_OK;
}

static kt_code s3_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                      kt_buf *out, uint64_t *size_out, kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char key[KT_S3_MAX_KEY + 1];
	key_of(b, name, key);
	get_ctx g = { out, name };
	kt_error e;
	kt_error_clear(&e);
	kt_code rc = kt_s3_get_range(b->s3, key, offset, length, on_get_body, &g, size_out, &e);
	if (rc == KT_EUSAGE && e.status == 416) {
		/* The range starts at or past the end (or the object is empty):
		 * learn the size so the dispatcher can judge and explain. */
		kt_s3_object_info info;
		kt_buf_reset(out);
		rc = kt_s3_head(b->s3, key, &info, err);
		if (!rc) {
			*size_out = info.size;
			kt_s3_object_info_release(&info);
		}
		return rc;
	}
	if (rc && err)
		*err = e;
	return rc;
}

static kt_code s3_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char key[KT_S3_MAX_KEY + 1];
	kt_s3_object_info info;
	key_of(b, name, key);
	kt_code rc = kt_s3_head(b->s3, key, &info, err);
	if (!rc) {
		*size = info.size;
		kt_s3_object_info_release(&info);
	}
	return rc;
}

static kt_code s3_remove(kt_store *s, const char *name, kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char key[KT_S3_MAX_KEY + 1];
	key_of(b, name, key);
	return kt_s3_delete(b->s3, key, err);
}

typedef struct list_ctx {
	s3_store *b;
	kt_store_list_fn fn;
	void *ctx;
} list_ctx;

static kt_code on_list_entry(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	list_ctx *c = ctx;
	const char *name = e->key;
	if (c->b->prefix_len) {
		if (strncmp(name, c->b->prefix, c->b->prefix_len) || name[c->b->prefix_len] != '/')
			return KT_OK;
		name += c->b->prefix_len + 1;
	}
	if (!kt_store_name_ok(name))
		return KT_OK;
	kt_store_entry se = { name, e->size };
	return c->fn(c->ctx, &se, err);
}

static kt_code s3_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                       kt_error *err)
{
	s3_store *b = (s3_store *)s;
	char full[KT_S3_MAX_KEY + 1];
	snprintf(full, sizeof(full), "%s%s%s", b->prefix, b->prefix_len ? "/" : "", prefix);
	list_ctx c = { b, fn, ctx };
	return kt_s3_list(b->s3, full, 0, on_list_entry, &c, NULL, err);
}

static void s3_free(kt_store *s)
{
	s3_store *b = (s3_store *)s;
	kt_s3_free(b->s3);
	free(b->prefix);
	free(b);
}

static const kt_store_vtable s3_vt;

static kt_code s3_clone(kt_store *s, kt_store **out, kt_error *err)
{
	s3_store *b = (s3_store *)s;
	kt_s3 *s3 = NULL;
	kt_code rc = kt_s3_clone(b->s3, &s3, err);
	if (rc)
		return rc;
	s3_store *c = kt_xcalloc(1, sizeof(*c));
	c->base.vt = &s3_vt;
	c->base.cancel = s->cancel;
	c->base.desc = kt_xstrdup(s->desc);
	c->s3 = s3;
	c->prefix = kt_xstrdup(b->prefix);
	c->prefix_len = b->prefix_len;
	c->lock_days = b->lock_days;
	*out = &c->base;
	return KT_OK;
}

static const kt_store_vtable s3_vt = {
	.kind = "s3",
	.put = s3_put,
	.put_file = s3_put_file,
	.get = s3_get,
	.stat = s3_stat,
	.list = s3_list,
	.remove = s3_remove,
	.clone = s3_clone,
	.free = s3_free,
};

kt_code kt_store_s3_open(const char *bucket, const char *prefix, const kt_store_opts *o,
                         kt_store **out, kt_error *err)
{
	/* Room for "PREFIX/" plus the longest name in one S3 key. */
	if (strlen(prefix) + 1 + KT_STORE_NAME_MAX > KT_S3_MAX_KEY)
		return kt_error_set(err, KT_EUSAGE, "store prefix '%.64s...' is too long (at most %d "
		                    "bytes)", prefix, KT_S3_MAX_KEY - 1 - KT_STORE_NAME_MAX);
	kt_s3_config c;
	memset(&c, 0, sizeof(c));
	c.endpoint = o->endpoint;
	c.region = o->region;
	c.bucket = bucket;
	c.access_key = o->access_key;
	c.secret_key = o->secret_key;
	c.cacert = o->cacert;
	c.style = o->style;
	c.max_attempts = o->s3_attempts;
	c.part_size = o->part_size;
	c.n_threads = o->n_threads;
	c.timeout_ms = o->timeout_ms;
	c.cancel = o->cancel;
	kt_s3 *s3 = NULL;
	kt_code rc = kt_s3_new(&s3, &c, err);
	if (rc) {
		kt_error_wrap(err, "store 's3://%s%s%s'", bucket, *prefix ? "/" : "", prefix);
		return rc;
	}
	if (o->create) {
		kt_error e;
		kt_error_clear(&e);
		rc = kt_s3_create_bucket(s3, NULL, &e);
		if (rc && rc != KT_EEXIST) {
			if (err)
				*err = e;
			kt_s3_free(s3);
			return rc;
		}
	}
	s3_store *b = kt_xcalloc(1, sizeof(*b));
	b->base.vt = &s3_vt;
	b->base.cancel = o->cancel;
	b->s3 = s3;
	b->prefix = kt_xstrdup(prefix);
	b->lock_days = o->lock_days;
	b->prefix_len = strlen(prefix);
	kt_buf d;
	kt_buf_init(&d, KT_BUF_UNLIMITED);
	kt_buf_addf(&d, NULL, "s3://%s%s%s", bucket, *prefix ? "/" : "", prefix);
	b->base.desc = kt_buf_detach(&d, NULL);
	*out = &b->base;
	return KT_OK;
}
