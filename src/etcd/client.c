/*
 * client.c - etcd v3 calls over gRPC: Auth.Authenticate,
 * Maintenance.Snapshot, Maintenance.Status, KV.Range and
 * Cluster.MemberList, on top of src/http.
 *
 * A call is one HTTP/2 POST to /<service>/<method> with
 * "content-type: application/grpc" and "te: trailers", a body of one framed
 * request message, and a response of framed messages followed by the
 * grpc-status/grpc-message trailers (or, for an immediate failure, a
 * trailers-only response that carries them in the headers).
 *
 * Invariants:
 *   1. A call succeeds only if HTTP :status is 200, content-type is
 *      application/grpc*, grpc-status is 0 and the body ended on a frame
 *      boundary.  Anything else is an error whose code says whether a retry
 *      may help.
 *   2. Snapshot bytes go to the caller's callback as each message arrives;
 *      at most one gRPC message (<= KT_GRPC_MAX_MESSAGE) is ever buffered.
 *      The unary calls (Status, Range, MemberList) accept exactly one
 *      response message and decode it into memory bounded by the decoders'
 *      documented limits.
 *   3. The password and the token exist only in local buffers that are
 *      wiped before return, the request body, and a request header; none is
 *      ever formatted into a message or a log line.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../http/http.h"
#include "etcd.h"

#define MAX_GRPC_MESSAGE_TEXT 384
#define DEFAULT_STALL_MS 60000

/* What we saw of one call's response. */
typedef struct call_state {
	const char *what;     /* "snapshot", "authentication": for messages */
	const char *origin;
	kt_grpc_reader reader;
	kt_grpc_msg_fn on_msg;
	void *msg_ctx;
	long http_status;
	char content_type[96];
	int checked;          /* status and content-type accepted (body started) */
	int have_grpc_status;
	long grpc_status;
	char grpc_message[MAX_GRPC_MESSAGE_TEXT];
} call_state;

static const char *const grpc_code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

static const char *grpc_code_name(long code)
{
	if (code >= 0 && (size_t)code < sizeof(grpc_code_names) / sizeof(grpc_code_names[0]))
		return grpc_code_names[code];
	return "UNKNOWN_CODE";
}

kt_code kt_etcd_map_status(long grpc_status, const char *message, const char *what,
                           const char *endpoint, kt_error *err)
{
	const char *m = message && message[0] ? message : grpc_code_name(grpc_status);
	kt_code code;
	const char *advice = NULL;

	if (grpc_status == 0)
		return KT_OK;
	if (strstr(m, "user name is empty")) {
		code = KT_EAUTH;
		advice = "etcd has authentication enabled: pass --user NAME:PASSWORD for a user with "
		         "the root role";
	} else if (strstr(m, "authentication failed")) {
		code = KT_EAUTH;
		advice = "check the user name and password given with --user";
	} else if (strstr(m, "invalid auth token")) {
		code = KT_EAUTH;
		advice = "etcd refused the auth token: pass --user NAME:PASSWORD (tokens expire)";
	} else if (grpc_status == GRPC_PERMISSION_DENIED || strstr(m, "permission denied")) {
		code = KT_EAUTH;
		advice = "the user lacks permission: a snapshot needs a user with the root role";
	} else if (grpc_status == GRPC_UNAUTHENTICATED) {
		code = KT_EAUTH;
		advice = "pass --user NAME:PASSWORD for a user with the root role";
	} else if (grpc_status == GRPC_UNAVAILABLE || grpc_status == GRPC_DEADLINE_EXCEEDED) {
		code = KT_ETRANSIENT;
		advice = "etcd is unavailable or has no leader; retry later";
	} else {
		code = KT_EREMOTE;
	}
	if (advice)
		kt_error_set(err, code, "%s at %s failed: %s (%s)", what, endpoint, m, advice);
	else
		kt_error_set(err, code, "%s at %s failed: grpc-status %ld %s: %s", what, endpoint,
		             grpc_status, grpc_code_name(grpc_status), m);
	if (err)
		err->status = grpc_status;
	return code;
}

/* ------------------------------------------------------------------ */
/* Response handling common to all calls */

static kt_code not_grpc(const call_state *st, kt_error *err)
{
	kt_code code = KT_EPROTO;
	if (st->http_status == 429 || st->http_status == 502 || st->http_status == 503 ||
	    st->http_status == 504)
		code = KT_ETRANSIENT;
	kt_error_set(err, code,
	             "%s at %s failed: the server answered HTTP %ld with content-type '%s', not "
	             "gRPC (is this an etcd client URL, e.g. https://127.0.0.1:2379?)",
	             st->what, st->origin, st->http_status,
	             st->content_type[0] ? st->content_type : "none");
	if (err)
		err->status = st->http_status;
	return code;
}

static int is_grpc_content_type(const char *ct)
{
	return !strncmp(ct, "application/grpc", 16) &&
	       (ct[16] == '\0' || ct[16] == '+' || ct[16] == ';');
}

static kt_code on_header(void *ctx, const char *name, const char *value, int is_trailer,
                         kt_error *err)
{
	call_state *st = ctx;
	(void)is_trailer;
	(void)err;
	if (!strcmp(name, ":status")) {
		st->http_status = strtol(value, NULL, 10);
	} else if (!strcmp(name, "content-type")) {
		snprintf(st->content_type, sizeof(st->content_type), "%s", value);
		kt_http_unescape(st->content_type, st->content_type, sizeof(st->content_type));
	} else if (!strcmp(name, "grpc-status")) {
		char *end;
		long v = strtol(value, &end, 10);
		st->have_grpc_status = 1;
		st->grpc_status = (end == value || *end || v < 0 || v > 1000) ? 2 /* UNKNOWN */ : v;
	} else if (!strcmp(name, "grpc-message")) {
		kt_http_unescape(value, st->grpc_message, sizeof(st->grpc_message));
	}
	return KT_OK;
}

static kt_code on_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	call_state *st = ctx;
	if (!st->checked) {
		if (st->http_status != 200 || !is_grpc_content_type(st->content_type))
			return not_grpc(st, err);
		st->checked = 1;
	}
	return kt_grpc_reader_feed(&st->reader, data, n, st->on_msg, st->msg_ctx, err);
}

/* After a transfer that completed at the HTTP level: judge the gRPC result.
 * done_bytes names progress for "ended early" messages. */
static kt_code finish_call(const call_state *st, const kt_http_resp *resp,
                           uint64_t done_bytes, kt_error *err)
{
	if (st->http_status != 200) {
		if (st->have_grpc_status && st->grpc_status != 0)
			return kt_etcd_map_status(st->grpc_status, st->grpc_message, st->what,
			                          st->origin, err);
		return not_grpc(st, err);
	}
	if (!is_grpc_content_type(st->content_type))
		return not_grpc(st, err);
	if (resp->http_version != 20)
		return kt_error_set(err, KT_EPROTO, "%s at %s failed: the server answered over "
		                    "HTTP/%d.%d, gRPC needs HTTP/2", st->what, st->origin,
		                    resp->http_version / 10, resp->http_version % 10);
	if (!st->have_grpc_status)
		return kt_error_set(err, KT_EPROTO, "%s stream from %s ended early after %llu bytes "
		                    "(no grpc-status trailer)", st->what, st->origin,
		                    (unsigned long long)done_bytes);
	if (st->grpc_status != 0)
		return kt_etcd_map_status(st->grpc_status, st->grpc_message, st->what, st->origin,
		                          err);
	if (!kt_grpc_reader_idle(&st->reader))
		return kt_error_set(err, KT_EPROTO, "%s stream from %s ended early after %llu bytes "
		                    "(inside a gRPC message)", st->what, st->origin,
		                    (unsigned long long)done_bytes);
	return KT_OK;
}

/* Remaining time of the whole operation: >0 ms, 0 = no limit, <0 expired. */
static int64_t remaining_ms(int64_t deadline)
{
	if (!deadline)
		return 0;
	int64_t left = deadline - kt_now_ms();
	return left > 0 ? left : -1;
}

/*
 * POST one framed request message to path and run the response through st.
 * Returns the transport or gRPC result.
 */
static kt_code grpc_call(kt_http *h, const char *endpoint, const char *path,
                         const char *token, const kt_buf *req_msg, call_state *st,
                         int64_t deadline, uint64_t (*progress)(void *), void *progress_ctx,
                         kt_error *err)
{
	kt_buf url, body, token_hdr;
	kt_http_resp resp;
	kt_code rc;

	kt_buf_init(&url, 4096);
	kt_buf_init(&body, KT_GRPC_MAX_MESSAGE + 5);
	kt_buf_init(&token_hdr, KT_ETCD_MAX_TOKEN + 16);

	int64_t left = remaining_ms(deadline);
	if (left < 0) {
		rc = kt_error_set(err, KT_ETRANSIENT, "%s at %s timed out", st->what, st->origin);
		goto out;
	}
	uint8_t prefix[5];
	kt_grpc_frame_prefix(prefix, (uint32_t)req_msg->len);
	if ((rc = kt_buf_addf(&url, err, "%s%s", endpoint, path)) ||
	    (rc = kt_buf_add(&body, prefix, 5, err)) ||
	    (rc = kt_buf_add(&body, req_msg->data, req_msg->len, err)))
		goto out;
	const char *headers[6];
	size_t nh = 0;
	headers[nh++] = "Content-Type: application/grpc";
	headers[nh++] = "TE: trailers";
	headers[nh++] = "Accept:";
	if (token) {
		if ((rc = kt_buf_addf(&token_hdr, err, "token: %s", token)))
			goto out;
		headers[nh++] = token_hdr.data;
	}
	headers[nh] = NULL;

	kt_http_req req = {
		.method = "POST",
		.url = url.data,
		.headers = headers,
		.body = body.data,
		.body_len = body.len,
		.on_header = on_header,
		.on_body = on_body,
		.ctx = st,
		.timeout_ms = left,
	};
	memset(&resp, 0, sizeof(resp));
	rc = kt_http_request(h, &req, &resp, err);
	uint64_t done = progress ? progress(progress_ctx) : st->reader.n_bytes;
	if ((rc == KT_ETRANSIENT || rc == KT_ECANCELED) && resp.body_bytes > 0)
		kt_error_wrap(err, "%s stream from %s ended early after %llu bytes", st->what,
		              st->origin, (unsigned long long)done);
	if (!rc)
		rc = finish_call(st, &resp, done, err);
out:
	explicit_bzero(body.data, body.len);
	explicit_bzero(token_hdr.data, token_hdr.len);
	kt_buf_release(&url);
	kt_buf_release(&body);
	kt_buf_release(&token_hdr);
	return rc;
}

static void call_init(call_state *st, const char *what, const char *origin,
                      kt_grpc_msg_fn on_msg, void *msg_ctx)
{
	memset(st, 0, sizeof(*st));
	st->what = what;
	st->origin = origin;
	st->on_msg = on_msg;
	st->msg_ctx = msg_ctx;
	kt_grpc_reader_init(&st->reader);
}

/* ------------------------------------------------------------------ */
/* Auth.Authenticate */

typedef struct auth_ctx {
	kt_buf token;
	uint64_t n_messages;
} auth_ctx;

static kt_code on_auth_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	auth_ctx *a = ctx;
	kt_etcd_auth_msg m;
	kt_code rc = kt_etcd_decode_auth_response(msg, n, &m, err);
	if (rc)
		return rc;
	if (++a->n_messages > 1)
		return kt_error_set(err, KT_EPROTO, "etcd sent more than one AuthenticateResponse");
	for (size_t i = 0; i < m.token_len; i++)
		if (m.token[i] < 0x21 || m.token[i] > 0x7e)
			return kt_error_set(err, KT_EPROTO,
			                    "etcd sent an auth token with a byte that cannot go in a "
			                    "header (0x%02x at offset %zu)", m.token[i], i);
	kt_buf_reset(&a->token);
	return kt_buf_add(&a->token, m.token, m.token_len, err);
}

/*
 * Authenticate user (name:password) and put the token in token_out.
 * *auth_disabled is set when etcd reports that auth is not enabled.
 */
static kt_code authenticate(kt_http *h, const char *endpoint, const char *origin,
                            const char *user, int64_t deadline, kt_buf *token_out,
                            int *auth_disabled, kt_error *err)
{
	const char *colon = strchr(user, ':');
	kt_buf name, msg;
	auth_ctx a;
	call_state st;
	kt_code rc;

	if (!colon || colon == user)
		return kt_error_set(err, KT_EUSAGE,
		                    "the etcd user must be given as NAME:PASSWORD (got no ':' or an "
		                    "empty name)");
	kt_buf_init(&name, 1024);
	kt_buf_init(&msg, 64 * 1024);
	kt_buf_init(&a.token, KT_ETCD_MAX_TOKEN);
	a.n_messages = 0;
	call_init(&st, "authentication", origin, on_auth_msg, &a);

	if ((rc = kt_buf_add(&name, user, (size_t)(colon - user), err)) ||
	    (rc = kt_etcd_encode_auth_request(&msg, name.data, colon + 1, err))) {
		if (rc == KT_ELIMIT)
			rc = kt_error_set(err, KT_EUSAGE, "the etcd user name or password is too long");
		goto out;
	}
	rc = grpc_call(h, endpoint, "/etcdserverpb.Auth/Authenticate", NULL, &msg, &st,
	               deadline, NULL, NULL, err);
	if (rc == KT_EREMOTE && st.grpc_status == GRPC_FAILED_PRECONDITION &&
	    strstr(st.grpc_message, "authentication is not enabled")) {
		*auth_disabled = 1;
		kt_error_clear(err);
		rc = KT_OK;
		goto out;
	}
	if (rc == KT_EAUTH)
		kt_error_wrap(err, "etcd user '%s'", name.data);
	if (rc)
		goto out;
	if (a.n_messages != 1 || a.token.len == 0) {
		rc = kt_error_set(err, KT_EPROTO, "authentication at %s returned no token", origin);
		goto out;
	}
	rc = kt_buf_add(token_out, a.token.data, a.token.len, err);
out:
	explicit_bzero(msg.data, msg.len);
	explicit_bzero(a.token.data, a.token.len);
	kt_buf_release(&name);
	kt_buf_release(&msg);
	kt_buf_release(&a.token);
	kt_grpc_reader_release(&st.reader);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Maintenance.Snapshot */

typedef struct snap_ctx {
	kt_etcd_snapshot_fn fn;
	void *ctx;
	kt_etcd_snapshot_info *info;
	EVP_MD_CTX *sha;    /* SHA-256 of every byte except the last 32 */
	uint8_t tail[32];   /* the last (up to) 32 bytes seen */
	size_t tail_len;
	int have_header;
} snap_ctx;

/* Hash lagging 32 bytes behind the stream so the trailer can be checked
 * without knowing in advance which message is the last. */
static kt_code hash_lagging(snap_ctx *s, const uint8_t *d, size_t n, kt_error *err)
{
	size_t total = s->tail_len + n;
	if (total <= sizeof(s->tail)) {
		memcpy(s->tail + s->tail_len, d, n);
		s->tail_len = total;
		return KT_OK;
	}
	size_t to_hash = total - sizeof(s->tail);
	size_t from_tail = to_hash < s->tail_len ? to_hash : s->tail_len;
	size_t from_d = to_hash - from_tail;
	if (!EVP_DigestUpdate(s->sha, s->tail, from_tail) || !EVP_DigestUpdate(s->sha, d, from_d))
		return kt_error_set(err, KT_ENOMEM, "SHA-256 update failed");
	memmove(s->tail, s->tail + from_tail, s->tail_len - from_tail);
	s->tail_len -= from_tail;
	memcpy(s->tail + s->tail_len, d + from_d, n - from_d);
	s->tail_len += n - from_d;
	return KT_OK;
}

static kt_code on_snapshot_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	snap_ctx *s = ctx;
	kt_etcd_snapshot_msg m;
	kt_code rc = kt_etcd_decode_snapshot(msg, n, &m, err);
	if (rc)
		return rc;
	kt_etcd_snapshot_info *info = s->info;
	info->n_messages++;
	if (m.has_header && !s->have_header) {
		s->have_header = 1;
		info->revision = m.header.revision;
		info->cluster_id = m.header.cluster_id;
		info->member_id = m.header.member_id;
		info->raft_term = m.header.raft_term;
	}
	if (m.version[0] && !info->version[0])
		memcpy(info->version, m.version, sizeof(info->version));
	if (m.blob_len == 0)
		return KT_OK;
	if ((rc = hash_lagging(s, m.blob, m.blob_len, err)))
		return rc;
	info->bytes += m.blob_len;
	return s->fn ? s->fn(s->ctx, m.blob, m.blob_len, m.remaining_bytes, err) : KT_OK;
}

static uint64_t snapshot_progress(void *ctx)
{
	return ((snap_ctx *)ctx)->info->bytes;
}

/* Finish the hashes: the file hash into info->sha256, trailer check. */
static kt_code finish_hash(snap_ctx *s, kt_error *err)
{
	uint8_t body_hash[32];
	unsigned int len = 0;
	EVP_MD_CTX *whole = EVP_MD_CTX_new();
	int ok = whole && EVP_MD_CTX_copy_ex(whole, s->sha) &&
	         EVP_DigestUpdate(whole, s->tail, s->tail_len) &&
	         EVP_DigestFinal_ex(whole, s->info->sha256, &len) &&
	         EVP_DigestFinal_ex(s->sha, body_hash, &len);
	EVP_MD_CTX_free(whole);
	if (!ok)
		return kt_error_set(err, KT_ENOMEM, "SHA-256 finalisation failed");
	s->info->trailer_ok = s->tail_len == sizeof(s->tail) &&
	                      !memcmp(body_hash, s->tail, sizeof(s->tail));
	return KT_OK;
}

static kt_code check_endpoint(const char *endpoint, kt_buf *out, kt_error *err)
{
	if (!endpoint || (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)))
		return kt_error_set(err, KT_EUSAGE, "etcd endpoint '%s' must start with http:// or "
		                    "https://", endpoint ? endpoint : "");
	const char *auth = strstr(endpoint, "://") + 3;
	size_t auth_len = strcspn(auth, "/?#");
	if (memchr(auth, '@', auth_len))
		return kt_error_set(err, KT_EUSAGE, "etcd endpoint must not carry credentials; pass "
		                    "--user NAME:PASSWORD instead");
	if (auth_len == 0)
		return kt_error_set(err, KT_EUSAGE, "etcd endpoint '%s' has no host", endpoint);
	if (auth[auth_len] && strspn(auth + auth_len, "/") != strlen(auth + auth_len))
		return kt_error_set(err, KT_EUSAGE, "etcd endpoint '%s' must not have a path "
		                    "(use e.g. https://127.0.0.1:2379)", endpoint);
	return kt_buf_add(out, endpoint, (size_t)(auth + auth_len - endpoint), err);
}

/* An open connection to one etcd member: checked endpoint, its origin for
 * messages, the HTTP handle and, with conn->user, the auth token (tok is
 * NULL when no token is to be sent).  Release with session_close. */
typedef struct session {
	kt_buf endpoint;
	kt_buf token;
	char origin[256];
	kt_http *h;
	const char *tok;
	int64_t deadline;    /* absolute kt_now_ms limit, 0 = none */
} session;

static void session_close(session *ss)
{
	explicit_bzero(ss->token.data, ss->token.len);
	kt_buf_release(&ss->token);
	kt_buf_release(&ss->endpoint);
	kt_http_free(ss->h);
	ss->h = NULL;
}

/* timeout_ms: the whole call (0 = none); stall_ms as kt_http_opts. */
static kt_code session_open(session *ss, const kt_etcd_conn *conn, int64_t timeout_ms,
                            int64_t stall_ms, kt_error *err)
{
	memset(ss, 0, sizeof(*ss));
	kt_buf_init(&ss->endpoint, 2048);
	kt_buf_init(&ss->token, KT_ETCD_MAX_TOKEN);
	kt_code rc = check_endpoint(conn->endpoint, &ss->endpoint, err);
	if (rc)
		return rc;
	kt_http_origin(ss->endpoint.data, ss->origin, sizeof(ss->origin));
	ss->deadline = timeout_ms > 0 ? kt_now_ms() + timeout_ms : 0;
	int tls = !strncmp(ss->endpoint.data, "https://", 8);
	kt_http_opts o = {
		.cacert = conn->cacert,
		.cert = conn->cert,
		.key = conn->key,
		.connect_timeout_ms = conn->connect_timeout_ms,
		.timeout_ms = timeout_ms,
		.stall_timeout_ms = stall_ms,
		.version = tls ? KT_HTTP_2TLS : KT_HTTP_2_PRIOR,
		.direct = 1,
		.unix_socket = conn->unix_socket,
		.cancel = conn->cancel,
	};
	if ((rc = kt_http_new(&ss->h, &o, err)))
		return rc;
	if (conn->user) {
		int disabled = 0;
		if ((rc = authenticate(ss->h, ss->endpoint.data, ss->origin, conn->user, ss->deadline,
		                       &ss->token, &disabled, err)))
			return rc;
		if (disabled)
			kt_log(KT_LOG_WARN, "etcd at %s has authentication disabled; ignoring --user",
			       ss->origin);
		else
			ss->tok = ss->token.data;
	}
	return KT_OK;
}

/* The stall limit of a streaming call: conn's, 60 s by default, none if negative. */
static int64_t stall_ms(const kt_etcd_conn *conn)
{
	if (conn->stall_timeout_ms == 0)
		return DEFAULT_STALL_MS;
	return conn->stall_timeout_ms > 0 ? conn->stall_timeout_ms : 0;
}

/* A small unary call: at most 10 s even when the caller allows more. */
static int64_t small_call_ms(const kt_etcd_conn *conn)
{
	return conn->timeout_ms > 0 && conn->timeout_ms < 10000 ? conn->timeout_ms : 10000;
}

kt_code kt_etcd_snapshot(const kt_etcd_conn *conn, kt_etcd_snapshot_fn fn, void *ctx,
                         kt_etcd_snapshot_info *info, kt_error *err)
{
	kt_etcd_snapshot_info local_info;
	kt_buf empty;
	session ss;
	call_state st;
	snap_ctx s;
	kt_code rc;

	if (!info)
		info = &local_info;
	memset(info, 0, sizeof(*info));
	memset(&s, 0, sizeof(s));
	kt_buf_init(&empty, 0);
	rc = session_open(&ss, conn, conn->timeout_ms, stall_ms(conn), err);
	call_init(&st, "snapshot", ss.origin, on_snapshot_msg, &s);
	if (rc)
		goto out;

	s.fn = fn;
	s.ctx = ctx;
	s.info = info;
	s.sha = EVP_MD_CTX_new();
	if (!s.sha || !EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL)) {
		rc = kt_error_set(err, KT_ENOMEM, "cannot set up SHA-256");
		goto out;
	}
	rc = grpc_call(ss.h, ss.endpoint.data, "/etcdserverpb.Maintenance/Snapshot", ss.tok, &empty,
	               &st, ss.deadline, snapshot_progress, &s, err);
	if (rc)
		goto out;
	if (info->bytes == 0) {
		rc = kt_error_set(err, KT_EPROTO, "snapshot stream from %s ended early after 0 bytes "
		                  "(etcd sent no data)", ss.origin);
		goto out;
	}
	if ((rc = finish_hash(&s, err)))
		goto out;
	if (!info->trailer_ok) {
		rc = kt_error_set(err, KT_ECORRUPT, "snapshot stream from %s failed its SHA-256 "
		                  "check after %llu bytes (the data is damaged: take a new snapshot)",
		                  ss.origin, (unsigned long long)info->bytes);
		goto out;
	}
	kt_log(KT_LOG_DEBUG, "etcd snapshot from %s: %llu bytes in %llu messages, revision %lld",
	       ss.origin, (unsigned long long)info->bytes, (unsigned long long)info->n_messages,
	       (long long)info->revision);
out:
	session_close(&ss);
	kt_grpc_reader_release(&st.reader);
	EVP_MD_CTX_free(s.sha);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Maintenance.Status */

typedef struct status_ctx {
	kt_etcd_status_msg *out;
	uint64_t n_messages;
} status_ctx;

static kt_code on_status_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	status_ctx *c = ctx;
	if (++c->n_messages > 1)
		return kt_error_set(err, KT_EPROTO, "etcd sent more than one StatusResponse");
	return kt_etcd_decode_status(msg, n, c->out, err);
}

kt_code kt_etcd_status(const kt_etcd_conn *conn, kt_etcd_status_msg *out, kt_error *err)
{
	kt_buf empty;
	session ss;
	call_state st;
	status_ctx sc = { out, 0 };

	memset(out, 0, sizeof(*out));
	kt_buf_init(&empty, 0);
	kt_code rc = session_open(&ss, conn, small_call_ms(conn), 0, err);
	call_init(&st, "status", ss.origin, on_status_msg, &sc);
	if (!rc)
		rc = grpc_call(ss.h, ss.endpoint.data, "/etcdserverpb.Maintenance/Status", ss.tok,
		               &empty, &st, ss.deadline, NULL, NULL, err);
	if (!rc && (!sc.n_messages || !out->has_header))
		rc = kt_error_set(err, KT_EPROTO, "status at %s: etcd sent no response header",
		                  ss.origin);
	session_close(&ss);
	kt_grpc_reader_release(&st.reader);
	return rc;
}

/* ------------------------------------------------------------------ */
/* KV.Range */

typedef struct range_ctx {
	kt_etcd_range_resp *out;
	uint64_t n_messages;
} range_ctx;

static kt_code on_range_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	range_ctx *c = ctx;
	if (++c->n_messages > 1)
		return kt_error_set(err, KT_EPROTO, "etcd sent more than one RangeResponse");
	return kt_etcd_decode_range(msg, n, c->out, err);
}

kt_code kt_etcd_range(const kt_etcd_conn *conn, const kt_etcd_range_req *req,
                      kt_etcd_range_resp *out, kt_error *err)
{
	kt_buf msg;
	session ss;
	call_state st;
	range_ctx rc_ctx = { out, 0 };
	kt_code rc;

	memset(out, 0, sizeof(*out));
	if (!req->key || req->key_len == 0)
		return kt_error_set(err, KT_EUSAGE, "an etcd range needs a key (for all keys use "
		                    "key \"\\0\" and range end \"\\0\")");
	if (req->limit < 0 || req->revision < 0)
		return kt_error_set(err, KT_EUSAGE, "an etcd range needs a limit and a revision of "
		                    "0 or more (got %lld and %lld)", (long long)req->limit,
		                    (long long)req->revision);
	kt_buf_init(&msg, KT_GRPC_MAX_MESSAGE);
	if ((rc = kt_etcd_encode_range_request(&msg, req, err))) {
		kt_buf_release(&msg);
		return kt_error_set(err, KT_EUSAGE, "the etcd range key and range end together are "
		                    "over %u bytes", KT_GRPC_MAX_MESSAGE);
	}
	rc = session_open(&ss, conn, conn->timeout_ms, stall_ms(conn), err);
	call_init(&st, "range", ss.origin, on_range_msg, &rc_ctx);
	if (!rc)
		rc = grpc_call(ss.h, ss.endpoint.data, "/etcdserverpb.KV/Range", ss.tok, &msg, &st,
		               ss.deadline, NULL, NULL, err);
	/* The reader refuses an oversize message after reading its prefix: say
	 * what to do about it rather than blame the peer. */
	if (rc == KT_EPROTO && st.reader.hdr_len == 5 && st.reader.msg_len > KT_GRPC_MAX_MESSAGE)
		rc = kt_error_set(err, KT_ELIMIT, "range at %s: etcd's answer is %lu bytes, over "
		                  "the limit of %u (ask for fewer keys with a limit, keys only or "
		                  "count only, and page on while etcd reports more)", ss.origin,
		                  (unsigned long)st.reader.msg_len, KT_GRPC_MAX_MESSAGE);
	if (!rc && (!rc_ctx.n_messages || !out->has_header))
		rc = kt_error_set(err, KT_EPROTO, "range at %s: etcd sent no response header",
		                  ss.origin);
	if (rc)
		kt_etcd_range_resp_release(out);
	session_close(&ss);
	kt_grpc_reader_release(&st.reader);
	kt_buf_release(&msg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Cluster.MemberList */

typedef struct member_list_ctx {
	kt_etcd_member *members;
	size_t n_members;
	kt_etcd_header header;
	uint64_t n_messages;
} member_list_ctx;

static kt_code on_member_list_msg(void *ctx, const uint8_t *msg, size_t n, kt_error *err)
{
	member_list_ctx *c = ctx;
	if (++c->n_messages > 1)
		return kt_error_set(err, KT_EPROTO, "etcd sent more than one MemberListResponse");
	return kt_etcd_decode_member_list(msg, n, &c->members, &c->n_members, &c->header, err);
}

kt_code kt_etcd_member_list(const kt_etcd_conn *conn, int linearizable, kt_etcd_member **out,
                            size_t *n_out, kt_etcd_header *hdr_out, kt_error *err)
{
	kt_buf msg;
	session ss;
	call_state st;
	member_list_ctx mc;
	kt_code rc;

	*out = NULL;
	*n_out = 0;
	memset(&mc, 0, sizeof(mc));
	kt_buf_init(&msg, 16);
	if ((rc = kt_etcd_encode_member_list_request(&msg, linearizable, err)))
		return rc;
	rc = session_open(&ss, conn, small_call_ms(conn), 0, err);
	call_init(&st, "member list", ss.origin, on_member_list_msg, &mc);
	if (!rc)
		rc = grpc_call(ss.h, ss.endpoint.data, "/etcdserverpb.Cluster/MemberList", ss.tok,
		               &msg, &st, ss.deadline, NULL, NULL, err);
	if (!rc && !mc.n_messages)
		rc = kt_error_set(err, KT_EPROTO, "member list at %s: etcd sent no response",
		                  ss.origin);
	if (rc) {
		kt_etcd_member_list_free(mc.members, mc.n_members);
	} else {
		*out = mc.members;
		*n_out = mc.n_members;
		if (hdr_out)
			*hdr_out = mc.header;
	}
	session_close(&ss);
	kt_grpc_reader_release(&st.reader);
	kt_buf_release(&msg);
	return rc;
}
