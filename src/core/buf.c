/*
 * buf.c - size-limited growable buffers.
 *
 * Invariants: data is never NULL (an empty buffer points at a shared empty
 * string, as git's strbuf_slopbuf), data[len] == '\0', len <= max.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

static char empty_slot[1];

void kt_buf_init(kt_buf *b, size_t max)
{
	b->data = empty_slot;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void kt_buf_release(kt_buf *b)
{
	if (b->cap)
		free(b->data);
	kt_buf_init(b, b->max);
}

char *kt_buf_detach(kt_buf *b, size_t *len_out)
{
	char *p = b->cap ? b->data : kt_xstrdup("");
	if (len_out)
		*len_out = b->len;
	kt_buf_init(b, b->max);
	return p;
}

void kt_buf_reset(kt_buf *b)
{
	/* Never write to the shared empty slot: buffers of several threads point
	 * at it, and even storing the '\0' it already holds is a data race. */
	b->len = 0;
	if (b->cap)
		b->data[0] = '\0';
	else
		b->data = empty_slot;
}

static kt_code grow(kt_buf *b, size_t extra, kt_error *err)
{
	if (extra > b->max - b->len || (b->max == KT_BUF_UNLIMITED && extra > SIZE_MAX - b->len - 1))
		return kt_error_set(err, KT_ELIMIT,
		                    "data exceeds the limit of %zu bytes", b->max);
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return KT_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->cap ? b->data : NULL, cap);
	if (!p)
		return kt_error_set(err, KT_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
	if (!b->cap)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return KT_OK;
}

kt_code kt_buf_grow(kt_buf *b, size_t extra, kt_error *err)
{
	return grow(b, extra, err);
}

void kt_buf_setlen(kt_buf *b, size_t len)
{
	if (!b->cap)
		return; /* nothing was grown: only the empty slot, which stays "" */
	b->len = len < b->cap ? len : b->cap - 1;
	b->data[b->len] = '\0';
}

kt_code kt_buf_add(kt_buf *b, const void *data, size_t n, kt_error *err)
{
	if (n == 0)
		return KT_OK;
	kt_code rc = grow(b, n, err);
	if (rc)
		return rc;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return KT_OK;
}

kt_code kt_buf_adds(kt_buf *b, const char *s, kt_error *err)
{
	return kt_buf_add(b, s, strlen(s), err);
}

kt_code kt_buf_addf(kt_buf *b, kt_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return kt_error_set(err, KT_EUSAGE, "bad format string");
	kt_code rc = grow(b, (size_t)n, err);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return KT_OK;
}

void kt_buf_consume(kt_buf *b, size_t n)
{
	if (n >= b->len) {
		kt_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}
