/*
 * s3_call.h - the client's internals shared by client.c and multipart.c:
 * the kt_s3 struct, one request description and the retry runner.
 * Nothing outside the files of src/s3 includes it.
 */
#ifndef KT_S3_CALL_H
#define KT_S3_CALL_H

#include "s3_int.h"

#define KT_S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define KT_S3_XML_BODY_MAX (16u << 20)
/* In the message of the KT_ENOTFOUND for a bucket or version without Object Lock. */
#define KT_S3_NO_LOCK "no Object Lock configuration or retention"

struct kt_s3 {
	kt_s3_config cfg;      /* strings point at the copies below */
	char *endpoint, *region, *bucket, *access_key, *secret_key, *cacert;
	int https;
	int has_port;
	int host_is_ip;
	char host[256];        /* endpoint host (IPv6 with brackets) */
	char port[8];          /* "" when absent or the scheme's default */
	char origin[300];      /* scheme://host[:port] for messages */
	kt_s3_style style;
	kt_http *h;            /* control connection (single requests) */
};

/* One S3 request.  Body from memory (body_mem) or a file range (body_fd,
 * body_off, body_len) re-read on each attempt. */
typedef struct kt_s3_call {
	const char *op;            /* "upload", "HEAD", ... for messages */
	const char *method;
	const char *key;           /* NULL for bucket-level requests */
	const char *query;         /* canonical (encoded, sorted) query or "" */
	const kt_sigv4_header *extra; /* more headers to send and sign */
	size_t n_extra;
	const char *payload_hash;  /* hex SHA-256 of the body */
	const void *body_mem;
	int body_fd;
	uint64_t body_off, body_len;
	kt_buf *collect;           /* collect a 2xx body here (bounded), or ... */
	kt_http_body_fn on_body;   /* ... hand it to this callback */
	void *body_ctx;
	int want_meta;             /* keep x-amz-meta-* headers */
	int ranged;                /* a Range GET: a 200 (Range ignored) is refused unless
	                              range_whole_ok */
	int range_whole_ok;
	int max_attempts;          /* 0 = cfg.max_attempts */
	volatile int *stop;        /* non-zero: stop sending the body (a sibling failed) */
} kt_s3_call;

typedef struct kt_s3_result {
	long status;
	int attempts;
	uint64_t delivered;
	kt_s3_object_info info;    /* headers of the 2xx answer: release it */
	int have_length;           /* info.size is the Content-Length */
	int have_range_total;      /* Content-Range carried the object's size ... */
	uint64_t range_total;      /* ... this one (2xx and 416 answers) */
} kt_s3_result;

kt_code kt_s3_http_new(const kt_s3 *s, kt_http **out, int no_cancel, kt_error *err);
kt_code kt_s3_run(kt_s3 *s, kt_http *h, const kt_s3_call *call, kt_s3_result *res,
                  kt_error *err);
kt_code kt_s3_check_key(const char *key, kt_error *err);
kt_code kt_s3_hash_fd(char out[65], int fd, uint64_t off, uint64_t len, kt_error *err);
kt_code kt_s3_put_headers(const kt_s3_put_opts *opts, kt_sigv4_header *hdrs, size_t cap,
                          size_t *n_out, char (*names)[128], kt_error *err);
/* t is "YYYY-MM-DDTHH:MM:SSZ" (the form Object Lock dates are sent in). */
int kt_s3_valid_instant(const char *t);
kt_code kt_s3_put_multipart(kt_s3 *s, const char *key, int fd, uint64_t size,
                            const kt_s3_put_opts *opts, kt_s3_object_info *info_out,
                            kt_error *err);

#endif /* KT_S3_CALL_H */
