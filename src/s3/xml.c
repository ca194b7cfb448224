/*
 * xml.c - a small bounded XML reader for S3 responses and the parsers of
 * the documents we read (Error, InitiateMultipartUploadResult,
 * CompleteMultipartUploadResult, ListBucketResult).
 *
 * The reader is not a general XML parser; it accepts the well-formed subset
 * S3 servers send and refuses anything else with KT_EPROTO:
 *   - declarations <?...?>, comments <!--...-->, CDATA sections;
 *   - elements with attributes (attribute values are skipped, quotes honoured);
 *   - the five predefined entities and numeric character references.
 * Invariants:
 *   1. Depth <= KT_S3XML_MAX_DEPTH, element text <= KT_S3XML_MAX_TEXT bytes,
 *      path <= KT_S3XML_MAX_PATH, input <= KT_S3XML_MAX_INPUT: a hostile
 *      peer cannot make us allocate or recurse without bound.
 *   2. <!DOCTYPE and <!ENTITY are refused: no entity expansion of any kind.
 *   3. Every read is bounds-checked against n; the input need not be
 *      NUL-terminated and may contain NUL bytes (refused).
 */
#include <stdlib.h>
#include <string.h>

#include "s3_int.h"

typedef struct frame {
	size_t path_len;   /* path length before this element was appended */
	size_t text_start; /* where this element's text starts in the text stack */
	int has_child;     /* mixed content: text of non-leaf elements is dropped */
} frame;

typedef struct reader {
	const char *p, *end;
	char path[KT_S3XML_MAX_PATH + 1];
	size_t path_len;
	frame stack[KT_S3XML_MAX_DEPTH];
	int depth;
	/* Text of the innermost open element (only leaves keep text). */
	char text[KT_S3XML_MAX_TEXT + 8];
	size_t text_len;
} reader;

static kt_code bad(kt_error *err, const reader *r, const char *xml, const char *what)
{
	return kt_error_set(err, KT_EPROTO, "malformed XML from the S3 server at byte %zu: %s",
	                    (size_t)(r->p - xml), what);
}

static int starts(const reader *r, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(r->end - r->p) >= n && !memcmp(r->p, s, n);
}

/* Find s at or after p; NULL if absent. */
static const char *find(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);
	while ((size_t)(end - p) >= n) {
		const char *c = memchr(p, s[0], (size_t)(end - p) - n + 1);
		if (!c)
			return NULL;
		if (!memcmp(c, s, n))
			return c;
		p = c + 1;
	}
	return NULL;
}

static int is_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == ':' || c >= 0x80;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static kt_code add_text(reader *r, const char *s, size_t n, kt_error *err)
{
	size_t own = r->depth ? r->text_len - r->stack[r->depth - 1].text_start : 0;
	if (!r->depth) {
		/* Text outside the root: only blanks are allowed. */
		for (size_t i = 0; i < n; i++)
			if (!is_space(s[i]))
				return kt_error_set(err, KT_EPROTO,
				                    "malformed XML from the S3 server: text outside the root "
				                    "element");
		return KT_OK;
	}
	if (r->stack[r->depth - 1].has_child)
		return KT_OK;
	if (own + n > KT_S3XML_MAX_TEXT || r->text_len + n >= sizeof(r->text))
		return kt_error_set(err, KT_ELIMIT,
		                    "an XML element from the S3 server has more than %u bytes of text",
		                    KT_S3XML_MAX_TEXT);
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	return KT_OK;
}

/* Encode code point cp as UTF-8 text. */
static kt_code add_codepoint(reader *r, unsigned long cp, kt_error *err)
{
	char u[4];
	size_t n;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return kt_error_set(err, KT_EPROTO, "malformed XML from the S3 server: character "
		                    "reference to an invalid code point");
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return add_text(r, u, n, err);
}

static kt_code read_text(reader *r, const char *xml, kt_error *err)
{
	while (r->p < r->end && *r->p != '<') {
		const char *amp = memchr(r->p, '&', (size_t)(r->end - r->p));
		const char *lt = memchr(r->p, '<', (size_t)(r->end - r->p));
		const char *stop = lt ? lt : r->end;
		if (amp && amp < stop)
			stop = amp;
		if (memchr(r->p, '\0', (size_t)(stop - r->p)))
			return bad(err, r, xml, "NUL byte in text");
		kt_code rc = add_text(r, r->p, (size_t)(stop - r->p), err);
		if (rc)
			return rc;
		r->p = stop;
		if (r->p < r->end && *r->p == '&') {
			const char *semi = memchr(r->p, ';', (size_t)(r->end - r->p));
			if (!semi || semi - r->p > 12)
				return bad(err, r, xml, "unterminated entity");
			const char *name = r->p + 1;
			size_t len = (size_t)(semi - name);
			static const struct { const char *n; char c; } ents[] = {
				{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
			};
			int found = 0;
			for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				if (strlen(ents[i].n) == len && !memcmp(ents[i].n, name, len)) {
					rc = add_text(r, &ents[i].c, 1, err);
					found = 1;
					break;
				}
			}
			if (!found) {
				if (len < 2 || name[0] != '#')
					return bad(err, r, xml, "unknown entity");
				int hexa = name[1] == 'x';
				const char *d = name + 1 + hexa;
				if (d == semi)
					return bad(err, r, xml, "empty character reference");
				unsigned long cp = 0;
				for (; d < semi; d++) {
					int v;
					char c = *d;
					if (c >= '0' && c <= '9')
						v = c - '0';
					else if (hexa && c >= 'a' && c <= 'f')
						v = c - 'a' + 10;
					else if (hexa && c >= 'A' && c <= 'F')
						v = c - 'A' + 10;
					else
						return bad(err, r, xml, "bad character reference");
					cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
					if (cp > 0x10FFFF)
						return bad(err, r, xml, "character reference out of range");
				}
				rc = add_codepoint(r, cp, err);
			}
			if (rc)
				return rc;
			r->p = semi + 1;
		}
	}
	return KT_OK;
}

/* Read a name at r->p; on success name and len hold it, prefix stripped. */
static int read_name(reader *r, const char **name, size_t *len)
{
	const char *s = r->p;
	while (r->p < r->end && is_name_char((unsigned char)*r->p))
		r->p++;
	if (r->p == s)
		return 0;
	const char *local = s;
	for (const char *c = s; c < r->p; c++)
		if (*c == ':')
			local = c + 1;
	if (local == r->p)
		return 0;
	*name = local;
	*len = (size_t)(r->p - local);
	return 1;
}

static kt_code open_tag(reader *r, const char *xml, kt_s3xml_fn fn, void *ctx, kt_error *err)
{
	const char *name;
	size_t len;
	r->p++; /* '<' */
	if (!read_name(r, &name, &len))
		return bad(err, r, xml, "bad element name");
	/* Attributes: name="value" or name='value', skipped. */
	for (;;) {
		while (r->p < r->end && is_space(*r->p))
			r->p++;
		if (r->p >= r->end)
			return bad(err, r, xml, "unterminated start tag");
		if (*r->p == '>' || *r->p == '/')
			break;
		const char *an;
		size_t al;
		if (!read_name(r, &an, &al))
			return bad(err, r, xml, "bad attribute name");
		while (r->p < r->end && is_space(*r->p))
			r->p++;
		if (r->p >= r->end || *r->p != '=')
			return bad(err, r, xml, "attribute without value");
		r->p++;
		while (r->p < r->end && is_space(*r->p))
			r->p++;
		if (r->p >= r->end || (*r->p != '"' && *r->p != '\''))
			return bad(err, r, xml, "unquoted attribute value");
		const char *q = memchr(r->p + 1, *r->p, (size_t)(r->end - r->p - 1));
		if (!q)
			return bad(err, r, xml, "unterminated attribute value");
		r->p = q + 1;
	}
	int empty = *r->p == '/';
	if (empty) {
		r->p++;
		if (r->p >= r->end || *r->p != '>')
			return bad(err, r, xml, "bad empty-element tag");
	}
	r->p++; /* '>' */

	if (r->depth >= KT_S3XML_MAX_DEPTH)
		return kt_error_set(err, KT_ELIMIT, "XML from the S3 server nests deeper than %d "
		                    "elements", KT_S3XML_MAX_DEPTH);
	if (r->depth == 0 && r->path_len)
		return bad(err, r, xml, "more than one root element");
	size_t need = r->path_len + (r->depth ? 1 : 0) + len;
	if (need > KT_S3XML_MAX_PATH)
		return kt_error_set(err, KT_ELIMIT, "XML element path from the S3 server is longer "
		                    "than %u bytes", KT_S3XML_MAX_PATH);
	if (r->depth) {
		frame *parent = &r->stack[r->depth - 1];
		parent->has_child = 1;
		r->text_len = parent->text_start;
	}
	r->stack[r->depth].path_len = r->path_len;
	r->stack[r->depth].text_start = r->text_len;
	r->stack[r->depth].has_child = 0;
	if (r->depth)
		r->path[r->path_len++] = '/';
	memcpy(r->path + r->path_len, name, len);
	r->path_len += len;
	r->path[r->path_len] = '\0';
	r->depth++;
	if (empty) {
		r->depth--;
		kt_code rc = fn(ctx, r->path, "", 0, err);
		r->path_len = r->stack[r->depth].path_len;
		r->path[r->path_len] = '\0';
		if (rc)
			return rc;
		/* Keep path_len non-zero marker for "root seen" at depth 0. */
		if (r->depth == 0)
			r->path_len = 1;
	}
	return KT_OK;
}

static kt_code close_tag(reader *r, const char *xml, kt_s3xml_fn fn, void *ctx, kt_error *err)
{
	const char *name;
	size_t len;
	r->p += 2; /* "</" */
	if (!read_name(r, &name, &len))
		return bad(err, r, xml, "bad end tag");
	while (r->p < r->end && is_space(*r->p))
		r->p++;
	if (r->p >= r->end || *r->p != '>')
		return bad(err, r, xml, "unterminated end tag");
	r->p++;
	if (r->depth == 0)
		return bad(err, r, xml, "end tag without start tag");
	frame *f = &r->stack[r->depth - 1];
	size_t start = f->path_len + (r->depth > 1 ? 1 : 0);
	if (r->path_len - start != len || memcmp(r->path + start, name, len))
		return bad(err, r, xml, "mismatched end tag");
	size_t tlen = r->text_len - f->text_start;
	char *text = r->text + f->text_start;
	text[tlen] = '\0';
	kt_code rc = fn(ctx, r->path, text, tlen, err);
	r->text_len = f->text_start;
	r->path_len = f->path_len;
	r->path[r->path_len] = '\0';
	r->depth--;
	if (r->depth == 0)
		r->path_len = 1; /* root seen (path itself is empty) */
	r->path[0] = r->depth ? r->path[0] : '\0';
	return rc;
}

kt_code kt_s3xml_parse(const char *xml, size_t n, kt_s3xml_fn fn, void *ctx, kt_error *err)
{
	if (n > KT_S3XML_MAX_INPUT)
		return kt_error_set(err, KT_ELIMIT, "XML from the S3 server is larger than %u bytes",
		                    KT_S3XML_MAX_INPUT);
	reader *r = kt_xcalloc(1, sizeof(*r));
	kt_code rc = KT_OK;
	int seen_root = 0;
	r->p = xml;
	r->end = xml + n;
	/* A UTF-8 byte order mark. */
	if (starts(r, "\xEF\xBB\xBF"))
		r->p += 3;
	while (!rc && r->p < r->end) {
		if (*r->p != '<') {
			rc = read_text(r, xml, err);
			continue;
		}
		if (starts(r, "<?")) {
			const char *e = find(r->p + 2, r->end, "?>");
			if (!e || seen_root || r->depth)
				rc = bad(err, r, xml, "bad processing instruction");
			else
				r->p = e + 2;
		} else if (starts(r, "<!--")) {
			const char *e = find(r->p + 4, r->end, "-->");
			if (!e)
				rc = bad(err, r, xml, "unterminated comment");
			else
				r->p = e + 3;
		} else if (starts(r, "<![CDATA[")) {
			const char *s = r->p + 9;
			const char *e = find(s, r->end, "]]>");
			if (!e || !r->depth)
				rc = bad(err, r, xml, "bad CDATA section");
			else if (memchr(s, '\0', (size_t)(e - s)))
				rc = bad(err, r, xml, "NUL byte in CDATA");
			else {
				rc = add_text(r, s, (size_t)(e - s), err);
				r->p = e + 3;
			}
		} else if (starts(r, "<!")) {
			rc = bad(err, r, xml, "DOCTYPE and entity declarations are not accepted");
		} else if (starts(r, "</")) {
			rc = close_tag(r, xml, fn, ctx, err);
		} else {
			if (seen_root && r->depth == 0)
				rc = bad(err, r, xml, "more than one root element");
			else {
				seen_root = 1;
				rc = open_tag(r, xml, fn, ctx, err);
			}
		}
	}
	if (!rc && r->depth)
		rc = bad(err, r, xml, "document ends inside an element");
	if (!rc && !seen_root)
		rc = bad(err, r, xml, "no root element");
	free(r);
	return rc;
}

/* ---- helpers for the document parsers -------------------------------- */

/* Copy text into out (bounded), replacing control bytes with '?'. */
static void copy_printable(char *out, size_t outlen, const char *text, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)text[i];
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (outlen)
		out[o] = '\0';
}

void kt_s3_etag_unquote(char *out, size_t outlen, const char *in)
{
	size_t len = strlen(in);
	if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
		in++;
		len -= 2;
	} else if (len >= 12 && !strncmp(in, "&quot;", 6) && !strcmp(in + len - 6, "&quot;")) {
		in += 6;
		len -= 12;
	}
	copy_printable(out, outlen, in, len);
}

/* The root element's name: path up to the first '/'. */
static int root_is(const char *path, const char *root)
{
	size_t n = strlen(root);
	return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}

/* ---- Error ------------------------------------------------------------ */

static kt_code on_error_el(void *ctx, const char *path, const char *text, size_t len,
                           kt_error *err)
{
	kt_s3_errdoc *d = ctx;
	(void)err;
	if (root_is(path, "Error"))
		d->is_error = 1;
	if (!strcmp(path, "Error/Code"))
		copy_printable(d->code, sizeof(d->code), text, len);
	else if (!strcmp(path, "Error/Message"))
		copy_printable(d->message, sizeof(d->message), text, len);
	return KT_OK;
}

kt_code kt_s3_parse_error(const char *xml, size_t n, kt_s3_errdoc *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	return kt_s3xml_parse(xml, n, on_error_el, out, err);
}

/* ---- InitiateMultipartUploadResult ------------------------------------ */

typedef struct initiate_ctx {
	char *id;
	int found;
} initiate_ctx;

static kt_code on_initiate_el(void *ctx, const char *path, const char *text, size_t len,
                              kt_error *err)
{
	initiate_ctx *c = ctx;
	if (strcmp(path, "InitiateMultipartUploadResult/UploadId"))
		return KT_OK;
	if (len == 0 || len >= 1024)
		return kt_error_set(err, KT_EPROTO, "the S3 server sent an upload id of %zu bytes", len);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch <= 0x20 || ch >= 0x7f)
			return kt_error_set(err, KT_EPROTO,
			                    "the S3 server sent an upload id with a non-printable byte");
	}
	memcpy(c->id, text, len);
	c->id[len] = '\0';
	c->found = 1;
	return KT_OK;
}

kt_code kt_s3_parse_initiate(const char *xml, size_t n, char upload_id[1024], kt_error *err)
{
	char tmp[1024];
	initiate_ctx c = { tmp, 0 };
	kt_code rc = kt_s3xml_parse(xml, n, on_initiate_el, &c, err);
	if (rc)
		return rc;
	if (!c.found)
		return kt_error_set(err, KT_EPROTO,
		                    "the S3 server's answer to CreateMultipartUpload has no UploadId");
	memcpy(upload_id, tmp, strlen(tmp) + 1);
	return KT_OK;
}

/* ---- CompleteMultipartUploadResult ------------------------------------ */

typedef struct complete_ctx {
	char etag[132];
	int found;
	kt_s3_errdoc *errdoc;
} complete_ctx;

static kt_code on_complete_el(void *ctx, const char *path, const char *text, size_t len,
                              kt_error *err)
{
	complete_ctx *c = ctx;
	if (root_is(path, "Error"))
		return on_error_el(c->errdoc, path, text, len, err);
	if (!strcmp(path, "CompleteMultipartUploadResult/ETag")) {
		char tmp[132];
		copy_printable(tmp, sizeof(tmp), text, len);
		kt_s3_etag_unquote(c->etag, sizeof(c->etag), tmp);
		c->found = 1;
	}
	return KT_OK;
}

kt_code kt_s3_parse_complete(const char *xml, size_t n, char etag[132], kt_s3_errdoc *errdoc,
                             kt_error *err)
{
	complete_ctx c;
	memset(&c, 0, sizeof(c));
	memset(errdoc, 0, sizeof(*errdoc));
	c.errdoc = errdoc;
	kt_code rc = kt_s3xml_parse(xml, n, on_complete_el, &c, err);
	if (rc)
		return rc;
	if (errdoc->is_error)
		return kt_error_set(err, KT_EREMOTE, "CompleteMultipartUpload failed: %s: %s",
		                    errdoc->code, errdoc->message);
	if (!c.found)
		return kt_error_set(err, KT_EPROTO,
		                    "the S3 server's answer to CompleteMultipartUpload has no ETag");
	memcpy(etag, c.etag, sizeof(c.etag));
	return KT_OK;
}

/* A decimal size of 1..20 digits that fits 64 bits into *out; 0 if not. */
static int parse_size(const char *text, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint64_t d = (uint64_t)(text[i] - '0');
		if (text[i] < '0' || text[i] > '9' || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return 1;
}

/* ---- ListBucketResult (ListObjectsV2) --------------------------------- */

typedef struct list_ctx {
	kt_s3_list_fn fn;
	void *ctx;
	kt_s3_list_page *page;
	char key[KT_S3_MAX_KEY + 1];
	char etag[132];
	char last_modified[64];
	uint64_t size;
	int have_key, have_size, bad_size;
} list_ctx;

static kt_code on_list_el(void *ctx, const char *path, const char *text, size_t len,
                          kt_error *err)
{
	list_ctx *c = ctx;
	if (!root_is(path, "ListBucketResult"))
		return kt_error_set(err, KT_EPROTO,
		                    "the S3 server answered ListObjectsV2 with a document that is not "
		                    "a ListBucketResult");
	if (!strcmp(path, "ListBucketResult/Contents/Key")) {
		if (len == 0 || len > KT_S3_MAX_KEY || memchr(text, '\0', len))
			return kt_error_set(err, KT_EPROTO,
			                    "the S3 server listed a key of %zu bytes (limit %d)", len,
			                    KT_S3_MAX_KEY);
		memcpy(c->key, text, len);
		c->key[len] = '\0';
		c->have_key = 1;
	} else if (!strcmp(path, "ListBucketResult/Contents/Size")) {
		c->bad_size = !parse_size(text, len, &c->size);
		c->have_size = 1;
	} else if (!strcmp(path, "ListBucketResult/Contents/ETag")) {
		char tmp[132];
		copy_printable(tmp, sizeof(tmp), text, len);
		kt_s3_etag_unquote(c->etag, sizeof(c->etag), tmp);
	} else if (!strcmp(path, "ListBucketResult/Contents/LastModified")) {
		copy_printable(c->last_modified, sizeof(c->last_modified), text, len);
	} else if (!strcmp(path, "ListBucketResult/Contents")) {
		if (!c->have_key || !c->have_size || c->bad_size)
			return kt_error_set(err, KT_EPROTO,
			                    "the S3 server listed an object without a key or a valid size");
		kt_s3_entry e = { c->key, c->size, c->etag, c->last_modified };
		c->page->n_entries++;
		kt_code rc = c->fn ? c->fn(c->ctx, &e, err) : KT_OK;
		c->have_key = c->have_size = c->bad_size = 0;
		c->etag[0] = c->last_modified[0] = '\0';
		c->size = 0;
		return rc;
	} else if (!strcmp(path, "ListBucketResult/IsTruncated")) {
		c->page->truncated = len == 4 && !memcmp(text, "true", 4);
	} else if (!strcmp(path, "ListBucketResult/NextContinuationToken")) {
		if (len >= sizeof(c->page->next_token) || memchr(text, '\0', len))
			return kt_error_set(err, KT_EPROTO, "the S3 server sent a continuation token of "
			                    "%zu bytes", len);
		memcpy(c->page->next_token, text, len);
		c->page->next_token[len] = '\0';
	}
	return KT_OK;
}

kt_code kt_s3_parse_list(const char *xml, size_t n, kt_s3_list_fn fn, void *ctx,
                         kt_s3_list_page *page, kt_error *err)
{
	list_ctx *c = kt_xcalloc(1, sizeof(*c));
	memset(page, 0, sizeof(*page));
	c->fn = fn;
	c->ctx = ctx;
	c->page = page;
	kt_code rc = kt_s3xml_parse(xml, n, on_list_el, c, err);
	free(c);
	if (!rc && page->truncated && !page->next_token[0])
		rc = kt_error_set(err, KT_EPROTO, "the S3 server said the listing is truncated but "
		                  "sent no continuation token");
	return rc;
}

/* ---- ListVersionsResult (ListObjectVersions) ------------------------- */

typedef struct versions_ctx {
	kt_s3_version_fn fn;
	void *ctx;
	kt_s3_versions_page *page;
	char key[KT_S3_MAX_KEY + 1];
	char version_id[1024];
	char etag[132];
	char last_modified[64];
	uint64_t size;
	int is_latest, have_key, have_version, bad_size;
} versions_ctx;

static kt_code on_versions_el(void *ctx, const char *path, const char *text, size_t len,
                              kt_error *err)
{
	versions_ctx *c = ctx;
	if (!root_is(path, "ListVersionsResult"))
		return kt_error_set(err, KT_EPROTO, "the S3 server answered ListObjectVersions with a "
		                    "document that is not a ListVersionsResult");
	const char *leaf = path + strlen("ListVersionsResult");
	int in_version = !strncmp(leaf, "/Version/", 9), in_marker = !strncmp(leaf, "/DeleteMarker/", 14);
	const char *field = in_version ? leaf + 9 : in_marker ? leaf + 14 : NULL;
	if (field && !strcmp(field, "Key")) {
		if (len == 0 || len > KT_S3_MAX_KEY || memchr(text, '\0', len))
			return kt_error_set(err, KT_EPROTO, "the S3 server listed a key of %zu bytes "
			                    "(limit %d)", len, KT_S3_MAX_KEY);
		memcpy(c->key, text, len);
		c->key[len] = '\0';
		c->have_key = 1;
	} else if (field && !strcmp(field, "VersionId")) {
		if (len == 0 || len >= sizeof(c->version_id) || memchr(text, '\0', len))
			return kt_error_set(err, KT_EPROTO, "the S3 server listed a version id of %zu "
			                    "bytes", len);
		copy_printable(c->version_id, sizeof(c->version_id), text, len);
		c->have_version = 1;
	} else if (field && !strcmp(field, "IsLatest")) {
		c->is_latest = len == 4 && !memcmp(text, "true", 4);
	} else if (field && !strcmp(field, "LastModified")) {
		copy_printable(c->last_modified, sizeof(c->last_modified), text, len);
	} else if (in_version && !strcmp(field, "ETag")) {
		char tmp[132];
		copy_printable(tmp, sizeof(tmp), text, len);
		kt_s3_etag_unquote(c->etag, sizeof(c->etag), tmp);
	} else if (in_version && !strcmp(field, "Size")) {
		c->bad_size = !parse_size(text, len, &c->size);
	} else if (!strcmp(leaf, "/Version") || !strcmp(leaf, "/DeleteMarker")) {
		if (!c->have_key || !c->have_version || c->bad_size)
			return kt_error_set(err, KT_EPROTO, "the S3 server listed a version without a "
			                    "key, a version id or a valid size");
		kt_s3_version v = { c->key, c->version_id, c->etag, c->last_modified, c->size,
		                    c->is_latest, leaf[1] == 'D' };
		c->page->n_entries++;
		kt_code rc = c->fn ? c->fn(c->ctx, &v, err) : KT_OK;
		c->have_key = c->have_version = c->bad_size = c->is_latest = 0;
		c->etag[0] = c->last_modified[0] = '\0';
		c->size = 0;
		return rc;
	} else if (!strcmp(leaf, "/IsTruncated")) {
		c->page->truncated = len == 4 && !memcmp(text, "true", 4);
	} else if (!strcmp(leaf, "/NextKeyMarker") || !strcmp(leaf, "/NextVersionIdMarker")) {
		char *dst = leaf[5] == 'K' ? c->page->next_key : c->page->next_version;
		size_t cap = leaf[5] == 'K' ? sizeof(c->page->next_key) : sizeof(c->page->next_version);
		if (len >= cap || memchr(text, '\0', len))
			return kt_error_set(err, KT_EPROTO, "the S3 server sent a listing marker of %zu "
			                    "bytes", len);
		memcpy(dst, text, len);
		dst[len] = '\0';
	}
	return KT_OK;
}

kt_code kt_s3_parse_versions(const char *xml, size_t n, kt_s3_version_fn fn, void *ctx,
                             kt_s3_versions_page *page, kt_error *err)
{
	versions_ctx *c = kt_xcalloc(1, sizeof(*c));
	memset(page, 0, sizeof(*page));
	c->fn = fn;
	c->ctx = ctx;
	c->page = page;
	kt_code rc = kt_s3xml_parse(xml, n, on_versions_el, c, err);
	free(c);
	if (!rc && page->truncated && !page->next_key[0])
		rc = kt_error_set(err, KT_EPROTO, "the S3 server said the version listing is "
		                  "truncated but sent no next key marker");
	return rc;
}

/* ---- ObjectLockConfiguration and Retention --------------------------- */

static kt_code parse_count(const char *what, const char *text, size_t len, unsigned *out,
                           kt_error *err)
{
	unsigned v = 0;
	if (len == 0 || len > 6)
		return kt_error_set(err, KT_EPROTO, "the S3 server sent a bad %s", what);
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return kt_error_set(err, KT_EPROTO, "the S3 server sent a bad %s", what);
		v = v * 10 + (unsigned)(text[i] - '0');
	}
	*out = v;
	return KT_OK;
}

static kt_code on_lock_el(void *ctx, const char *path, const char *text, size_t len,
                          kt_error *err)
{
	kt_s3_lock_config *c = ctx;
	if (!root_is(path, "ObjectLockConfiguration"))
		return kt_error_set(err, KT_EPROTO, "the S3 server answered GetObjectLockConfiguration "
		                    "with a document that is not an ObjectLockConfiguration");
	const char *leaf = path + strlen("ObjectLockConfiguration");
	if (!strcmp(leaf, "/ObjectLockEnabled"))
		c->enabled = len == 7 && !memcmp(text, "Enabled", 7);
	else if (!strcmp(leaf, "/Rule/DefaultRetention/Mode"))
		copy_printable(c->mode, sizeof(c->mode), text, len);
	else if (!strcmp(leaf, "/Rule/DefaultRetention/Days"))
		return parse_count("default retention period", text, len, &c->days, err);
	else if (!strcmp(leaf, "/Rule/DefaultRetention/Years"))
		return parse_count("default retention period", text, len, &c->years, err);
	return KT_OK;
}

kt_code kt_s3_parse_lock_config(const char *xml, size_t n, kt_s3_lock_config *out,
                                kt_error *err)
{
	memset(out, 0, sizeof(*out));
	kt_code rc = kt_s3xml_parse(xml, n, on_lock_el, out, err);
	if (!rc && out->mode[0] && strcmp(out->mode, "GOVERNANCE") && strcmp(out->mode, "COMPLIANCE"))
		rc = kt_error_set(err, KT_EPROTO, "the S3 server sent an unknown Object Lock mode "
		                  "'%s'", out->mode);
	return rc;
}

static kt_code on_retention_el(void *ctx, const char *path, const char *text, size_t len,
                               kt_error *err)
{
	kt_s3_retention *r = ctx;
	if (!root_is(path, "Retention"))
		return kt_error_set(err, KT_EPROTO, "the S3 server answered GetObjectRetention with a "
		                    "document that is not a Retention");
	if (!strcmp(path, "Retention/Mode"))
		copy_printable(r->mode, sizeof(r->mode), text, len);
	else if (!strcmp(path, "Retention/RetainUntilDate"))
		copy_printable(r->retain_until, sizeof(r->retain_until), text, len);
	return KT_OK;
}

kt_code kt_s3_parse_retention(const char *xml, size_t n, kt_s3_retention *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	return kt_s3xml_parse(xml, n, on_retention_el, out, err);
}
