/*
 * client.c - the S3 client: configuration, URLs, one signed request with
 * retries, error mapping, and the simple operations (single PUT, HEAD, GET,
 * DELETE).  Multipart upload lives in multipart.c, listing and the other
 * bucket-level operations and Object Lock in bucket.c, the error mapping in
 * errors.c.
 *
 * Invariants:
 *   1. Every request is signed afresh per attempt (new x-amz-date), so a
 *      retry after a long backoff never sends a stale signature.
 *   2. Request bodies come from memory or from a file range read by pread:
 *      a retry re-reads them from the start; nothing holds a whole file.
 *   3. Response bodies that we parse (XML) or that explain an error are
 *      collected with a ceiling; the body of a successful GET goes straight
 *      to the caller's callback.
 *   4. Error messages name the operation, the key, the bucket and the
 *      endpoint's origin; never the secret key or a signature.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "s3_int.h"
#include "s3_call.h"

#define DEFAULT_REGION "us-east-1"
#define DEFAULT_ATTEMPTS 5
#define DEFAULT_RETRY_BASE_MS 200
#define DEFAULT_RETRY_MAX_MS 10000
#define DEFAULT_STALL_MS 60000
#define DEFAULT_THREADS 4
#define ERROR_BODY_MAX (64u << 10)
#define EMPTY_SHA256 KT_S3_EMPTY_SHA256
#define HASH_CHUNK (1u << 20)

/* ------------------------------------------------------------------ */
/* Configuration */

static int is_digits(const char *s, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int is_ipv4(const char *h)
{
	size_t n = strlen(h);
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
			return 0;
	return n > 0;
}

static int dns_compatible_bucket(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return b[0] != '-' && b[0] != '.' && b[n - 1] != '-' && b[n - 1] != '.';
}

static kt_code parse_endpoint(kt_s3 *s, const char *ep, kt_error *err)
{
	const char *rest;
	if (!strncmp(ep, "http://", 7)) {
		s->https = 0;
		rest = ep + 7;
	} else if (!strncmp(ep, "https://", 8)) {
		s->https = 1;
		rest = ep + 8;
	} else {
		return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s' must start with http:// or "
		                    "https://", ep);
	}
	size_t alen = strcspn(rest, "/?#");
	const char *tail = rest + alen;
	if (*tail && strcmp(tail, "/"))
		return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%.*s' must not carry a path or query "
		                    "(give scheme://host[:port])", (int)(tail - ep), ep);
	if (memchr(rest, '@', alen))
		return kt_error_set(err, KT_EUSAGE, "S3 endpoint must not carry user:password@ (use the "
		                    "access and secret keys)");
	const char *port = NULL;
	size_t hlen = alen;
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', alen);
		if (!close)
			return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s': unterminated IPv6 address",
			                    ep);
		hlen = (size_t)(close - rest) + 1;
		if (hlen < alen) {
			if (rest[hlen] != ':')
				return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s': bad port", ep);
			port = rest + hlen + 1;
		}
		s->host_is_ip = 1;
	} else {
		const char *colon = memchr(rest, ':', alen);
		if (colon) {
			hlen = (size_t)(colon - rest);
			port = colon + 1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(s->host))
		return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s': missing or too long host", ep);
	memcpy(s->host, rest, hlen);
	s->host[hlen] = '\0';
	s->port[0] = '\0';
	if (port) {
		size_t plen = (size_t)(rest + alen - port);
		if (!is_digits(port, plen) || plen > 5)
			return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s': bad port", ep);
		unsigned long p = strtoul(port, NULL, 10);
		if (p == 0 || p > 65535)
			return kt_error_set(err, KT_EUSAGE, "S3 endpoint '%s': bad port", ep);
		s->has_port = 1;
		/* A default port is left out of the Host header (as curl does). */
		if (!((s->https && p == 443) || (!s->https && p == 80)))
			snprintf(s->port, sizeof(s->port), "%lu", p);
	}
	if (is_ipv4(s->host) || !strcmp(s->host, "localhost"))
		s->host_is_ip = 1;
	snprintf(s->origin, sizeof(s->origin), "%s://%s%s%s", s->https ? "https" : "http", s->host,
	         s->port[0] ? ":" : "", s->port);
	return KT_OK;
}

static char *dup_or_null(const char *s)
{
	return s ? kt_xstrdup(s) : NULL;
}

kt_code kt_s3_new(kt_s3 **out, const kt_s3_config *cfg, kt_error *err)
{
	if (!cfg->endpoint || !*cfg->endpoint)
		return kt_error_set(err, KT_EUSAGE, "S3 configuration lacks the endpoint");
	if (!cfg->bucket || !*cfg->bucket)
		return kt_error_set(err, KT_EUSAGE, "S3 configuration lacks the bucket");
	if (strlen(cfg->bucket) > 255 || strpbrk(cfg->bucket, "/?#% \t\r\n"))
		return kt_error_set(err, KT_EUSAGE, "S3 bucket name '%.64s' is not valid", cfg->bucket);
	if (!cfg->access_key || !*cfg->access_key)
		return kt_error_set(err, KT_EUSAGE, "S3 configuration lacks the access key");
	if (!cfg->secret_key || !*cfg->secret_key)
		return kt_error_set(err, KT_EUSAGE, "S3 configuration lacks the secret key");
	if (strpbrk(cfg->access_key, "/\r\n"))
		return kt_error_set(err, KT_EUSAGE, "S3 access key contains '/' or a line break");
	if (cfg->part_size && (cfg->part_size < KT_S3_MIN_PART_SIZE ||
	                       cfg->part_size > KT_S3_MAX_PART_SIZE))
		return kt_error_set(err, KT_EUSAGE, "S3 part size %llu is outside 5 MiB..5 GiB",
		                    (unsigned long long)cfg->part_size);
	if (cfg->n_threads < 0 || cfg->n_threads > KT_S3_MAX_THREADS)
		return kt_error_set(err, KT_EUSAGE, "S3 upload threads must be 1..%d",
		                    KT_S3_MAX_THREADS);
	kt_log_add_secret(cfg->secret_key);

	kt_s3 *s = kt_xcalloc(1, sizeof(*s));
	kt_code rc = parse_endpoint(s, cfg->endpoint, err);
	if (rc) {
		free(s);
		return rc;
	}
	s->cfg = *cfg;
	s->endpoint = kt_xstrdup(cfg->endpoint);
	s->region = kt_xstrdup(cfg->region && *cfg->region ? cfg->region : DEFAULT_REGION);
	s->bucket = kt_xstrdup(cfg->bucket);
	s->access_key = kt_xstrdup(cfg->access_key);
	s->secret_key = kt_xstrdup(cfg->secret_key);
	s->cacert = dup_or_null(cfg->cacert);
	s->cfg.endpoint = s->endpoint;
	s->cfg.region = s->region;
	s->cfg.bucket = s->bucket;
	s->cfg.access_key = s->access_key;
	s->cfg.secret_key = s->secret_key;
	s->cfg.cacert = s->cacert;
	if (s->cfg.max_attempts <= 0)
		s->cfg.max_attempts = DEFAULT_ATTEMPTS;
	if (s->cfg.retry_base_ms <= 0)
		s->cfg.retry_base_ms = DEFAULT_RETRY_BASE_MS;
	if (s->cfg.retry_max_ms <= 0)
		s->cfg.retry_max_ms = DEFAULT_RETRY_MAX_MS;
	if (s->cfg.stall_timeout_ms <= 0)
		s->cfg.stall_timeout_ms = DEFAULT_STALL_MS;
	if (!s->cfg.part_size)
		s->cfg.part_size = KT_S3_DEFAULT_PART_SIZE;
	if (!s->cfg.multipart_threshold)
		s->cfg.multipart_threshold = s->cfg.part_size;
	if (!s->cfg.n_threads)
		s->cfg.n_threads = DEFAULT_THREADS;

	s->style = cfg->style;
	if (s->style == KT_S3_STYLE_AUTO) {
		int path = s->host_is_ip || s->has_port || !dns_compatible_bucket(s->bucket) ||
		           (s->https && strchr(s->bucket, '.'));
		s->style = path ? KT_S3_STYLE_PATH : KT_S3_STYLE_VIRTUAL;
	}
	if (s->style == KT_S3_STYLE_VIRTUAL && !dns_compatible_bucket(s->bucket)) {
		kt_error_set(err, KT_EUSAGE, "S3 bucket '%s' cannot be used with virtual-hosted "
		             "addressing (not a DNS name): use path style", s->bucket);
		kt_s3_free(s);
		return KT_EUSAGE;
	}
	rc = kt_s3_http_new(s, &s->h, 0, err);
	if (rc) {
		kt_s3_free(s);
		return rc;
	}
	*out = s;
	return KT_OK;
}

kt_code kt_s3_clone(const kt_s3 *s, kt_s3 **out, kt_error *err)
{
	return kt_s3_new(out, &s->cfg, err);   /* cfg points at s's own copies */
}

void kt_s3_free(kt_s3 *s)
{
	if (!s)
		return;
	kt_http_free(s->h);
	free(s->endpoint);
	free(s->region);
	free(s->bucket);
	free(s->access_key);
	if (s->secret_key) {
		memset(s->secret_key, 0, strlen(s->secret_key));
		free(s->secret_key);
	}
	free(s->cacert);
	free(s);
}

kt_s3_style kt_s3_style_used(const kt_s3 *s)
{
	return s->style;
}

kt_code kt_s3_http_new(const kt_s3 *s, kt_http **out, int no_cancel, kt_error *err)
{
	kt_http_opts o;
	memset(&o, 0, sizeof(o));
	o.cacert = s->cacert;
	o.connect_timeout_ms = s->cfg.connect_timeout_ms;
	o.timeout_ms = s->cfg.timeout_ms;
	o.stall_timeout_ms = s->cfg.stall_timeout_ms;
	o.version = KT_HTTP_1_1;
	o.cancel = no_cancel ? NULL : s->cfg.cancel;
	return kt_http_new(out, &o, err);
}

/* ------------------------------------------------------------------ */
/* URLs */

kt_code kt_s3_check_key(const char *key, kt_error *err)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > KT_S3_MAX_KEY)
		return kt_error_set(err, KT_EUSAGE, "S3 object key must have 1..%d bytes",
		                    KT_S3_MAX_KEY);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
			return kt_error_set(err, KT_EUSAGE, "S3 object key '%.64s' contains a control byte",
			                    key);
	/* "." and ".." segments would be folded away by URL normalisation. */
	const char *seg = key;
	for (;;) {
		size_t l = strcspn(seg, "/");
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return kt_error_set(err, KT_EUSAGE, "S3 object key '%.64s' has a '.' or '..' "
			                    "segment", key);
		if (!seg[l])
			break;
		seg += l + 1;
	}
	return KT_OK;
}

kt_code kt_s3_build_url(const kt_s3 *s, const char *key, const char *query, kt_s3_url *out,
                        kt_error *err)
{
	kt_buf path;
	kt_code rc = KT_OK;
	int n;

	kt_buf_init(&path, sizeof(out->path) - 1);
	if (s->style == KT_S3_STYLE_PATH) {
		rc = kt_buf_add(&path, "/", 1, err);
		if (!rc)
			rc = kt_s3_uri_encode(&path, s->bucket, 0, err);
		if (!rc && key && *key)
			rc = kt_buf_add(&path, "/", 1, err);
		n = snprintf(out->host, sizeof(out->host), "%s%s%s", s->host, s->port[0] ? ":" : "",
		             s->port);
	} else {
		rc = kt_buf_add(&path, "/", 1, err);
		n = snprintf(out->host, sizeof(out->host), "%s.%s%s%s", s->bucket, s->host,
		             s->port[0] ? ":" : "", s->port);
	}
	if (!rc && key && *key)
		rc = kt_s3_uri_encode(&path, key, 1, err);
	if (rc || n < 0 || (size_t)n >= sizeof(out->host)) {
		kt_buf_release(&path);
		return kt_error_set(err, KT_ELIMIT, "S3 URL for '%.64s' is too long", key ? key : "");
	}
	memcpy(out->path, path.data, path.len + 1);
	kt_buf_release(&path);
	n = snprintf(out->url, sizeof(out->url), "%s://%s%s%s%s", s->https ? "https" : "http",
	             out->host, out->path, query && *query ? "?" : "", query ? query : "");
	if (n < 0 || (size_t)n >= sizeof(out->url))
		return kt_error_set(err, KT_ELIMIT, "S3 URL for '%.64s' is too long", key ? key : "");
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Object info */

void kt_s3_object_info_release(kt_s3_object_info *info)
{
	if (!info)
		return;
	for (size_t i = 0; i < info->n_meta; i++) {
		free(info->meta[i].name);
		free(info->meta[i].value);
	}
	free(info->meta);
	memset(info, 0, sizeof(*info));
}

const char *kt_s3_object_meta(const kt_s3_object_info *info, const char *name)
{
	for (size_t i = 0; i < info->n_meta; i++)
		if (!strcmp(info->meta[i].name, name))
			return info->meta[i].value;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* One signed request with retries */

typedef struct attempt_ctx {
	const kt_s3_call *call;
	long status;
	kt_buf errbody;          /* body of a non-2xx answer */
	uint64_t delivered;      /* bytes handed to call->on_body */
	kt_s3_object_info info;  /* headers of a 2xx answer */
	uint64_t content_length;
	int have_length;
	uint64_t range_total;    /* "Content-Range: bytes a-b/TOTAL" or "bytes * /TOTAL" */
	int have_range_total;
} attempt_ctx;

/* The object size at the end of a Content-Range value, if there is one. */
static int parse_content_range_total(const char *v, uint64_t *total)
{
	const char *slash = strrchr(v, '/');
	if (strncmp(v, "bytes ", 6) || !slash || !slash[1] || slash[1] == '*')
		return 0;
	char *end;
	errno = 0;
	unsigned long long t = strtoull(slash + 1, &end, 10);
	if (errno || *end || slash[1] == '-')
		return 0;
	*total = t;
	return 1;
}

static kt_code on_resp_header(void *ctx, const char *name, const char *value, int is_trailer,
                              kt_error *err)
{
	attempt_ctx *a = ctx;
	(void)err;
	if (is_trailer)
		return KT_OK;
	if (!strcmp(name, ":status")) {
		a->status = strtol(value, NULL, 10);
		return KT_OK;
	}
	if (!strcmp(name, "content-range")) {
		a->have_range_total = parse_content_range_total(value, &a->range_total);
		return KT_OK;
	}
	if (a->status < 200 || a->status >= 300)
		return KT_OK;
	if (!strcmp(name, "etag")) {
		kt_s3_etag_unquote(a->info.etag, sizeof(a->info.etag), value);
	} else if (!strcmp(name, "content-length")) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (!errno && end != value && !*end) {
			a->content_length = v;
			a->have_length = 1;
		}
	} else if (!strcmp(name, "last-modified")) {
		snprintf(a->info.last_modified, sizeof(a->info.last_modified), "%s", value);
	} else if (!strncmp(name, "x-amz-meta-", 11) && a->call->want_meta && name[11] &&
	           a->info.n_meta < 64) {
		kt_s3_meta *m = realloc(a->info.meta, (a->info.n_meta + 1) * sizeof(*m));
		if (!m)
			return kt_error_set(err, KT_ENOMEM, "out of memory reading object metadata");
		a->info.meta = m;
		m[a->info.n_meta].name = kt_xstrdup(name + 11);
		m[a->info.n_meta].value = kt_xstrdup(value);
		a->info.n_meta++;
	}
	return KT_OK;
}

static kt_code on_resp_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	attempt_ctx *a = ctx;
	if (a->status < 200 || a->status >= 300) {
		/* Keep what fits of an error document; the rest is dropped. */
		size_t room = a->errbody.max - a->errbody.len;
		return kt_buf_add(&a->errbody, data, n < room ? n : room, err);
	}
	if (a->call->ranged && a->status == 200 && !a->call->range_whole_ok)
		return kt_error_set(err, KT_EPROTO, "the S3 server ignored the Range header of a "
		                    "download of '%.200s' (answered 200 with the whole object)",
		                    a->call->key ? a->call->key : "");
	if (a->call->collect) {
		if (kt_buf_add(a->call->collect, data, n, err))
			return kt_error_set(err, KT_ELIMIT, "the S3 server's answer is larger than %zu "
			                    "bytes", a->call->collect->max);
		return KT_OK;
	}
	if (a->call->on_body) {
		kt_code rc = a->call->on_body(a->call->body_ctx, data, n, err);
		if (rc)
			return rc;
	}
	a->delivered += n;
	return KT_OK;
}

typedef struct body_reader {
	const kt_s3_call *call;
	uint64_t pos;
} body_reader;

static kt_code read_body(void *ctx, uint8_t *buf, size_t cap, size_t *n_out, kt_error *err)
{
	body_reader *b = ctx;
	const kt_s3_call *c = b->call;
	if (c->stop && *c->stop)
		return kt_error_set(err, KT_ECANCELED, "upload stopped: another part failed");
	uint64_t left = c->body_len - b->pos;
	size_t k = left < cap ? (size_t)left : cap;
	if (k == 0) {
		*n_out = 0;
		return KT_OK;
	}
	if (c->body_mem) {
		memcpy(buf, (const uint8_t *)c->body_mem + b->pos, k);
	} else {
		ssize_t r;
		do
			r = pread(c->body_fd, buf, k, (off_t)(c->body_off + b->pos));
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return kt_error_sys(err, KT_EIO, errno, "cannot read the file to upload at byte "
			                    "%llu", (unsigned long long)(c->body_off + b->pos));
		if (r == 0)
			return kt_error_set(err, KT_EIO, "the file to upload shrank while uploading "
			                    "(ended at byte %llu)",
			                    (unsigned long long)(c->body_off + b->pos));
		k = (size_t)r;
	}
	b->pos += k;
	*n_out = k;
	return KT_OK;
}

static kt_code attempt(kt_s3 *s, kt_http *h, const kt_s3_call *call, attempt_ctx *a,
                       kt_error *err)
{
	kt_s3_url u;
	kt_buf auth;
	char date[17];
	kt_sigv4_header sh[8 + 64];
	const char *hdr_lines[8 + 64 + 1];
	char *owned[8 + 64];
	size_t n_sh = 0, n_owned = 0;
	kt_code rc;

	rc = kt_s3_build_url(s, call->key, call->query, &u, err);
	if (rc)
		return rc;
	if (call->n_extra > 64)
		return kt_error_set(err, KT_ELIMIT, "too many S3 request headers");
	kt_sigv4_amz_date(date, (int64_t)time(NULL));
	sh[n_sh++] = (kt_sigv4_header){ "host", u.host };
	sh[n_sh++] = (kt_sigv4_header){ "x-amz-content-sha256", call->payload_hash };
	sh[n_sh++] = (kt_sigv4_header){ "x-amz-date", date };
	for (size_t i = 0; i < call->n_extra; i++)
		sh[n_sh++] = call->extra[i];

	kt_buf_init(&auth, 4096);
	kt_sigv4_req sr = {
		.method = call->method, .canonical_uri = u.path,
		.canonical_query = call->query ? call->query : "", .headers = sh, .n_headers = n_sh,
		.payload_hash = call->payload_hash, .amz_date = date, .region = s->region,
		.service = "s3", .access_key = s->access_key, .secret_key = s->secret_key,
	};
	rc = kt_sigv4_sign(&sr, &auth, NULL, NULL, err);
	if (rc) {
		kt_buf_release(&auth);
		return rc;
	}
	for (size_t i = 0; i < n_sh; i++) {
		kt_buf line;
		kt_buf_init(&line, 8192);
		/* "Host" is given explicitly so what we sign is what is sent. */
		kt_buf_addf(&line, NULL, "%s: %s", sh[i].name, sh[i].value);
		owned[n_owned++] = kt_buf_detach(&line, NULL);
		hdr_lines[i] = owned[n_owned - 1];
	}
	kt_buf line;
	kt_buf_init(&line, 8192);
	kt_buf_addf(&line, NULL, "Authorization: %s", auth.data);
	kt_buf_release(&auth);
	owned[n_owned++] = kt_buf_detach(&line, NULL);
	hdr_lines[n_sh] = owned[n_owned - 1];
	hdr_lines[n_sh + 1] = NULL;

	body_reader br = { call, 0 };
	kt_http_req req = {
		.method = call->method, .url = u.url, .headers = hdr_lines,
		.on_header = on_resp_header, .on_body = on_resp_body, .ctx = a,
	};
	int has_body = call->body_len > 0 || !strcmp(call->method, "PUT") ||
	               (!strcmp(call->method, "POST"));
	if (has_body) {
		req.read_fn = read_body;
		req.read_ctx = &br;
		req.body_size = (int64_t)call->body_len;
	}
	kt_http_resp resp;
	rc = kt_http_request(h, &req, &resp, err);
	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	if (rc)
		return rc;
	if (resp.status >= 200 && resp.status < 300)
		return KT_OK;
	kt_s3_errdoc d;
	kt_error perr;
	memset(&d, 0, sizeof(d));
	if (a->errbody.len && kt_s3_parse_error(a->errbody.data, a->errbody.len, &d, &perr) != KT_OK)
		memset(&d, 0, sizeof(d));
	return kt_s3_map_failure(s, call->op, call->key, resp.status, &d, err);
}

static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Sleep ms, waking every 50 ms to look at the cancel flag.  1 if canceled. */
static int backoff_sleep(const kt_s3 *s, int64_t ms)
{
	while (ms > 0) {
		if (s->cfg.cancel && *s->cfg.cancel)
			return 1;
		int64_t step = ms < 50 ? ms : 50;
		struct timespec ts = { (time_t)(step / 1000), (long)(step % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return s->cfg.cancel && *s->cfg.cancel;
}

kt_code kt_s3_run(kt_s3 *s, kt_http *h, const kt_s3_call *call, kt_s3_result *res,
                  kt_error *err)
{
	uint32_t rng = (uint32_t)kt_now_ms() ^ (uint32_t)(uintptr_t)&rng ^ 0x9e3779b9u;
	int max = call->max_attempts > 0 ? call->max_attempts : s->cfg.max_attempts;
	kt_code rc = KT_OK;
	int n;
	if (!rng)
		rng = 1;
	if (res)
		memset(res, 0, sizeof(*res));
	for (n = 1;; n++) {
		attempt_ctx a;
		memset(&a, 0, sizeof(a));
		a.call = call;
		kt_buf_init(&a.errbody, ERROR_BODY_MAX);
		if (call->collect)
			kt_buf_reset(call->collect);
		rc = attempt(s, h, call, &a, err);
		kt_buf_release(&a.errbody);
		if (res) {
			res->status = a.status;
			res->attempts = n;
			res->delivered += a.delivered;
		}
		if (rc == KT_OK && res) {
			res->have_range_total = a.have_range_total;
			res->range_total = a.range_total;
			kt_s3_object_info_release(&res->info);
			res->info = a.info;
			res->info.size = a.content_length;
			res->have_length = a.have_length;
		} else {
			if (res) {
				res->have_range_total = a.have_range_total;
				res->range_total = a.range_total;
			}
			kt_s3_object_info_release(&a.info);
		}
		if (rc != KT_ETRANSIENT || n >= max || (a.delivered && !call->collect))
			break;
		int64_t d = s->cfg.retry_base_ms;
		for (int i = 1; i < n && d < s->cfg.retry_max_ms; i++)
			d *= 2;
		if (d > s->cfg.retry_max_ms)
			d = s->cfg.retry_max_ms;
		/* "Equal jitter": half fixed, half random, so retries of parallel
		 * workers spread out but still wait. */
		int64_t sleep_ms = d / 2 + (int64_t)(next_rand(&rng) % (uint32_t)(d / 2 + 1));
		kt_log(KT_LOG_DEBUG, "s3: %s %s: %s; retry %d/%d in %lld ms", call->method,
		       call->key ? call->key : s->bucket, err ? err->msg : "transient failure", n + 1,
		       max, (long long)sleep_ms);
		if (backoff_sleep(s, sleep_ms))
			return kt_error_set(err, KT_ECANCELED, "%s canceled while waiting to retry",
			                    call->op);
	}
	if (rc == KT_ETRANSIENT && n > 1)
		kt_error_wrap(err, "after %d attempts", n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Operations */

kt_code kt_s3_hash_fd(char out[65], int fd, uint64_t off, uint64_t len, kt_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = kt_xmalloc(HASH_CHUNK);
	kt_code rc = KT_OK;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = kt_error_set(err, KT_ENOMEM, "cannot start SHA-256 (OpenSSL failed)");
		goto out;
	}
	uint64_t pos = 0;
	while (pos < len) {
		size_t k = len - pos < HASH_CHUNK ? (size_t)(len - pos) : HASH_CHUNK;
		ssize_t r = pread(fd, buf, k, (off_t)(off + pos));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = kt_error_sys(err, KT_EIO, errno, "cannot read the file to upload at byte %llu",
			                  (unsigned long long)(off + pos));
			goto out;
		}
		if (r == 0) {
			rc = kt_error_set(err, KT_EIO, "the file to upload shrank while uploading (ended "
			                  "at byte %llu)", (unsigned long long)(off + pos));
			goto out;
		}
		EVP_DigestUpdate(md, buf, (size_t)r);
		pos += (uint64_t)r;
	}
	uint8_t d[32];
	unsigned int dl = 32;
	EVP_DigestFinal_ex(md, d, &dl);
	kt_hex(out, d, 32);
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

/* Build x-amz-meta-* and content-type headers of an upload into hdrs
 * (names/values borrowed from opts or static strings). */
kt_code kt_s3_put_headers(const kt_s3_put_opts *opts, kt_sigv4_header *hdrs, size_t cap,
                          size_t *n_out, char (*names)[128], kt_error *err)
{
	size_t n = 0;
	hdrs[n++] = (kt_sigv4_header){ "content-type",
		opts && opts->content_type ? opts->content_type : "application/octet-stream" };
	for (size_t i = 0; opts && i < opts->n_meta; i++) {
		const char *name = opts->meta[i].name, *value = opts->meta[i].value;
		if (n >= cap)
			return kt_error_set(err, KT_ELIMIT, "too many S3 metadata entries (limit %zu)",
			                    cap - 1);
		if (!*name || strlen(name) > 100)
			return kt_error_set(err, KT_EUSAGE, "bad S3 metadata name '%.32s'", name);
		for (const char *c = name; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
			      *c == '_'))
				return kt_error_set(err, KT_EUSAGE, "S3 metadata name '%.32s' must be "
				                    "lowercase letters, digits, '-' or '_'", name);
		for (const char *c = value; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				return kt_error_set(err, KT_EUSAGE, "S3 metadata '%s' must be printable "
				                    "ASCII", name);
		snprintf(names[n], 128, "x-amz-meta-%s", name);
		hdrs[n] = (kt_sigv4_header){ names[n], value };
		n++;
	}
	if (opts && (opts->lock_mode || opts->retain_until)) {
		const char *m = opts->lock_mode ? opts->lock_mode : "";
		if (strcmp(m, "GOVERNANCE") && strcmp(m, "COMPLIANCE"))
			return kt_error_set(err, KT_EUSAGE, "Object Lock mode must be GOVERNANCE or "
			                    "COMPLIANCE, not '%.32s'", m);
		if (!kt_s3_valid_instant(opts->retain_until))
			return kt_error_set(err, KT_EUSAGE, "Object Lock retention needs an instant "
			                    "YYYY-MM-DDTHH:MM:SSZ, not '%.40s'",
			                    opts->retain_until ? opts->retain_until : "");
		if (n + 2 > cap)
			return kt_error_set(err, KT_ELIMIT, "too many S3 headers (limit %zu)", cap);
		hdrs[n++] = (kt_sigv4_header){ "x-amz-object-lock-mode", m };
		hdrs[n++] = (kt_sigv4_header){ "x-amz-object-lock-retain-until-date",
		                               opts->retain_until };
	}
	*n_out = n;
	return KT_OK;
}

int kt_s3_valid_instant(const char *t)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
	if (!t || strlen(t) != sizeof(pat) - 1)
		return 0;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i])
			return 0;
	return 1;
}

/* Lowercase hex MD5 of memory (mem) or of fd's first size bytes into out[33]. */
static kt_code md5_hex(char out[33], const void *mem, int fd, uint64_t size, kt_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = NULL;
	kt_code rc = KT_OK;
	if (!md || !EVP_DigestInit_ex(md, EVP_md5(), NULL)) {
		rc = kt_error_set(err, KT_ENOMEM, "cannot start MD5 (OpenSSL failed)");
		goto out;
	}
	if (mem) {
		EVP_DigestUpdate(md, mem, (size_t)size);
	} else {
		buf = kt_xmalloc(HASH_CHUNK);
		for (uint64_t pos = 0; pos < size;) {
			size_t k = size - pos < HASH_CHUNK ? (size_t)(size - pos) : HASH_CHUNK;
			ssize_t r = pread(fd, buf, k, (off_t)pos);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				rc = kt_error_set(err, KT_EIO, "cannot read the uploaded file again at byte "
				                  "%llu", (unsigned long long)pos);
				goto out;
			}
			EVP_DigestUpdate(md, buf, (size_t)r);
			pos += (uint64_t)r;
		}
	}
	uint8_t d[16];
	unsigned int dl = 16;
	EVP_DigestFinal_ex(md, d, &dl);
	kt_hex(out, d, 16);
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

/*
 * A conditional PUT was refused (412) on a retry: the object may be the one
 * an earlier attempt stored before its answer was lost.  It is ours when
 * HEAD shows our size and an ETag equal to the MD5 of our bytes (S3 and
 * MinIO use the MD5 as the ETag of a single unencrypted PUT).
 */
static int stored_by_earlier_attempt(kt_s3 *s, const char *key, const void *mem, int fd,
                                     uint64_t size, char etag_out[132])
{
	kt_s3_object_info info;
	kt_error e;
	char md5[33];
	int ours = 0;
	if (kt_s3_head(s, key, &info, &e) != KT_OK)
		return 0;
	if (info.size == size && md5_hex(md5, mem, fd, size, &e) == KT_OK &&
	    !strcmp(info.etag, md5)) {
		ours = 1;
		memcpy(etag_out, info.etag, 132);
	}
	kt_s3_object_info_release(&info);
	return ours;
}

/* The base64 form of a hex SHA-256 (x-amz-checksum-sha256) into out[48]. */
static void sha256_hex_to_base64(char out[48], const char hex[65])
{
	unsigned char raw[32];
	for (int i = 0; i < 32; i++) {
		unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
		unsigned lo = (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0'
		                                                : hex[2 * i + 1] - 'a' + 10);
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	EVP_EncodeBlock((unsigned char *)out, raw, 32);
}

static kt_code put_single(kt_s3 *s, const char *key, const void *mem, int fd, uint64_t size,
                          const kt_s3_put_opts *opts, kt_s3_object_info *info_out,
                          kt_error *err)
{
	char hash[65];
	kt_sigv4_header hdrs[42];
	char names[40][128], checksum[48];
	size_t n_hdrs;
	kt_code rc = kt_s3_put_headers(opts, hdrs, 40, &n_hdrs, names, err);
	if (rc)
		return rc;
	if (opts && opts->if_none_match)
		hdrs[n_hdrs++] = (kt_sigv4_header){ "if-none-match", "*" };
	if (mem)
		kt_s3_sha256_hex(hash, mem, (size_t)size);
	else if ((rc = kt_s3_hash_fd(hash, fd, 0, size, err)))
		return rc;
	if (opts && opts->lock_mode) {
		/* S3 wants an integrity header on writes that carry a retention. */
		sha256_hex_to_base64(checksum, hash);
		hdrs[n_hdrs++] = (kt_sigv4_header){ "x-amz-checksum-sha256", checksum };
	}
	kt_s3_call call = {
		.op = "upload", .method = "PUT", .key = key, .query = "", .extra = hdrs,
		.n_extra = n_hdrs, .payload_hash = hash, .body_mem = mem, .body_fd = fd,
		.body_off = 0, .body_len = size,
	};
	kt_s3_result res;
	rc = kt_s3_run(s, s->h, &call, &res, err);
	if (rc == KT_EEXIST && res.attempts > 1 &&
	    stored_by_earlier_attempt(s, key, mem, fd, size, res.info.etag)) {
		kt_log(KT_LOG_DEBUG, "s3: '%s' was stored by an earlier attempt whose answer was lost",
		       key);
		kt_error_clear(err);
		rc = KT_OK;
	}
	if (!rc) {
		if (opts && opts->progress)
			opts->progress(opts->progress_ctx, size, size, 1);
		if (info_out) {
			memset(info_out, 0, sizeof(*info_out));
			info_out->size = size;
			memcpy(info_out->etag, res.info.etag, sizeof(info_out->etag));
		}
	}
	kt_s3_object_info_release(&res.info);
	return rc;
}

kt_code kt_s3_put_mem(kt_s3 *s, const char *key, const void *data, size_t n,
                      const kt_s3_put_opts *opts, kt_s3_object_info *info_out, kt_error *err)
{
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	return put_single(s, key, n ? data : "", -1, n, opts, info_out, err);
}

kt_code kt_s3_put(kt_s3 *s, const char *key, int fd, const kt_s3_put_opts *opts,
                  kt_s3_object_info *info_out, kt_error *err)
{
	struct stat st;
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	if (fstat(fd, &st) != 0)
		return kt_error_sys(err, KT_EIO, errno, "cannot stat the file to upload as '%.200s'",
		                    key);
	if (!S_ISREG(st.st_mode))
		return kt_error_set(err, KT_EUSAGE, "can only upload a regular file as '%.200s'", key);
	uint64_t size = (uint64_t)st.st_size;
	if (size > s->cfg.multipart_threshold)
		return kt_s3_put_multipart(s, key, fd, size, opts, info_out, err);
	return put_single(s, key, NULL, fd, size, opts, info_out, err);
}

kt_code kt_s3_head(kt_s3 *s, const char *key, kt_s3_object_info *info, kt_error *err)
{
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	kt_s3_call call = {
		.op = "HEAD", .method = "HEAD", .key = key, .query = "", .payload_hash = EMPTY_SHA256,
		.want_meta = 1,
	};
	kt_s3_result res;
	rc = kt_s3_run(s, s->h, &call, &res, err);
	if (!rc) {
		*info = res.info;
		memset(&res.info, 0, sizeof(res.info));
	}
	kt_s3_object_info_release(&res.info);
	return rc;
}

kt_code kt_s3_get(kt_s3 *s, const char *key, kt_http_body_fn on_body, void *ctx,
                  kt_s3_object_info *info, kt_error *err)
{
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	kt_s3_call call = {
		.op = "download", .method = "GET", .key = key, .query = "",
		.payload_hash = EMPTY_SHA256, .on_body = on_body, .body_ctx = ctx, .want_meta = 1,
	};
	kt_s3_result res;
	rc = kt_s3_run(s, s->h, &call, &res, err);
	if (!rc && res.have_length && res.delivered != res.info.size)
		rc = kt_error_set(err, KT_ETRANSIENT, "download of '%.200s' ended after %llu of %llu "
		                  "bytes", key, (unsigned long long)res.delivered,
		                  (unsigned long long)res.info.size);
	if (!rc && info) {
		*info = res.info;
		memset(&res.info, 0, sizeof(res.info));
	}
	kt_s3_object_info_release(&res.info);
	return rc;
}

kt_code kt_s3_get_range(kt_s3 *s, const char *key, uint64_t offset, uint64_t length,
                        kt_http_body_fn on_body, void *ctx, uint64_t *size_out, kt_error *err)
{
	char range[64];
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	if (length && offset + length < offset)
		return kt_error_set(err, KT_EUSAGE, "byte range of '%.200s' overflows", key);
	if (length)
		snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)offset,
		         (unsigned long long)(offset + length - 1));
	else
		snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)offset);
	kt_sigv4_header rh = { "range", range };
	kt_s3_call call = {
		.op = "download", .method = "GET", .key = key, .query = "", .extra = &rh,
		.n_extra = 1, .payload_hash = EMPTY_SHA256, .on_body = on_body, .body_ctx = ctx,
		.ranged = 1, .range_whole_ok = offset == 0 && length == 0,
	};
	kt_s3_result res;
	rc = kt_s3_run(s, s->h, &call, &res, err);
	if (!rc && res.have_length && res.delivered != res.info.size)
		rc = kt_error_set(err, KT_ETRANSIENT, "download of '%.200s' ended after %llu of %llu "
		                  "bytes", key, (unsigned long long)res.delivered,
		                  (unsigned long long)res.info.size);
	if (!rc) {
		uint64_t total = 0;
		if (res.status == 206 && res.have_range_total)
			total = res.range_total;
		else if (res.status == 200 && res.have_length)
			total = res.info.size;   /* whole object (asked for, or empty) */
		else
			rc = kt_error_set(err, KT_EPROTO, "the S3 server at %s answered a ranged download "
			                  "of '%.200s' with HTTP %ld and no usable Content-Range",
			                  s->origin, key, res.status);
		if (!rc && size_out)
			*size_out = total;
	}
	kt_s3_object_info_release(&res.info);
	return rc;
}

kt_code kt_s3_delete(kt_s3 *s, const char *key, kt_error *err)
{
	kt_code rc = kt_s3_check_key(key, err);
	if (rc)
		return rc;
	kt_s3_call call = {
		.op = "delete", .method = "DELETE", .key = key, .query = "",
		.payload_hash = EMPTY_SHA256,
	};
	kt_s3_result res;
	kt_error e;
	kt_error_clear(&e);
	rc = kt_s3_run(s, s->h, &call, &res, &e);
	kt_s3_object_info_release(&res.info);
	/* A missing key is not an error for DELETE (S3 itself answers 204). */
	if (rc == KT_ENOTFOUND && res.status == 404 && !strncmp(e.msg, "object '", 8))
		return KT_OK;
	if (rc && err)
		*err = e;
	return rc;
}
