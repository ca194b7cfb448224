/*
 * http.c - libcurl transport shared by the wire clients.
 *
 * Owns the easy handle's configuration, the header/trailer parser, body
 * streaming in both directions, cancellation and the CURLcode -> kt_code
 * mapping.  Invariants:
 *   1. Every request starts from curl_easy_reset(): no option leaks from one
 *      request into the next, but the connection cache survives (keep-alive)
 *      - except h2c prior-knowledge connections on libcurl < 8.0.0, which
 *      cannot be reused there and get a fresh connection per request.
 *   2. TLS peer and host verification are always on.
 *   3. When a callback fails, its kt_error is kept in the handle and becomes
 *      the request's result; libcurl's own error only matters otherwise.
 *   4. Error messages name the origin (scheme://host:port), never a path,
 *      query, header value or body.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define MAX_HEADER_LINE (64u * 1024u)
#define RECV_BUFFER_SIZE (256L * 1024L)

struct kt_http {
	CURL *curl;
	char *cacert, *cert, *key, *unix_socket;
	kt_http_opts opts;
	char errbuf[CURL_ERROR_SIZE];

	/* Per-request state, reset by kt_http_request. */
	const kt_http_req *req;
	kt_http_resp resp;
	kt_buf line;          /* one header line, NUL-terminated copy */
	int in_interim;       /* inside a 1xx response's header block */
	int headers_done;     /* final header block ended: later fields are trailers */
	int cb_failed;        /* a callback returned an error, kept in cb_err */
	int canceled;
	kt_error cb_err;
	const uint8_t *mem_body; /* PUT from memory */
	size_t mem_left;
};

/* ------------------------------------------------------------------ */
/* Global init */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

static void do_global_init(void)
{
	init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

kt_code kt_http_global_init(kt_error *err)
{
	pthread_once(&init_once, do_global_init);
	if (init_result == CURLE_OUT_OF_MEMORY)
		return kt_error_set(err, KT_ENOMEM, "cannot initialise libcurl: out of memory");
	if (init_result != CURLE_OK)
		return kt_error_set(err, KT_EIO, "cannot initialise libcurl: %s",
		                    curl_easy_strerror(init_result));
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Helpers for messages */

const char *kt_http_origin(const char *url, char *out, size_t outlen)
{
	if (!outlen)
		return out;
	out[0] = '\0';
	if (!url)
		return out;
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	size_t scheme_len = sep ? (size_t)(sep - url) + 3 : 0;
	size_t auth_len = strcspn(auth, "/?#");
	/* Drop userinfo: the last '@' inside the authority. */
	for (size_t i = auth_len; i > 0; i--) {
		if (auth[i - 1] == '@') {
			auth += i;
			auth_len -= i;
			break;
		}
	}
	snprintf(out, outlen, "%.*s%.*s", (int)scheme_len, url, (int)auth_len, auth);
	return out;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

const char *kt_http_unescape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	if (!outlen)
		return out;
	for (size_t i = 0; s && s[i] && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%' && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Handle lifecycle */

static char *dup_or_null(const char *s)
{
	return s ? kt_xstrdup(s) : NULL;
}

kt_code kt_http_new(kt_http **out, const kt_http_opts *opts, kt_error *err)
{
	kt_code rc = kt_http_global_init(err);
	if (rc)
		return rc;
	CURL *curl = curl_easy_init();
	if (!curl)
		return kt_error_set(err, KT_ENOMEM, "cannot create a libcurl handle");
	kt_http *h = kt_xcalloc(1, sizeof(*h));
	h->curl = curl;
	if (opts)
		h->opts = *opts;
	h->cacert = dup_or_null(h->opts.cacert);
	h->cert = dup_or_null(h->opts.cert);
	h->key = dup_or_null(h->opts.key);
	h->unix_socket = dup_or_null(h->opts.unix_socket);
	h->opts.unix_socket = h->unix_socket;
	h->opts.cacert = h->cacert;
	h->opts.cert = h->cert;
	h->opts.key = h->key;
	kt_buf_init(&h->line, MAX_HEADER_LINE);
	*out = h;
	return KT_OK;
}

void kt_http_free(kt_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	kt_buf_release(&h->line);
	free(h->cacert);
	free(h->cert);
	free(h->key);
	free(h->unix_socket);
	free(h);
}

/* ------------------------------------------------------------------ */
/* libcurl callbacks */

static int is_canceled(kt_http *h)
{
	if (h->opts.cancel && *h->opts.cancel)
		h->canceled = 1;
	return h->canceled;
}

/* Record a callback failure; the request will end with it. */
static void fail_cb(kt_http *h, const kt_error *cb_err, kt_code rc)
{
	h->cb_failed = 1;
	if (cb_err && cb_err->code == rc) {
		h->cb_err = *cb_err;
	} else {
		/* The callback returned a code without filling err: keep the code. */
		kt_error_set(&h->cb_err, rc, "%s",
		             cb_err && cb_err->msg[0] ? cb_err->msg : kt_code_name(rc));
	}
}

static size_t on_header_line(char *ptr, size_t size, size_t nitems, void *userdata)
{
	kt_http *h = userdata;
	size_t n = size * nitems;
	size_t len = n;
	kt_error e;

	if (is_canceled(h))
		return 0;
	while (len && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r'))
		len--;
	kt_error_clear(&e);
	kt_buf_reset(&h->line);
	if (kt_buf_add(&h->line, ptr, len, &e)) {
		kt_error_set(&e, KT_EPROTO, "a response header line is longer than %u bytes",
		             MAX_HEADER_LINE);
		fail_cb(h, &e, KT_EPROTO);
		return 0;
	}
	char *line = h->line.data;

	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		/* Status line: "HTTP/2 200" or "HTTP/1.1 200 OK". */
		char *sp = strchr(line, ' ');
		long status = 0;
		if (sp) {
			char *end;
			status = strtol(sp + 1, &end, 10);
			if (end == sp + 1 || status < 100 || status > 999)
				status = 0;
			else
				*end = '\0';
		}
		h->in_interim = status >= 100 && status < 200;
		h->headers_done = 0;
		if (!h->in_interim) {
			h->resp.status = status;
			if (h->req->on_header && status) {
				kt_code rc = h->req->on_header(h->req->ctx, ":status", sp + 1, 0, &e);
				if (rc) {
					fail_cb(h, &e, rc);
					return 0;
				}
			}
		}
		return n;
	}
	if (len == 0) {
		if (!h->in_interim && h->resp.status)
			h->headers_done = 1;
		return n;
	}
	if (h->in_interim || !h->req->on_header)
		return n;
	char *colon = memchr(line, ':', len);
	if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
		return n; /* not a field (obsolete line folding): ignore */
	*colon = '\0';
	for (char *p = line; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char *value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	char *end = line + len;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	kt_code rc = h->req->on_header(h->req->ctx, line, value, h->headers_done, &e);
	if (rc) {
		fail_cb(h, &e, rc);
		return 0;
	}
	return n;
}

static size_t on_body_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	kt_http *h = userdata;
	size_t n = size * nmemb;
	kt_error e;

	if (is_canceled(h))
		return 0;
	if (h->req->on_body && n) {
		kt_error_clear(&e);
		kt_code rc = h->req->on_body(h->req->ctx, (const uint8_t *)ptr, n, &e);
		if (rc) {
			fail_cb(h, &e, rc);
			return 0;
		}
	}
	h->resp.body_bytes += n;
	return n;
}

static size_t on_read_body(char *buf, size_t size, size_t nitems, void *userdata)
{
	kt_http *h = userdata;
	size_t cap = size * nitems;
	kt_error e;

	if (is_canceled(h))
		return CURL_READFUNC_ABORT;
	if (!h->req->read_fn) {
		size_t k = h->mem_left < cap ? h->mem_left : cap;
		if (k)
			memcpy(buf, h->mem_body, k);
		h->mem_body += k;
		h->mem_left -= k;
		return k;
	}
	size_t got = 0;
	kt_error_clear(&e);
	kt_code rc = h->req->read_fn(h->req->read_ctx, (uint8_t *)buf, cap, &got, &e);
	if (rc) {
		fail_cb(h, &e, rc);
		return CURL_READFUNC_ABORT;
	}
	return got > cap ? cap : got;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return is_canceled(clientp) ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Request */

static int h2c_reuse_broken(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v && v->version_num < 0x080000;
}

#define SETOPT(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(c, opt, val); } while (0)

static CURLcode configure(kt_http *h, const kt_http_req *req, struct curl_slist *hdrs)
{
	CURL *c = h->curl;
	CURLcode rc = CURLE_OK;
	const kt_http_opts *o = &h->opts;
	const char *method = req->method ? req->method : "GET";
	int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : o->timeout_ms;
	int64_t connect_timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
	                                                    : DEFAULT_CONNECT_TIMEOUT_MS;

	SETOPT(CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
	SETOPT(CURLOPT_USERAGENT, "kontinuity/" KT_VERSION);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_BUFFERSIZE, RECV_BUFFER_SIZE);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);

	long version = CURL_HTTP_VERSION_1_1;
	if (o->version == KT_HTTP_2TLS)
		version = CURL_HTTP_VERSION_2TLS;
	else if (o->version == KT_HTTP_2_PRIOR)
		version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	SETOPT(CURLOPT_HTTP_VERSION, version);
	if (o->version == KT_HTTP_2_PRIOR && h2c_reuse_broken()) {
		/* libcurl before 8.0.0 fails every request that reuses an h2c
		 * prior-knowledge connection with "Error in the HTTP2 framing layer"
		 * (curl issue 10634, fixed by PR 10643): one connection per request. */
		SETOPT(CURLOPT_FRESH_CONNECT, 1L);
		SETOPT(CURLOPT_FORBID_REUSE, 1L);
	}

	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->cacert)
		SETOPT(CURLOPT_CAINFO, o->cacert);
	if (o->cert)
		SETOPT(CURLOPT_SSLCERT, o->cert);
	if (o->key)
		SETOPT(CURLOPT_SSLKEY, o->key);
	if (o->direct)
		SETOPT(CURLOPT_PROXY, "");
	if (o->unix_socket)
		SETOPT(CURLOPT_UNIX_SOCKET_PATH, o->unix_socket);

	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout);
	if (timeout > 0)
		SETOPT(CURLOPT_TIMEOUT_MS, (long)timeout);
	if (o->stall_timeout_ms > 0) {
		SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SETOPT(CURLOPT_LOW_SPEED_TIME, (long)((o->stall_timeout_ms + 999) / 1000));
	}
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(CURLOPT_XFERINFODATA, h);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header_line);
	SETOPT(CURLOPT_HEADERDATA, h);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body_data);
	SETOPT(CURLOPT_WRITEDATA, h);
	SETOPT(CURLOPT_READFUNCTION, on_read_body);
	SETOPT(CURLOPT_READDATA, h);
	SETOPT(CURLOPT_HTTPHEADER, hdrs);

	int has_body = req->read_fn || req->body_len > 0;
	curl_off_t size = req->read_fn ? (curl_off_t)req->body_size : (curl_off_t)req->body_len;
	if (!strcmp(method, "GET")) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(method, "HEAD")) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (!strcmp(method, "PUT")) {
		h->mem_body = req->body;
		h->mem_left = req->body_len;
		SETOPT(CURLOPT_UPLOAD, 1L);
		SETOPT(CURLOPT_INFILESIZE_LARGE, size);
	} else {
		if (strcmp(method, "POST"))
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
		if (has_body || !strcmp(method, "POST")) {
			SETOPT(CURLOPT_POST, 1L);
			if (!req->read_fn)
				SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : (const void *)"");
			SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, size);
		}
	}
	return rc;
}

static int has_text(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* Turn a libcurl failure into a kt_code with a message naming the origin. */
static kt_code map_curl_error(kt_http *h, CURLcode rc, const char *origin, kt_error *err)
{
	const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
	const char *cacert = h->opts.cacert ? h->opts.cacert : "(system store)";
	curl_off_t tls_done_us = 0;

	/* With TLS 1.3 a server that refuses our client certificate (or its
	 * absence) does so after the client considers the handshake complete; its
	 * alert is usually lost in the reset, so the symptom is a connection that
	 * dies between the handshake and the first response byte. */
	curl_easy_getinfo(h->curl, CURLINFO_APPCONNECT_TIME_T, &tls_done_us);
	/* libcurl 7.88 does not always record the handshake time when the
	 * failure comes while setting up HTTP/2; but HTTP/2 on https:// is only
	 * chosen through ALPN, so an HTTP/2 error there implies the handshake. */
	int tls_up = tls_done_us > 0 || rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM;
	if (!strncmp(origin, "https://", 8) && tls_up && h->resp.status == 0 &&
	    (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	     rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM))
		return kt_error_set(err, KT_ETLS,
		                    "TLS connection to %s was closed right after the handshake: %s "
		                    "(the server probably refused our client certificate: %s)",
		                    origin, detail,
		                    h->opts.cert ? "pass --cert/--key issued by a CA the server trusts"
		                                 : "pass --cert and --key");

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return kt_error_set(err, KT_ETRANSIENT,
		                    "cannot resolve the host of %s: %s (check the host name and DNS)",
		                    origin, detail);
	case CURLE_COULDNT_CONNECT:
		return kt_error_set(err, KT_ETRANSIENT,
		                    "cannot connect to %s: %s (is the server running and listening there?)",
		                    origin, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return kt_error_set(err, KT_ETRANSIENT, "request to %s timed out: %s", origin, detail);
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		/* A peer rejecting our client certificate shows up in the first read
		 * with TLS 1.3 ("alert certificate required"). */
		if (has_text(detail, "alert") && (has_text(detail, "certificate") ||
		                                  has_text(detail, "unknown ca")))
			return kt_error_set(err, KT_ETLS,
			                    "TLS handshake with %s failed: %s (the server rejected our "
			                    "client certificate: pass --cert/--key signed by a CA it trusts)",
			                    origin, detail);
		/* fall through */
	case CURLE_GOT_NOTHING:
		/* With h2c prior knowledge this is how an HTTP/1-only server (or
		 * anything else that is not HTTP/2) answers: a retry will not help. */
		if (h->opts.version == KT_HTTP_2_PRIOR && !strncmp(origin, "http://", 7))
			return kt_error_set(err, KT_EPROTO,
			                    "%s closed the connection without an HTTP/2 answer: %s (it "
			                    "does not speak cleartext HTTP/2; is it the right port? for "
			                    "TLS use https://)", origin, detail);
		return kt_error_set(err, KT_ETRANSIENT, "connection to %s broken: %s", origin, detail);
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2_STREAM:
		return kt_error_set(err, KT_ETRANSIENT, "connection to %s broken: %s", origin, detail);
	case CURLE_HTTP2:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return kt_error_set(err, KT_EPROTO,
		                    "%s did not answer in the HTTP version we speak: %s "
		                    "(is it the right endpoint and scheme?)", origin, detail);
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return kt_error_set(err, KT_EUSAGE, "cannot use URL %s: %s (expected http:// or https://)",
		                    origin, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
		return kt_error_set(err, KT_ETLS,
		                    "TLS verification of %s failed: %s (pass --cacert with the CA that "
		                    "signed the server)", origin, detail);
	case CURLE_SSL_CACERT_BADFILE:
		return kt_error_set(err, KT_ETLS, "cannot use CA file %s for %s: %s", cacert, origin,
		                    detail);
	case CURLE_SSL_CERTPROBLEM:
		return kt_error_set(err, KT_ETLS,
		                    "cannot use client certificate %s / key %s for %s: %s (check the files "
		                    "and that the key matches the certificate)",
		                    h->opts.cert ? h->opts.cert : "(none)",
		                    h->opts.key ? h->opts.key : "(none)", origin, detail);
	case CURLE_SSL_CONNECT_ERROR:
		if (has_text(detail, "wrong version number") || has_text(detail, "packet length too long"))
			return kt_error_set(err, KT_ETLS,
			                    "TLS handshake with %s failed: %s (the server does not speak "
			                    "TLS on that port: use http:// or the right port)", origin,
			                    detail);
		return kt_error_set(err, KT_ETLS,
		                    "TLS handshake with %s failed: %s (is it an https endpoint? does it "
		                    "require a client certificate (--cert/--key)?)", origin, detail);
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CIPHER:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return kt_error_set(err, KT_ETLS, "TLS with %s failed: %s", origin, detail);
	case CURLE_OUT_OF_MEMORY:
		return kt_error_set(err, KT_ENOMEM, "out of memory talking to %s", origin);
	default:
		return kt_error_set(err, KT_ETRANSIENT, "request to %s failed: %s", origin, detail);
	}
}

kt_code kt_http_request(kt_http *h, const kt_http_req *req, kt_http_resp *resp,
                        kt_error *err)
{
	char origin[256];
	struct curl_slist *hdrs = NULL;
	kt_code ret = KT_OK;

	kt_http_origin(req->url, origin, sizeof(origin));
	h->req = req;
	memset(&h->resp, 0, sizeof(h->resp));
	h->in_interim = 0;
	h->headers_done = 0;
	h->cb_failed = 0;
	h->canceled = 0;
	h->mem_body = NULL;
	h->mem_left = 0;
	h->errbuf[0] = '\0';
	kt_error_clear(&h->cb_err);

	if (is_canceled(h)) {
		ret = kt_error_set(err, KT_ECANCELED, "request to %s canceled", origin);
		goto out;
	}
	for (const char *const *p = req->headers; p && *p; p++) {
		struct curl_slist *n = curl_slist_append(hdrs, *p);
		if (!n) {
			ret = kt_error_set(err, KT_ENOMEM, "out of memory building request headers");
			goto out;
		}
		hdrs = n;
	}
	/* Never wait for "100 Continue" before sending a body. */
	struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
	if (!n) {
		ret = kt_error_set(err, KT_ENOMEM, "out of memory building request headers");
		goto out;
	}
	hdrs = n;

	curl_easy_reset(h->curl);
	CURLcode rc = configure(h, req, hdrs);
	if (rc != CURLE_OK) {
		ret = kt_error_set(err, rc == CURLE_OUT_OF_MEMORY ? KT_ENOMEM : KT_EUSAGE,
		                   "cannot configure a request to %s: %s", origin,
		                   curl_easy_strerror(rc));
		goto out;
	}
	rc = curl_easy_perform(h->curl);

	long status = 0, version = 0;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h->curl, CURLINFO_HTTP_VERSION, &version);
	if (status)
		h->resp.status = status;
	switch (version) {
	case CURL_HTTP_VERSION_1_0: h->resp.http_version = 10; break;
	case CURL_HTTP_VERSION_1_1: h->resp.http_version = 11; break;
	case CURL_HTTP_VERSION_2_0: h->resp.http_version = 20; break;
#ifdef CURL_HTTP_VERSION_3
	case CURL_HTTP_VERSION_3: h->resp.http_version = 30; break;
#endif
	default: h->resp.http_version = 0; break;
	}

	if (h->cb_failed) {
		if (err)
			*err = h->cb_err;
		ret = h->cb_err.code;
	} else if (h->canceled || (rc == CURLE_ABORTED_BY_CALLBACK && is_canceled(h))) {
		ret = kt_error_set(err, KT_ECANCELED, "request to %s canceled", origin);
	} else if (rc != CURLE_OK) {
		ret = map_curl_error(h, rc, origin, err);
		if (err && h->resp.status)
			err->status = h->resp.status;
	}
out:
	curl_slist_free_all(hdrs);
	if (resp)
		*resp = h->resp;
	h->req = NULL;
	return ret;
}
