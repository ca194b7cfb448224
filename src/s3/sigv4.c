/*
 * sigv4.c - AWS Signature Version 4 for S3.
 *
 * Owns URI encoding (RFC 3986 unreserved set, uppercase hex), the canonical
 * query, the canonical request, the string to sign and the signing key
 * (HMAC-SHA256 chain date -> region -> service -> "aws4_request").
 * Invariants:
 *   1. The secret key is only ever an HMAC key: it is never copied into a
 *      buffer that leaves this file; only the final signature does.
 *   2. Headers are signed sorted by name; all headers passed are signed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "s3_int.h"

#define MAX_SIGNED_HEADERS 32

kt_code kt_s3_uri_encode(kt_buf *out, const char *s, int keep_slash, kt_error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		kt_code rc;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
			rc = kt_buf_add(out, p, 1, err);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			rc = kt_buf_add(out, e, 3, err);
		}
		if (rc)
			return rc;
	}
	return KT_OK;
}

void kt_s3_sha256_hex(char out[65], const void *data, size_t n)
{
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256(data, n, md);
	kt_hex(out, md, sizeof(md));
}

void kt_sigv4_amz_date(char out[17], int64_t unix_seconds)
{
	struct tm tm;
	time_t t = (time_t)unix_seconds;
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

typedef struct qpair {
	char *name;
	char *value;
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
	const qpair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

kt_code kt_s3_query(kt_buf *out, const char *const *names, const char *const *values, size_t n,
                    kt_error *err)
{
	kt_code rc = KT_OK;
	qpair *q = kt_xcalloc(n ? n : 1, sizeof(*q));
	size_t built = 0;
	for (; built < n && !rc; built++) {
		kt_buf b;
		kt_buf_init(&b, 4096);
		rc = kt_s3_uri_encode(&b, names[built], 0, err);
		q[built].name = kt_buf_detach(&b, NULL);
		kt_buf_init(&b, 4096);
		if (!rc)
			rc = kt_s3_uri_encode(&b, values[built] ? values[built] : "", 0, err);
		q[built].value = kt_buf_detach(&b, NULL);
	}
	if (!rc) {
		qsort(q, n, sizeof(*q), qpair_cmp);
		kt_buf_reset(out);
		for (size_t i = 0; i < n && !rc; i++)
			rc = kt_buf_addf(out, err, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value);
	}
	for (size_t i = 0; i < built; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
	return rc;
}

static int header_cmp(const void *a, const void *b)
{
	const kt_sigv4_header *x = *(const kt_sigv4_header *const *)a;
	const kt_sigv4_header *y = *(const kt_sigv4_header *const *)b;
	return strcmp(x->name, y->name);
}

static int hmac(uint8_t out[32], const void *key, size_t key_len, const char *data, size_t n)
{
	unsigned int len = 32;
	return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, n, out, &len) != NULL;
}

/* Append value with leading/trailing blanks trimmed and inner runs of
 * blanks collapsed to one space (the canonical header value). */
static kt_code add_trimmed(kt_buf *b, const char *v, kt_error *err)
{
	while (*v == ' ' || *v == '\t')
		v++;
	int pending_space = 0;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			pending_space = 1;
			continue;
		}
		if (pending_space && kt_buf_add(b, " ", 1, err))
			return err ? err->code : KT_ELIMIT;
		pending_space = 0;
		if (kt_buf_add(b, v, 1, err))
			return err ? err->code : KT_ELIMIT;
	}
	return KT_OK;
}

kt_code kt_sigv4_sign(const kt_sigv4_req *r, kt_buf *auth, kt_buf *canonical,
                      kt_buf *string_to_sign, kt_error *err)
{
	const kt_sigv4_header *sorted[MAX_SIGNED_HEADERS];
	kt_buf creq, sts, signed_names, secret;
	kt_code rc = KT_OK;
	char date[9];
	uint8_t k[32], md[SHA256_DIGEST_LENGTH];
	char creq_hex[65], sig_hex[65];

	if (r->n_headers > MAX_SIGNED_HEADERS)
		return kt_error_set(err, KT_ELIMIT, "cannot sign more than %d headers",
		                    MAX_SIGNED_HEADERS);
	if (strlen(r->amz_date) != 16)
		return kt_error_set(err, KT_EUSAGE, "bad x-amz-date '%s'", r->amz_date);
	for (size_t i = 0; i < r->n_headers; i++)
		sorted[i] = &r->headers[i];
	qsort(sorted, r->n_headers, sizeof(sorted[0]), header_cmp);

	kt_buf_init(&creq, 64u << 10);
	kt_buf_init(&sts, 4096);
	kt_buf_init(&signed_names, 4096);
	kt_buf_init(&secret, 1024);

	for (size_t i = 0; i < r->n_headers && !rc; i++)
		rc = kt_buf_addf(&signed_names, err, "%s%s", i ? ";" : "", sorted[i]->name);
	if (!rc)
		rc = kt_buf_addf(&creq, err, "%s\n%s\n%s\n", r->method, r->canonical_uri,
		                 r->canonical_query ? r->canonical_query : "");
	for (size_t i = 0; i < r->n_headers && !rc; i++) {
		rc = kt_buf_addf(&creq, err, "%s:", sorted[i]->name);
		if (!rc)
			rc = add_trimmed(&creq, sorted[i]->value, err);
		if (!rc)
			rc = kt_buf_add(&creq, "\n", 1, err);
	}
	if (!rc)
		rc = kt_buf_addf(&creq, err, "\n%s\n%s", signed_names.data, r->payload_hash);
	if (rc)
		goto out;

	kt_s3_sha256_hex(creq_hex, creq.data, creq.len);
	memcpy(date, r->amz_date, 8);
	date[8] = '\0';
	rc = kt_buf_addf(&sts, err, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", r->amz_date,
	                 date, r->region, r->service, creq_hex);
	if (rc)
		goto out;

	/* Signing key: the secret only ever goes into the first HMAC. */
	rc = kt_buf_addf(&secret, err, "AWS4%s", r->secret_key);
	if (rc)
		goto out;
	if (!hmac(k, secret.data, secret.len, date, 8) ||
	    !hmac(k, k, 32, r->region, strlen(r->region)) ||
	    !hmac(k, k, 32, r->service, strlen(r->service)) ||
	    !hmac(k, k, 32, "aws4_request", 12) ||
	    !hmac(md, k, 32, sts.data, sts.len)) {
		rc = kt_error_set(err, KT_ENOMEM, "cannot compute HMAC-SHA256 (OpenSSL failed)");
		goto out;
	}
	kt_hex(sig_hex, md, sizeof(md));
	kt_buf_reset(auth);
	rc = kt_buf_addf(auth, err,
	                 "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
	                 "Signature=%s", r->access_key, date, r->region, r->service,
	                 signed_names.data, sig_hex);
	if (!rc && canonical) {
		kt_buf_reset(canonical);
		rc = kt_buf_add(canonical, creq.data, creq.len, err);
	}
	if (!rc && string_to_sign) {
		kt_buf_reset(string_to_sign);
		rc = kt_buf_add(string_to_sign, sts.data, sts.len, err);
	}
out:
	/* Wipe the copy of the secret before freeing it. */
	if (secret.len)
		OPENSSL_cleanse(secret.data, secret.len);
	OPENSSL_cleanse(k, sizeof(k));
	kt_buf_release(&secret);
	kt_buf_release(&creq);
	kt_buf_release(&sts);
	kt_buf_release(&signed_names);
	return rc;
}
