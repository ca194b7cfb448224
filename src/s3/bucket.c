/*
 * bucket.c - bucket-level operations of the S3 client: create a bucket
 * (optionally with Object Lock), list objects (ListObjectsV2), read and set
 * its default retention, list object versions and delete one version, read
 * an object's retention.
 *
 * Object Lock in one paragraph (what the repository and exports rely on):
 * a bucket created with Object Lock is versioned; a DELETE without a
 * version id only adds a delete marker (the data version stays), and a
 * version under retention cannot be deleted or overwritten until its
 * retain-until date (COMPLIANCE: by nobody; GOVERNANCE: only with the
 * bypass permission, which we never ask for).  Writers that never rewrite a
 * key therefore work unchanged on such buckets; space comes back only when
 * retention ends and a lifecycle rule expires non-current versions.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "s3_int.h"
#include "s3_call.h"

kt_code kt_s3_create_bucket(kt_s3 *s, const kt_s3_bucket_opts *opts, kt_error *err)
{
	kt_buf body;
	char hash[65];
	kt_buf_init(&body, 4096);
	if (strcmp(s->region, "us-east-1"))
		kt_buf_addf(&body, NULL, "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/"
		            "doc/2006-03-01/\"><LocationConstraint>%s</LocationConstraint>"
		            "</CreateBucketConfiguration>", s->region);
	kt_s3_sha256_hex(hash, body.data, body.len);
	kt_sigv4_header lock = { "x-amz-bucket-object-lock-enabled", "true" };
	kt_s3_call call = {
		.op = "create", .method = "PUT", .key = NULL, .query = "", .payload_hash = hash,
		.body_mem = body.data, .body_fd = -1, .body_len = body.len,
		.extra = &lock, .n_extra = opts && opts->object_lock ? 1 : 0,
	};
	kt_s3_result res;
	kt_code rc = kt_s3_run(s, s->h, &call, &res, err);
	kt_s3_object_info_release(&res.info);
	kt_buf_release(&body);
	return rc;
}

kt_code kt_s3_list(kt_s3 *s, const char *prefix, unsigned page_size, kt_s3_list_fn fn,
                   void *ctx, uint64_t *n_out, kt_error *err)
{
	kt_buf body, query;
	kt_code rc = KT_OK;
	char token[1024] = "", max_keys[16];
	uint64_t total = 0;

	if (page_size == 0 || page_size > 1000)
		page_size = 1000;
	snprintf(max_keys, sizeof(max_keys), "%u", page_size);
	kt_buf_init(&body, KT_S3_XML_BODY_MAX);
	kt_buf_init(&query, 8192);
	for (;;) {
		const char *names[4] = { "list-type", "max-keys", NULL, NULL };
		const char *values[4] = { "2", max_keys, NULL, NULL };
		size_t nq = 2;
		if (prefix && *prefix) {
			names[nq] = "prefix";
			values[nq++] = prefix;
		}
		if (token[0]) {
			names[nq] = "continuation-token";
			values[nq++] = token;
		}
		rc = kt_s3_query(&query, names, values, nq, err);
		if (rc)
			break;
		kt_s3_call call = {
			.op = "list", .method = "GET", .key = NULL, .query = query.data,
			.payload_hash = KT_S3_EMPTY_SHA256, .collect = &body,
		};
		kt_s3_result res;
		rc = kt_s3_run(s, s->h, &call, &res, err);
		kt_s3_object_info_release(&res.info);
		if (rc)
			break;
		kt_s3_list_page page;
		rc = kt_s3_parse_list(body.data, body.len, fn, ctx, &page, err);
		total += page.n_entries;
		if (rc || !page.truncated)
			break;
		if (!strcmp(page.next_token, token)) {
			rc = kt_error_set(err, KT_EPROTO, "the S3 server at %s repeated a continuation "
			                  "token while listing bucket '%s'", s->origin, s->bucket);
			break;
		}
		memcpy(token, page.next_token, sizeof(token));
	}
	kt_buf_release(&body);
	kt_buf_release(&query);
	if (n_out)
		*n_out = total;
	return rc;
}

/* A bucket-level GET of ?name (and more query), its XML body into out. */
static kt_code get_xml(kt_s3 *s, const char *op, const char *key, const char *query,
                       kt_buf *out, long *status, kt_error *err)
{
	kt_s3_call call = {
		.op = op, .method = "GET", .key = key, .query = query,
		.payload_hash = KT_S3_EMPTY_SHA256, .collect = out,
	};
	kt_s3_result res;
	kt_code rc = kt_s3_run(s, s->h, &call, &res, err);
	kt_s3_object_info_release(&res.info);
	*status = res.status;
	return rc;
}

kt_code kt_s3_get_object_lock(kt_s3 *s, kt_s3_lock_config *out, kt_error *err)
{
	kt_buf body;
	long status = 0;
	kt_error e;
	kt_error_clear(&e);
	memset(out, 0, sizeof(*out));
	kt_buf_init(&body, 64u << 10);
	kt_code rc = get_xml(s, "reading the Object Lock configuration", NULL, "object-lock=",
	                     &body, &status, &e);
	if (!rc)
		rc = kt_s3_parse_lock_config(body.data, body.len, out, &e);
	else if (rc == KT_ENOTFOUND && strstr(e.msg, KT_S3_NO_LOCK))
		rc = KT_OK; /* ObjectLockConfigurationNotFoundError: a bucket without the lock */
	kt_buf_release(&body);
	if (rc && err)
		*err = e;
	return rc;
}

kt_code kt_s3_put_object_lock(kt_s3 *s, const kt_s3_lock_config *cfg, kt_error *err)
{
	if (cfg->mode[0] && strcmp(cfg->mode, "GOVERNANCE") && strcmp(cfg->mode, "COMPLIANCE"))
		return kt_error_set(err, KT_EUSAGE, "Object Lock mode must be GOVERNANCE or "
		                    "COMPLIANCE, not '%s'", cfg->mode);
	if (cfg->mode[0] && !cfg->days == !cfg->years)
		return kt_error_set(err, KT_EUSAGE, "a default retention needs days or years (one "
		                    "of them, not zero)");
	kt_buf body;
	kt_buf_init(&body, 4096);
	kt_buf_addf(&body, NULL, "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
	            "2006-03-01/\"><ObjectLockEnabled>Enabled</ObjectLockEnabled>");
	if (cfg->mode[0])
		kt_buf_addf(&body, NULL, "<Rule><DefaultRetention><Mode>%s</Mode><%s>%u</%s>"
		            "</DefaultRetention></Rule>", cfg->mode, cfg->days ? "Days" : "Years",
		            cfg->days ? cfg->days : cfg->years, cfg->days ? "Days" : "Years");
	kt_buf_addf(&body, NULL, "</ObjectLockConfiguration>");

	/* S3 requires Content-MD5 on this request. */
	unsigned char md5[16];
	char md5_b64[32], hash[65];
	unsigned n_md5 = 0;
	if (!EVP_Digest(body.data, body.len, md5, &n_md5, EVP_md5(), NULL)) {
		kt_buf_release(&body);
		return kt_error_set(err, KT_ENOMEM, "cannot compute MD5 (OpenSSL failed)");
	}
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, 16);
	kt_s3_sha256_hex(hash, body.data, body.len);
	kt_sigv4_header h = { "content-md5", md5_b64 };
	kt_s3_call call = {
		.op = "setting the Object Lock configuration", .method = "PUT", .key = NULL,
		.query = "object-lock=", .payload_hash = hash, .body_mem = body.data, .body_fd = -1,
		.body_len = body.len, .extra = &h, .n_extra = 1,
	};
	kt_s3_result res;
	kt_code rc = kt_s3_run(s, s->h, &call, &res, err);
	kt_s3_object_info_release(&res.info);
	kt_buf_release(&body);
	return rc;
}

kt_code kt_s3_list_versions(kt_s3 *s, const char *prefix, kt_s3_version_fn fn, void *ctx,
                            uint64_t *n_out, kt_error *err)
{
	kt_buf body, query;
	kt_code rc = KT_OK;
	uint64_t total = 0;
	kt_s3_versions_page *page = kt_xcalloc(1, sizeof(*page));
	char *key_marker = kt_xcalloc(1, sizeof(page->next_key));
	char *version_marker = kt_xcalloc(1, sizeof(page->next_version));
	kt_buf_init(&body, KT_S3_XML_BODY_MAX);
	kt_buf_init(&query, 8192);
	for (;;) {
		const char *names[5] = { "versions", "max-keys" }, *values[5] = { NULL, "1000" };
		size_t nq = 2;
		if (prefix && *prefix) {
			names[nq] = "prefix";
			values[nq++] = prefix;
		}
		if (key_marker[0]) {
			names[nq] = "key-marker";
			values[nq++] = key_marker;
			if (version_marker[0]) {
				names[nq] = "version-id-marker";
				values[nq++] = version_marker;
			}
		}
		if ((rc = kt_s3_query(&query, names, values, nq, err)))
			break;
		long status;
		kt_buf_reset(&body);
		if ((rc = get_xml(s, "listing versions", NULL, query.data, &body, &status, err)))
			break;
		rc = kt_s3_parse_versions(body.data, body.len, fn, ctx, page, err);
		total += page->n_entries;
		if (rc || !page->truncated)
			break;
		if (!strcmp(page->next_key, key_marker) &&
		    !strcmp(page->next_version, version_marker)) {
			rc = kt_error_set(err, KT_EPROTO, "the S3 server at %s repeated a marker while "
			                  "listing the versions in bucket '%s'", s->origin, s->bucket);
			break;
		}
		memcpy(key_marker, page->next_key, sizeof(page->next_key));
		memcpy(version_marker, page->next_version, sizeof(page->next_version));
	}
	kt_buf_release(&body);
	kt_buf_release(&query);
	free(page);
	free(key_marker);
	free(version_marker);
	if (n_out)
		*n_out = total;
	return rc;
}

kt_code kt_s3_delete_version(kt_s3 *s, const char *key, const char *version_id,
                             kt_error *err)
{
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	if (!version_id || !*version_id)
		return kt_error_set(err, KT_EUSAGE, "deleting a version of '%.200s' needs its "
		                    "version id", key);
	kt_buf query;
	kt_buf_init(&query, 4096);
	const char *names[1] = { "versionId" }, *values[1] = { version_id };
	if (!(rc = kt_s3_query(&query, names, values, 1, err))) {
		kt_s3_call call = {
			.op = "deleting a version", .method = "DELETE", .key = key, .query = query.data,
			.payload_hash = KT_S3_EMPTY_SHA256,
		};
		kt_s3_result res;
		rc = kt_s3_run(s, s->h, &call, &res, err);
		kt_s3_object_info_release(&res.info);
	}
	kt_buf_release(&query);
	return rc;
}

kt_code kt_s3_get_retention(kt_s3 *s, const char *key, const char *version_id,
                            kt_s3_retention *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	kt_buf body, query;
	kt_buf_init(&body, 64u << 10);
	kt_buf_init(&query, 4096);
	const char *names[2] = { "retention", "versionId" }, *values[2] = { NULL, version_id };
	long status = 0;
	kt_error e;
	kt_error_clear(&e);
	if (!(rc = kt_s3_query(&query, names, values, version_id ? 2 : 1, &e)))
		rc = get_xml(s, "reading the retention", key, query.data, &body, &status, &e);
	if (!rc)
		rc = kt_s3_parse_retention(body.data, body.len, out, &e);
	else if (rc == KT_ENOTFOUND && strstr(e.msg, KT_S3_NO_LOCK))
		rc = KT_OK; /* NoSuchObjectLockConfiguration: the version has no retention */
	kt_buf_release(&body);
	kt_buf_release(&query);
	if (rc && err)
		*err = e;
	return rc;
}
