/*
 * fuzz_s3xml.c - libFuzzer target for the S3 XML reader and the response
 * parsers (src/s3/xml.c): ListObjectsV2 result, Error, Initiate- and
 * CompleteMultipartUpload results, ListObjectVersions, Object Lock
 * configuration and object retention.
 *
 * Every parser sees the whole input.  Properties checked: listed keys are
 * non-empty NUL-free strings within KT_S3_MAX_KEY, a truncated page always
 * has a continuation token, error fields and upload ids are printable and
 * bounded, and the generic reader hands out paths and texts within limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n >= max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static kt_code on_entry(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	(void)err;
	size_t n = strlen(e->key);
	if (n == 0 || n > KT_S3_MAX_KEY)
		abort();
	printable(e->etag, 132);
	printable(e->last_modified, 64);
	(*(uint64_t *)ctx)++;
	return KT_OK;
}

static kt_code on_version(void *ctx, const kt_s3_version *v, kt_error *err)
{
	(void)err;
	size_t n = strlen(v->key);
	if (n == 0 || n > KT_S3_MAX_KEY || !v->version_id[0])
		abort();
	printable(v->version_id, 1024);
	printable(v->etag, 132);
	printable(v->last_modified, 64);
	if (v->delete_marker && v->size)
		abort();
	(*(uint64_t *)ctx)++;
	return KT_OK;
}

static kt_code on_el(void *ctx, const char *path, const char *text, size_t len, kt_error *err)
{
	(void)ctx;
	(void)err;
	if (strlen(path) > KT_S3XML_MAX_PATH || len > KT_S3XML_MAX_TEXT || text[len] != '\0' ||
	    strlen(text) != len)
		abort();
	return KT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml = (const char *)data;
	kt_error err;
	uint64_t n = 0;
	kt_s3_list_page page;
	kt_s3_errdoc d;
	char id[1024], etag[132];

	kt_s3xml_parse(xml, size, on_el, NULL, &err);
	if (kt_s3_parse_list(xml, size, on_entry, &n, &page, &err) == KT_OK) {
		if (n != page.n_entries)
			abort();
		if (page.truncated && !page.next_token[0])
			abort();
	}
	if (kt_s3_parse_error(xml, size, &d, &err) == KT_OK) {
		printable(d.code, sizeof(d.code));
		printable(d.message, sizeof(d.message));
	}
	if (kt_s3_parse_initiate(xml, size, id, &err) == KT_OK) {
		printable(id, sizeof(id));
		if (!id[0] || strchr(id, ' '))
			abort();
	}
	n = 0;
	kt_s3_versions_page vp;
	if (kt_s3_parse_versions(xml, size, on_version, &n, &vp, &err) == KT_OK) {
		if (n != vp.n_entries || (vp.truncated && !vp.next_key[0]))
			abort();
	}
	kt_s3_lock_config lc;
	if (kt_s3_parse_lock_config(xml, size, &lc, &err) == KT_OK) {
		printable(lc.mode, sizeof(lc.mode));
		if (lc.mode[0] && strcmp(lc.mode, "GOVERNANCE") && strcmp(lc.mode, "COMPLIANCE"))
			abort();
	}
	kt_s3_retention rt;
	if (kt_s3_parse_retention(xml, size, &rt, &err) == KT_OK) {
		printable(rt.mode, sizeof(rt.mode));
		printable(rt.retain_until, sizeof(rt.retain_until));
	}
	kt_code rc = kt_s3_parse_complete(xml, size, etag, &d, &err);
	if (rc == KT_OK)
		printable(etag, sizeof(etag));
	else if (rc == KT_EREMOTE && !d.is_error)
		abort();
	return 0;
}
