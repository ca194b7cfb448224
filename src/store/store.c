/*
 * store.c - the dispatcher of the storage layer: store URLs, name rules,
 * and the kt_store_* entry points that check arguments before a backend
 * runs and check its answers after.
 *
 * Invariants:
 *   1. No backend ever sees an invalid name or prefix (store.h rule 1).
 *   2. kt_store_get returns exactly the bytes asked for or an error: the
 *      backend reports the object's size, and this file decides between
 *      success, KT_ECORRUPT (the range lies beyond the object) and
 *      KT_ETRANSIENT (the backend delivered fewer bytes than it holds).
 *   3. kt_store_list hands the caller names in strictly ascending byte
 *      order that start with the prefix and are valid names; a backend that
 *      breaks this is reported (KT_EPROTO), never passed through.
 */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* ------------------------------------------------------------------ */
/* Names */

/* Check name (or a list prefix when is_prefix: may be empty, may end with
 * '/').  Returns NULL when valid, else what is wrong. */
static const char *name_problem(const char *name, int is_prefix)
{
	size_t n = strlen(name);
	if (n == 0)
		return is_prefix ? NULL : "it is empty";
	if (n > KT_STORE_NAME_MAX)
		return "it is longer than 512 bytes";
	if (name[0] == '/')
		return "it starts with '/' (names are relative to the store)";
	const char *seg = name;
	for (;;) {
		size_t l = 0;
		while (seg[l] && seg[l] != '/') {
			if (!kt_store_name_char(seg[l]))
				return "it has a byte outside A-Z a-z 0-9 '.' '_' '-' '/'";
			l++;
		}
		int last = !seg[l];
		if (l > KT_STORE_SEGMENT_MAX)
			return "a segment is longer than 200 bytes";
		/* Also in a prefix, even as its unfinished last segment: S3 servers
		 * (MinIO) refuse such a prefix outright. */
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return "it has a '.' or '..' segment";
		if (l == 0) {
			if (last && is_prefix)
				return NULL;   /* trailing '/' of a prefix */
			return last ? "it ends with '/'" : "it has an empty segment ('//')";
		}
		if (last)
			return NULL;
		seg += l + 1;
	}
}

int kt_store_name_ok(const char *name)
{
	return name && !name_problem(name, 0);
}

kt_code kt_store_check_name(const char *name, kt_error *err)
{
	if (!name)
		return kt_error_set(err, KT_EUSAGE, "object name is missing");
	const char *why = name_problem(name, 0);
	if (why)
		return kt_error_set(err, KT_EUSAGE, "'%.80s%s' is not a valid object name: %s", name,
		                    strlen(name) > 80 ? "..." : "", why);
	return KT_OK;
}

static kt_code check_prefix(const char *prefix, kt_error *err)
{
	const char *why = name_problem(prefix, 1);
	if (why)
		return kt_error_set(err, KT_EUSAGE, "'%.80s%s' is not a valid listing prefix: %s",
		                    prefix, strlen(prefix) > 80 ? "..." : "", why);
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* URLs */

kt_code kt_store_open(const char *url, const kt_store_opts *o, kt_store **out, kt_error *err)
{
	kt_store_opts none;
	if (!o) {
		memset(&none, 0, sizeof(none));
		o = &none;
	}
	if (!url || !*url)
		return kt_error_set(err, KT_EUSAGE, "store URL is empty (give a directory or "
		                    "s3://BUCKET/PREFIX)");
	if (!strncmp(url, "s3://", 5)) {
		const char *b = url + 5;
		size_t bl = strcspn(b, "/");
		char bucket[256];
		if (bl == 0 || bl >= sizeof(bucket))
			return kt_error_set(err, KT_EUSAGE, "store URL '%s' lacks a bucket (or it is too "
			                    "long): use s3://BUCKET/PREFIX", url);
		memcpy(bucket, b, bl);
		bucket[bl] = '\0';
		const char *p = b[bl] ? b + bl + 1 : "";
		/* One trailing '/' is forgiven: s3://b/backups/ means s3://b/backups. */
		size_t pl = strlen(p);
		char *prefix = kt_xstrdup(p);
		if (pl && prefix[pl - 1] == '/')
			prefix[pl - 1] = '\0';
		kt_code rc = KT_OK;
		if (*prefix && name_problem(prefix, 0))
			rc = kt_error_set(err, KT_EUSAGE, "store URL '%s': the prefix is not valid: %s "
			                  "(use segments of A-Z a-z 0-9 '.' '_' '-')", url,
			                  name_problem(prefix, 0));
		if (!rc)
			rc = kt_store_s3_open(bucket, prefix, o, out, err);
		free(prefix);
		return rc;
	}
	const char *path = url;
	if (!strncmp(url, "file://", 7)) {
		path = url + 7;
		if (path[0] != '/')
			return kt_error_set(err, KT_EUSAGE, "store URL '%s': only file:///ABSOLUTE/PATH "
			                    "is supported (no host part)", url);
	} else if (strstr(url, "://")) {
		return kt_error_set(err, KT_EUSAGE, "store URL '%s': unknown scheme (use a directory, "
		                    "file:///PATH or s3://BUCKET/PREFIX)", url);
	}
	return kt_store_local_open(path, o, out, err);
}

kt_code kt_store_clone(kt_store *s, kt_store **out, kt_error *err)
{
	if (!s->vt->clone)
		return kt_error_set(err, KT_EUSAGE, "%s cannot be opened a second time", s->desc);
	return s->vt->clone(s, out, err);
}

void kt_store_free(kt_store *s)
{
	if (!s)
		return;
	char *desc = s->desc;
	s->vt->free(s);
	free(desc);
}

const char *kt_store_describe(const kt_store *s)
{
	return s->desc;
}

/* ------------------------------------------------------------------ */
/* Dispatch */

kt_code kt_store_put(kt_store *s, const char *name, const void *data, size_t len,
                     kt_error *err)
{
	kt_code rc = kt_store_check_name(name, err);
	if (rc)
		return rc;
	if (!data && len)
		return kt_error_set(err, KT_EUSAGE, "put of '%s': no data", name);
	return s->vt->put(s, name, data ? data : "", len, err);
}

kt_code kt_store_put_file(kt_store *s, const char *name, int fd, kt_error *err)
{
	kt_code rc = kt_store_check_name(name, err);
	if (rc)
		return rc;
	if (fd < 0)
		return kt_error_set(err, KT_EUSAGE, "put of '%s': no file", name);
	return s->vt->put_file(s, name, fd, err);
}

kt_code kt_store_get(kt_store *s, const char *name, uint64_t offset, uint64_t length,
                     kt_buf *out, kt_error *err)
{
	uint64_t size = 0;
	kt_buf_reset(out);
	kt_code rc = kt_store_check_name(name, err);
	if (rc)
		return rc;
	if (length && offset + length < offset)
		return kt_error_set(err, KT_EUSAGE, "get of '%s': byte range overflows", name);
	rc = s->vt->get(s, name, offset, length, out, &size, err);
	if (rc) {
		kt_buf_reset(out);
		return rc;
	}
	if (offset > size || (length && offset + length > size)) {
		kt_buf_reset(out);
		if (length)
			return kt_error_set(err, KT_ECORRUPT, "object '%s' in %s has %llu bytes: cannot "
			                    "read %llu bytes at offset %llu (the object is shorter than "
			                    "expected: truncated, or the reference to it is wrong)", name,
			                    s->desc, (unsigned long long)size,
			                    (unsigned long long)length, (unsigned long long)offset);
		return kt_error_set(err, KT_ECORRUPT, "object '%s' in %s has %llu bytes: offset %llu "
		                    "is past its end (the object is shorter than expected)", name,
		                    s->desc, (unsigned long long)size, (unsigned long long)offset);
	}
	uint64_t want = length ? length : size - offset;
	if (out->len > want) {
		kt_buf_reset(out);
		return kt_error_set(err, KT_EPROTO, "get of '%s' from %s returned more bytes than "
		                    "asked for (backend bug)", name, s->desc);
	}
	if (out->len < want) {
		uint64_t got = out->len;
		kt_buf_reset(out);
		return kt_error_set(err, KT_ETRANSIENT, "short read of object '%s' in %s: got %llu of "
		                    "%llu bytes at offset %llu (the transfer was cut short; try "
		                    "again)", name, s->desc, (unsigned long long)got,
		                    (unsigned long long)want, (unsigned long long)offset);
	}
	return KT_OK;
}

kt_code kt_store_stat(kt_store *s, const char *name, uint64_t *size, kt_error *err)
{
	kt_code rc = kt_store_check_name(name, err);
	if (rc)
		return rc;
	return s->vt->stat(s, name, size, err);
}

kt_code kt_store_remove(kt_store *s, const char *name, kt_error *err)
{
	kt_code rc = kt_store_check_name(name, err);
	if (rc)
		return rc;
	return s->vt->remove(s, name, err);
}

typedef struct list_guard {
	kt_store *s;
	const char *prefix;
	size_t prefix_len;
	kt_store_list_fn fn;
	void *ctx;
	char last[KT_STORE_NAME_MAX + 1];
	int have_last;
} list_guard;

static kt_code guard_entry(void *ctx, const kt_store_entry *e, kt_error *err)
{
	list_guard *g = ctx;
	if (!kt_store_name_ok(e->name) || strncmp(e->name, g->prefix, g->prefix_len))
		return kt_error_set(err, KT_EPROTO, "listing of %s returned '%.80s', which is not a "
		                    "valid name under prefix '%s' (backend bug)", g->s->desc, e->name,
		                    g->prefix);
	if (g->have_last && strcmp(e->name, g->last) <= 0)
		return kt_error_set(err, KT_EPROTO, "listing of %s returned '%.80s' after '%.80s' "
		                    "(out of order or repeated; backend bug)", g->s->desc, e->name,
		                    g->last);
	memcpy(g->last, e->name, strlen(e->name) + 1);
	g->have_last = 1;
	return g->fn(g->ctx, e, err);
}

kt_code kt_store_list(kt_store *s, const char *prefix, kt_store_list_fn fn, void *ctx,
                      kt_error *err)
{
	if (!prefix)
		prefix = "";
	kt_code rc = check_prefix(prefix, err);
	if (rc)
		return rc;
	list_guard *g = kt_xcalloc(1, sizeof(*g));
	g->s = s;
	g->prefix = prefix;
	g->prefix_len = strlen(prefix);
	g->fn = fn;
	g->ctx = ctx;
	rc = s->vt->list(s, prefix, guard_entry, g, err);
	free(g);
	return rc;
}
