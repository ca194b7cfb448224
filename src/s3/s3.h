/*
 * s3.h - an S3 client (the subset kontinuity needs) on top of kt_http.
 *
 * Owns: AWS Signature Version 4 signing, path-style and virtual-hosted-style
 * URLs, single PUT streamed from a file descriptor, multipart upload with
 * parts in parallel (each worker has its own kt_http handle), HEAD, GET to a
 * callback (whole or a byte range), conditional PUT (If-None-Match: *),
 * ListObjectsV2 with pagination, DELETE, bucket creation, retries
 * with exponential backoff and jitter, and the mapping of S3 error documents
 * to kt_code.  See docs/s3-client.md.
 *
 * Invariants:
 *   1. The secret key is registered with kt_log_add_secret by kt_s3_new and
 *      never appears in an error message, a URL or a log line; only the
 *      derived signature travels (in the Authorization header).
 *   2. Every request body is signed with its real SHA-256 (never
 *      UNSIGNED-PAYLOAD); uploads read the file twice through pread (hash,
 *      then send), so memory stays bounded whatever the file size, and a
 *      retry re-sends from the file.
 *   3. Retries happen only on KT_ETRANSIENT (connection failures, timeouts,
 *      5xx, 429/SlowDown, RequestTimeout), at most max_attempts times; never
 *      on another 4xx.
 *   4. A multipart upload either completes or is aborted
 *      (AbortMultipartUpload, best effort even after a cancel): it is never
 *      reported as success unless CompleteMultipartUpload succeeded.
 *   5. Every response body we parse is buffered with a size ceiling; the XML
 *      parser is bounded in depth and text length (s3_int.h).
 *   6. A kt_s3 is used by one thread at a time (it creates its own worker
 *      threads inside kt_s3_put).
 */
#ifndef KT_S3_H
#define KT_S3_H

#include <signal.h>
#include "../core/core.h"
#include "../http/http.h"

typedef enum kt_s3_style {
	KT_S3_STYLE_AUTO = 0,    /* path if the endpoint host is an IP, localhost or
	                            has a port; else virtual-hosted */
	KT_S3_STYLE_PATH = 1,    /* http://host/bucket/key */
	KT_S3_STYLE_VIRTUAL = 2, /* http://bucket.host/key */
} kt_s3_style;

#define KT_S3_DEFAULT_PART_SIZE (16ull << 20)
#define KT_S3_MIN_PART_SIZE (5ull << 20)
#define KT_S3_MAX_PART_SIZE (5ull << 30)
#define KT_S3_MAX_PARTS 10000u
#define KT_S3_MAX_THREADS 8
#define KT_S3_MAX_KEY 1024     /* bytes, as S3 */

typedef struct kt_s3_config {
	const char *endpoint;   /* "http(s)://host[:port]" (no path, no user:pass@) */
	const char *region;     /* "us-east-1" if NULL/empty */
	const char *bucket;     /* required */
	const char *access_key; /* required */
	const char *secret_key; /* required; registered as a log secret */
	const char *cacert;     /* PEM CA bundle for https, or NULL (system store) */
	kt_s3_style style;
	int64_t connect_timeout_ms; /* 0 = kt_http default (10 s) */
	int64_t timeout_ms;         /* per request; 0 = none (stall_timeout guards) */
	int64_t stall_timeout_ms;   /* 0 = 60 s; fail a request moving no byte that long */
	int max_attempts;           /* per request, first try included; 0 = 5 */
	int64_t retry_base_ms;      /* first backoff; 0 = 200 ms */
	int64_t retry_max_ms;       /* backoff ceiling; 0 = 10 s */
	uint64_t part_size;         /* multipart part size; 0 = 16 MiB; min 5 MiB */
	uint64_t multipart_threshold; /* files larger than this go multipart; 0 = part_size */
	int n_threads;              /* part upload workers; 0 = 4; 1..KT_S3_MAX_THREADS */
	volatile sig_atomic_t *cancel; /* non-zero: stop with KT_ECANCELED */
} kt_s3_config;

typedef struct kt_s3 kt_s3;

/* One x-amz-meta-NAME: VALUE pair (NAME lowercase ASCII, VALUE printable ASCII). */
typedef struct kt_s3_meta {
	char *name;
	char *value;
} kt_s3_meta;

/* What HEAD (and GET) report about an object.  Release with
 * kt_s3_object_info_release. */
typedef struct kt_s3_object_info {
	uint64_t size;
	char etag[132];           /* without the quotes; "hex-N" for multipart */
	char last_modified[64];   /* as the server sent it (HTTP date) */
	kt_s3_meta *meta;         /* n_meta entries, names without "x-amz-meta-" */
	size_t n_meta;
} kt_s3_object_info;

void kt_s3_object_info_release(kt_s3_object_info *info);
/* The value of metadata NAME (lowercase, without prefix) or NULL; borrowed. */
const char *kt_s3_object_meta(const kt_s3_object_info *info, const char *name);

/*
 * Check cfg, copy it and create the control connection.  Registers the
 * secret key with kt_log_add_secret.  KT_EUSAGE for a missing field or a
 * bad endpoint (message names the field).  Free with kt_s3_free.
 */
kt_code kt_s3_new(kt_s3 **out, const kt_s3_config *cfg, kt_error *err);
/* A second client with s's settings and credentials and a connection of its
 * own, for another thread (rule 6). */
kt_code kt_s3_clone(const kt_s3 *s, kt_s3 **out, kt_error *err);
void kt_s3_free(kt_s3 *s);

/* The addressing style in use (never AUTO) and the endpoint's origin. */
kt_s3_style kt_s3_style_used(const kt_s3 *s);

/* Progress of an upload: called from kt_s3_put's thread after each part
 * (or the single PUT) is stored.  done/total in bytes. */
typedef void (*kt_s3_progress_fn)(void *ctx, uint64_t done, uint64_t total, unsigned part);

typedef struct kt_s3_put_opts {
	const kt_s3_meta *meta;   /* n_meta x-amz-meta-* headers to store */
	size_t n_meta;
	const char *content_type; /* NULL = application/octet-stream */
	kt_s3_progress_fn progress;
	void *progress_ctx;
	int if_none_match;        /* write once: send If-None-Match: * (on the PUT, or on
	                             CompleteMultipartUpload) so an existing KEY is never
	                             replaced; the refusal (412) is KT_EEXIST */
	const char *lock_mode;    /* Object Lock retention of the new version: "GOVERNANCE" or
	                             "COMPLIANCE" (NULL = the bucket's default) ... */
	const char *retain_until; /* ... until this instant, "YYYY-MM-DDTHH:MM:SSZ" */
} kt_s3_put_opts;

/*
 * Upload the whole regular file open on fd (read with pread from offset 0 to
 * its size at the time of the call) as KEY.  Files above the multipart
 * threshold go multipart with cfg.n_threads workers; a failed multipart
 * upload is aborted.  info_out (may be NULL) gets size and ETag.
 * opts may be NULL.  With opts->if_none_match an existing KEY fails with
 * KT_EEXIST; if an internal retry finds KEY present, the upload counts as
 * done only when HEAD shows our size and ETag (the MD5 of the bytes for a
 * single PUT, the "-<parts>" form for multipart): an earlier attempt stored
 * it and its answer was lost.
 * Errors: KT_EAUTH, KT_ENOTFOUND (no such bucket),
 * KT_ETRANSIENT after the retries, KT_EIO reading fd, KT_ECANCELED,
 * KT_EREMOTE/KT_EPROTO for other refusals.
 */
kt_code kt_s3_put(kt_s3 *s, const char *key, int fd, const kt_s3_put_opts *opts,
                  kt_s3_object_info *info_out, kt_error *err);

/* Upload n bytes from memory as KEY (single PUT). */
kt_code kt_s3_put_mem(kt_s3 *s, const char *key, const void *data, size_t n,
                      const kt_s3_put_opts *opts, kt_s3_object_info *info_out, kt_error *err);

/* HEAD: fill *info (release it) or KT_ENOTFOUND when there is no such key. */
kt_code kt_s3_head(kt_s3 *s, const char *key, kt_s3_object_info *info, kt_error *err);

/*
 * GET the object, handing its bytes in order to on_body (an error it returns
 * ends the call with that error).  A transient failure is retried only while
 * no byte has reached on_body.  info (may be NULL) gets size/ETag/metadata.
 */
kt_code kt_s3_get(kt_s3 *s, const char *key, kt_http_body_fn on_body, void *ctx,
                  kt_s3_object_info *info, kt_error *err);

/*
 * GET bytes [offset, offset+length) of KEY (length 0 = to the end) with a
 * Range header, handing them in order to on_body; retried like kt_s3_get.
 * *size_out (may be NULL) gets the size of the whole object (from
 * Content-Range).  A range that ends past the object is clipped by the
 * server: fewer bytes arrive, and *size_out tells why.  A range that
 * starts at or past the end is refused by S3 (HTTP 416): KT_EUSAGE with
 * err->status 416.  A server that ignores Range and answers 200 with the
 * whole object fails with KT_EPROTO before any byte reaches on_body
 * (unless offset is 0 and the whole object was asked for).
 */
kt_code kt_s3_get_range(kt_s3 *s, const char *key, uint64_t offset, uint64_t length,
                        kt_http_body_fn on_body, void *ctx, uint64_t *size_out, kt_error *err);

/* One listed object: strings borrowed for the call. */
typedef struct kt_s3_entry {
	const char *key;
	uint64_t size;
	const char *etag;          /* without quotes */
	const char *last_modified; /* ISO 8601 as sent */
} kt_s3_entry;

/* Return non-OK (with err filled) to stop the listing with that error. */
typedef kt_code (*kt_s3_list_fn)(void *ctx, const kt_s3_entry *e, kt_error *err);

/*
 * ListObjectsV2 every key starting with prefix (NULL = all), in S3 order,
 * page_size keys per request (0 = 1000), following continuation tokens.
 * *n_out (may be NULL) gets the number of entries delivered.
 */
kt_code kt_s3_list(kt_s3 *s, const char *prefix, unsigned page_size, kt_s3_list_fn fn,
                   void *ctx, uint64_t *n_out, kt_error *err);

/* DELETE KEY.  Deleting a missing key succeeds (as S3 does). */
kt_code kt_s3_delete(kt_s3 *s, const char *key, kt_error *err);

/* ---- Buckets and Object Lock (bucket.c) ------------------------------ */

typedef struct kt_s3_bucket_opts {
	int object_lock; /* create with S3 Object Lock enabled (which turns on versioning) */
} kt_s3_bucket_opts;

/* PUT Bucket (with a LocationConstraint outside us-east-1); opts may be
 * NULL.  KT_EEXIST if it already exists and is ours. */
kt_code kt_s3_create_bucket(kt_s3 *s, const kt_s3_bucket_opts *opts, kt_error *err);

/* A bucket's Object Lock configuration: enabled, and the default retention
 * every new object version gets (mode "" = none). */
typedef struct kt_s3_lock_config {
	int enabled;
	char mode[16];  /* "GOVERNANCE", "COMPLIANCE" or "" */
	unsigned days;  /* default retention period: days or years, not both */
	unsigned years;
} kt_s3_lock_config;

/* GET ?object-lock.  A bucket without Object Lock is not an error: out is
 * all zero.  KT_EPROTO for an answer we cannot read. */
kt_code kt_s3_get_object_lock(kt_s3 *s, kt_s3_lock_config *out, kt_error *err);
/* PUT ?object-lock: set (or, with mode "", clear) the default retention of
 * a bucket created with Object Lock.  KT_EUSAGE for a bad mode or period. */
kt_code kt_s3_put_object_lock(kt_s3 *s, const kt_s3_lock_config *cfg, kt_error *err);

/* One object version or delete marker of ListObjectVersions; strings
 * borrowed for the callback only. */
typedef struct kt_s3_version {
	const char *key;
	const char *version_id;    /* "null" for versions written before versioning */
	const char *etag;          /* without quotes; "" for a delete marker */
	const char *last_modified; /* ISO 8601 as sent */
	uint64_t size;
	int is_latest;
	int delete_marker;
} kt_s3_version;

typedef kt_code (*kt_s3_version_fn)(void *ctx, const kt_s3_version *v, kt_error *err);

/* Every version and delete marker under prefix (NULL = all), in the
 * server's order (key, then newest first), page by page; fn's non-OK return
 * stops the walk.  *n_out (may be NULL) = entries seen. */
kt_code kt_s3_list_versions(kt_s3 *s, const char *prefix, kt_s3_version_fn fn, void *ctx,
                            uint64_t *n_out, kt_error *err);

/* DELETE one version for good (DELETE without a version only adds a delete
 * marker in a versioned bucket: that is kt_s3_delete).  A version under
 * Object Lock retention is KT_EPERM, naming the key and version. */
kt_code kt_s3_delete_version(kt_s3 *s, const char *key, const char *version_id,
                             kt_error *err);

/* GET ?retention of one object version (version_id NULL = the latest). */
typedef struct kt_s3_retention {
	char mode[16];          /* "" when the version has no retention */
	char retain_until[40];  /* ISO 8601 UTC as sent */
} kt_s3_retention;
kt_code kt_s3_get_retention(kt_s3 *s, const char *key, const char *version_id,
                            kt_s3_retention *out, kt_error *err);

#endif /* KT_S3_H */
