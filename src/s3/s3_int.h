/*
 * s3_int.h - pieces of src/s3 exposed to its own files, the unit tests and
 * the fuzzer; other modules never include it.
 *
 * sigv4.c: URI encoding, canonical request, string to sign, signing key.
 * xml.c:   a small bounded XML reader and the response parsers.
 */
#ifndef KT_S3_INT_H
#define KT_S3_INT_H

#include "s3.h"

/* ---- SigV4 ---------------------------------------------------------- */

/* Append s URI-encoded the AWS way: every byte except A-Za-z0-9 -._~ as %XX
 * (uppercase); '/' kept when keep_slash (object key paths). */
kt_code kt_s3_uri_encode(kt_buf *out, const char *s, int keep_slash, kt_error *err);

/* A header to sign: name lowercase, value already trimmed. */
typedef struct kt_sigv4_header {
	const char *name;
	const char *value;
} kt_sigv4_header;

typedef struct kt_sigv4_req {
	const char *method;
	const char *canonical_uri;   /* already encoded, e.g. "/bucket/a%20b" */
	const char *canonical_query; /* already encoded and sorted, "" if none */
	const kt_sigv4_header *headers; /* n_headers, any order, names lowercase */
	size_t n_headers;
	const char *payload_hash;    /* lowercase hex SHA-256 of the body */
	const char *amz_date;        /* "YYYYMMDDTHHMMSSZ" */
	const char *region;
	const char *service;         /* "s3" */
	const char *access_key;
	const char *secret_key;
} kt_sigv4_req;

/*
 * Compute the Authorization header value into auth (reset first).  When
 * canonical/string_to_sign are non-NULL they receive those texts (tests).
 * KT_ELIMIT if more than 32 headers; KT_ENOMEM from OpenSSL.
 */
kt_code kt_sigv4_sign(const kt_sigv4_req *r, kt_buf *auth, kt_buf *canonical,
                      kt_buf *string_to_sign, kt_error *err);

/* "YYYYMMDDTHHMMSSZ" of t (UTC) into out[17]. */
void kt_sigv4_amz_date(char out[17], int64_t unix_seconds);

/* Lowercase hex SHA-256 of n bytes into out[65]. */
void kt_s3_sha256_hex(char out[65], const void *data, size_t n);

/* Build a canonical query from n name=value pairs (values may be NULL for
 * "name="): encoded, sorted by name then value, joined with '&'. */
kt_code kt_s3_query(kt_buf *out, const char *const *names, const char *const *values, size_t n,
                    kt_error *err);

/* ---- URL building (client.c) ----------------------------------------- */

typedef struct kt_s3_url {
	char url[4096];   /* full URL for libcurl */
	char host[512];   /* Host header value (no default port) */
	char path[3200];  /* canonical URI, encoded */
} kt_s3_url;

/* Build the URL of KEY (NULL/"" = the bucket itself) with query (encoded,
 * may be ""), in the style in use.  KT_ELIMIT if it does not fit. */
kt_code kt_s3_build_url(const kt_s3 *s, const char *key, const char *query, kt_s3_url *out,
                        kt_error *err);

/* ---- XML ------------------------------------------------------------ */

#define KT_S3XML_MAX_DEPTH 16
#define KT_S3XML_MAX_TEXT 4096   /* decoded character data of one element */
#define KT_S3XML_MAX_PATH 512    /* "A/B/C" element path */
#define KT_S3XML_MAX_INPUT (16u << 20)

/*
 * Called when an element closes: path is "Root/Child/Leaf" (namespace
 * prefixes stripped), text its own decoded character data (entities and
 * CDATA resolved; NUL-terminated, len bytes; may contain any byte but NUL).
 * Return non-OK to stop.
 */
typedef kt_code (*kt_s3xml_fn)(void *ctx, const char *path, const char *text, size_t len,
                               kt_error *err);

/* Parse a whole document.  KT_EPROTO for malformed XML, DOCTYPE/entity
 * declarations, unknown entities, mismatched tags; KT_ELIMIT past the
 * limits above. */
kt_code kt_s3xml_parse(const char *xml, size_t n, kt_s3xml_fn fn, void *ctx, kt_error *err);

/* <Error><Code>..</Code><Message>..</Message></Error>: fields printable
 * (control bytes replaced), truncated to fit.  is_error is 0 when the root
 * element is not Error. */
typedef struct kt_s3_errdoc {
	int is_error;
	char code[64];
	char message[256];
} kt_s3_errdoc;
kt_code kt_s3_parse_error(const char *xml, size_t n, kt_s3_errdoc *out, kt_error *err);

/* InitiateMultipartUploadResult/UploadId (1..1023 printable bytes). */
kt_code kt_s3_parse_initiate(const char *xml, size_t n, char upload_id[1024], kt_error *err);

/* CompleteMultipartUploadResult/ETag; an <Error> root (S3 may send one with
 * status 200) fills errdoc and returns KT_EREMOTE. */
kt_code kt_s3_parse_complete(const char *xml, size_t n, char etag[132], kt_s3_errdoc *errdoc,
                             kt_error *err);

/* One page of ListObjectsV2: fn for each Contents, then truncated/next token. */
typedef struct kt_s3_list_page {
	int truncated;
	char next_token[1024];
	uint64_t n_entries;
} kt_s3_list_page;
kt_code kt_s3_parse_list(const char *xml, size_t n, kt_s3_list_fn fn, void *ctx,
                         kt_s3_list_page *page, kt_error *err);

/* One page of ListObjectVersions: fn for each Version and DeleteMarker. */
typedef struct kt_s3_versions_page {
	int truncated;
	char next_key[KT_S3_MAX_KEY + 1];
	char next_version[1024];
	uint64_t n_entries;
} kt_s3_versions_page;
kt_code kt_s3_parse_versions(const char *xml, size_t n, kt_s3_version_fn fn, void *ctx,
                             kt_s3_versions_page *page, kt_error *err);
/* ObjectLockConfiguration (mode checked) and Retention documents. */
kt_code kt_s3_parse_lock_config(const char *xml, size_t n, kt_s3_lock_config *out,
                                kt_error *err);
kt_code kt_s3_parse_retention(const char *xml, size_t n, kt_s3_retention *out, kt_error *err);

/* Map a non-2xx answer (status and parsed error document, d may be NULL)
 * of operation op ("upload", ...) on key (NULL = the bucket) to a code and a
 * message naming the bucket and endpoint (never the secret).  Returns the
 * code; err->status = status. */
kt_code kt_s3_map_failure(const kt_s3 *s, const char *op, const char *key, long status,
                          const kt_s3_errdoc *d, kt_error *err);

/* Strip surrounding quotes of an ETag into out (bounded). */
void kt_s3_etag_unquote(char *out, size_t outlen, const char *in);

#endif /* KT_S3_INT_H */
