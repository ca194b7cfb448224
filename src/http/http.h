/*
 * http.h - the one HTTP transport every wire client (etcd, S3, Kubernetes)
 * builds on: a thin layer over a libcurl easy handle.
 *
 * Owns: process-wide libcurl initialisation, TLS settings (verification is
 * always on; optional CA bundle and client certificate/key), timeouts, the
 * HTTP version policy (1.1, HTTP/2 over TLS, HTTP/2 with prior knowledge for
 * cleartext http://), streaming of request and response bodies through
 * callbacks, delivery of response headers and trailers (HTTP/2 trailers and
 * HTTP/1.1 chunked trailers arrive after the body), cancellation, and the
 * mapping of libcurl failures to kt_code with messages that name the
 * endpoint and say what to do.
 *
 * Invariants:
 *   1. A kt_http handle holds one connection cache: consecutive requests to
 *      the same host reuse the connection (keep-alive, one HTTP/2 session).
 *   2. Nothing here logs or reports a request header value: credentials
 *      travel only in headers or bodies the caller supplies, never in URLs.
 *   3. An error a callback returns is the error kt_http_request returns
 *      (code and message), e.g. KT_ENOSPC from a file writer.
 *   4. A handle is used by one thread at a time.
 */
#ifndef KT_HTTP_H
#define KT_HTTP_H

#include <signal.h>
#include "../core/core.h"

/* Which HTTP to speak. */
typedef enum kt_http_version {
	KT_HTTP_1_1 = 0,   /* HTTP/1.1 only */
	KT_HTTP_2TLS = 1,  /* HTTP/2 through ALPN on https://, HTTP/1.1 on http:// */
	KT_HTTP_2_PRIOR = 2, /* HTTP/2 everywhere: h2c prior knowledge on http:// */
} kt_http_version;

/* Settings fixed for the life of a handle (a handle talks to one peer). */
typedef struct kt_http_opts {
	const char *cacert;        /* PEM CA bundle, or NULL for the system store */
	const char *cert;          /* client certificate PEM, or NULL */
	const char *key;           /* client private key PEM, or NULL */
	int64_t connect_timeout_ms; /* TCP + TLS handshake; 0 = 10 s */
	int64_t timeout_ms;        /* default whole-request limit; 0 = none */
	int64_t stall_timeout_ms;  /* fail if no byte moves for this long (whole
	                              seconds; libcurl averages speed over a few
	                              seconds, so it may take ~5 s more); 0 = never */
	kt_http_version version;
	int direct;                /* 1: ignore http(s)_proxy environment variables */
	const char *unix_socket;   /* connect to this Unix socket instead of the URL's host */
	volatile sig_atomic_t *cancel; /* if set and non-zero: stop with KT_ECANCELED */
} kt_http_opts;

/*
 * Response header callback.  name is lowercased; value has surrounding
 * blanks removed; both are NUL-terminated and valid during the call only.
 * The status line arrives first as name ":status" (value "200").  Headers of
 * interim responses (1xx) are not delivered.  is_trailer is 1 for fields that
 * follow the body (HTTP/2 trailers, chunked trailers).  Return non-OK (with
 * err filled) to abort the request with that error.
 */
typedef kt_code (*kt_http_header_fn)(void *ctx, const char *name, const char *value,
                                     int is_trailer, kt_error *err);

/* Response body callback: bytes in order, borrowed.  Return non-OK (with err
 * filled) to abort the request with that error. */
typedef kt_code (*kt_http_body_fn)(void *ctx, const uint8_t *data, size_t n, kt_error *err);

/* Request body source: copy up to cap bytes into buf, set *n_out (0 = end).
 * Return non-OK (with err filled) to abort the request with that error. */
typedef kt_code (*kt_http_read_fn)(void *ctx, uint8_t *buf, size_t cap, size_t *n_out,
                                   kt_error *err);

typedef struct kt_http_req {
	const char *method;   /* "GET", "POST", "PUT", "HEAD", "DELETE"...; NULL = GET */
	const char *url;      /* must not carry user:password@ */
	const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
	/* Request body, one of: a memory block ... */
	const void *body;
	size_t body_len;
	/* ... or a stream (used when read_fn is set; body_size -1 = unknown,
	 * sent chunked on HTTP/1.1). */
	kt_http_read_fn read_fn;
	int64_t body_size;
	void *read_ctx;
	/* Response. */
	kt_http_header_fn on_header; /* may be NULL */
	kt_http_body_fn on_body;     /* may be NULL: the body is discarded */
	void *ctx;                   /* passed to on_header and on_body */
	int64_t timeout_ms;          /* overrides opts.timeout_ms when > 0 */
} kt_http_req;

typedef struct kt_http_resp {
	long status;          /* final HTTP status, 0 if none arrived */
	int http_version;     /* 10, 11, 20 or 30; 0 if unknown */
	uint64_t body_bytes;  /* bytes handed to on_body */
} kt_http_resp;

typedef struct kt_http kt_http; /* opaque: one libcurl easy handle */

/* Initialise libcurl once per process (safe to call from any thread, any
 * number of times).  KT_ENOMEM or KT_EIO if libcurl cannot start. */
kt_code kt_http_global_init(kt_error *err);

/* Create a handle with opts (strings are copied).  Calls
 * kt_http_global_init.  *out is untouched on failure; free with kt_http_free. */
kt_code kt_http_new(kt_http **out, const kt_http_opts *opts, kt_error *err);

/* Close the connections and free h.  NULL is a no-op. */
void kt_http_free(kt_http *h);

/*
 * Perform one request.  Returns KT_OK when an HTTP response arrived complete,
 * whatever its status (the caller judges resp->status).  Errors:
 *   KT_ETRANSIENT  cannot resolve/connect, timeout, stall, connection reset,
 *                  broken HTTP/2 stream (message names the URL's origin)
 *   KT_ETLS        handshake or certificate verification failed, unusable
 *                  CA/cert/key file
 *   KT_EPROTO      the peer does not speak HTTP (or not the version required)
 *   KT_ECANCELED   *opts.cancel became non-zero
 *   KT_EUSAGE      malformed URL or unsupported scheme
 *   any code a callback returned, with its message.
 * resp (may be NULL) is filled as far as the exchange got, even on failure.
 */
kt_code kt_http_request(kt_http *h, const kt_http_req *req, kt_http_resp *resp,
                        kt_error *err);

/* Write the scheme://host[:port] part of url into out (for messages);
 * anything before '@' in the authority is dropped.  Returns out. */
const char *kt_http_origin(const char *url, char *out, size_t outlen);

/* Percent-decode s into out (bounded, always NUL-terminated); invalid escapes
 * are kept literally, control bytes become '?'.  For grpc-message and similar
 * header-borne text.  Returns out. */
const char *kt_http_unescape(const char *s, char *out, size_t outlen);

#endif /* KT_HTTP_H */
