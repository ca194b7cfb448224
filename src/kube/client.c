/*
 * client.c - one client per API server: setup (credentials, inline PEM,
 * the kt_http handle) and kube_do, the request core every verb goes
 * through: credentials, retries with backoff, the HTTP status -> kt_code
 * mapping and messages that name the verb and the object.
 *
 * Invariants:
 *   1. The token lives in c->token only; it is put into an Authorization
 *      header built for one request and wiped afterwards, registered with
 *      kt_log_add_secret, and a Status message that quotes it is withheld.
 *   2. Inline PEM (certificate-authority-data, client-*-data, an exec
 *      plugin's certificate) reaches libcurl as a path to an anonymous
 *      memory file (memfd_create, /proc/self/fd/N), so key material never
 *      touches a disk; if that is unavailable, a 0600 temp file that
 *      kt_kube_client_free unlinks.
 *   3. Response bodies are collected up to a limit (opts.max_response by
 *      default) and wiped before they are freed (they may hold Secrets).
 *   4. Messages name the server's origin, the method and the path (never
 *      the query), and the config source.
 *   5. Retries: 429 for every request (the server did not act on it);
 *      408/5xx and connection failures only for idempotent ones, never
 *      after a streamed byte reached the caller.  At most KUBE_ATTEMPTS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kube_int.h"

#define DEFAULT_TIMEOUT_MS 30000
#define KUBE_ATTEMPTS 5
#define ERROR_BODY_MAX (64u << 10)

/* ------------------------------------------------------------------ */
/* Setup */

static char *dup_or_null(const char *s)
{
	return s ? kt_xstrdup(s) : NULL;
}

static char *dup_mem(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = kt_xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static char **dup_vec(char *const *v, size_t n)
{
	char **d = kt_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		d[i] = kt_xstrdup(v[i]);
	return d;
}

static void config_copy(kt_kube_config *d, const kt_kube_config *s)
{
	kt_kube_config_init(d);
	d->source = dup_or_null(s->source ? s->source : "kube config");
	d->server = dup_or_null(s->server);
	d->context = dup_or_null(s->context);
	d->cluster = dup_or_null(s->cluster);
	d->user = dup_or_null(s->user);
	d->namespace = dup_or_null(s->namespace ? s->namespace : "default");
	d->ca_file = dup_or_null(s->ca_file);
	d->ca_pem = dup_mem(s->ca_pem, s->ca_pem_len);
	d->ca_pem_len = s->ca_pem_len;
	d->cert_file = dup_or_null(s->cert_file);
	d->cert_pem = dup_mem(s->cert_pem, s->cert_pem_len);
	d->cert_pem_len = s->cert_pem_len;
	d->key_file = dup_or_null(s->key_file);
	d->key_pem = dup_mem(s->key_pem, s->key_pem_len);
	d->key_pem_len = s->key_pem_len;
	d->token = dup_or_null(s->token);
	d->token_file = dup_or_null(s->token_file);
	if (s->exec) {
		kt_kube_exec *x = kt_xcalloc(1, sizeof(*x));
		x->api_version = dup_or_null(s->exec->api_version);
		x->command = dup_or_null(s->exec->command);
		x->args = dup_vec(s->exec->args, s->exec->n_args);
		x->n_args = s->exec->n_args;
		x->env = dup_vec(s->exec->env, s->exec->n_env);
		x->n_env = s->exec->n_env;
		x->install_hint = dup_or_null(s->exec->install_hint);
		x->provide_cluster_info = s->exec->provide_cluster_info;
		d->exec = x;
	}
}

static kt_code write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KT_EIO;
		p += w;
		n -= (size_t)w;
	}
	return KT_OK;
}

void kube_pem_clear(kt_kube *c, int slot)
{
	if (c->pem_fd[slot] >= 0)
		close(c->pem_fd[slot]);
	c->pem_fd[slot] = -1;
	if (c->pem_tmp[slot]) {
		unlink(c->pem_tmp[slot]);
		free(c->pem_tmp[slot]);
		c->pem_tmp[slot] = NULL;
	}
	free(c->pem_path[slot]);
	c->pem_path[slot] = NULL;
}

kt_code kube_pem_to_path(kt_kube *c, int slot, const char *pem, size_t len, const char *what,
                         kt_error *err)
{
	char path[64];
	kube_pem_clear(c, slot);
	int fd = memfd_create("kontinuity-kube-pem", MFD_CLOEXEC);
	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (write_all(fd, pem, len) == KT_OK && access(path, R_OK) == 0) {
			c->pem_fd[slot] = fd;
			c->pem_path[slot] = kt_xstrdup(path);
			return KT_OK;
		}
		close(fd);
	}
	/* No memfd or no /proc: a private temp file, removed by client_free. */
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	size_t n = strlen(tmp) + 32;
	char *tpl = kt_xmalloc(n);
	snprintf(tpl, n, "%s/kontinuity-kube-XXXXXX", tmp);
	fd = mkstemp(tpl); /* mode 0600 */
	if (fd < 0) {
		int e = errno;
		free(tpl);
		return kt_error_sys(err, kt_code_from_errno(e), e, "%s: cannot store %s for libcurl",
		                    c->cfg.source, what);
	}
	if (write_all(fd, pem, len) != KT_OK) {
		int e = errno;
		close(fd);
		unlink(tpl);
		free(tpl);
		return kt_error_sys(err, KT_EIO, e, "%s: cannot store %s for libcurl", c->cfg.source,
		                    what);
	}
	close(fd);
	c->pem_tmp[slot] = tpl;
	c->pem_path[slot] = kt_xstrdup(tpl);
	return KT_OK;
}

/* A referenced file must be readable now: fail naming the field. */
static kt_code check_readable(const kt_kube *c, const char *path, const char *field,
                              const char *owner_kind, const char *owner, kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "%s: cannot read %s '%s' of %s '%s'",
		                    c->cfg.source, field, path, owner_kind, owner ? owner : "(none)");
	}
	close(fd);
	return KT_OK;
}

/* (Re)read the token file into *out (malloc'd, cleaned). */
static kt_code read_token_file(const kt_kube *c, char **out, kt_error *err)
{
	kt_buf b;
	kt_buf_init(&b, KT_KUBE_MAX_TOKEN);
	kt_code rc = kube_read_file(c->cfg.token_file, KT_KUBE_MAX_TOKEN, "token file", &b, err);
	if (rc == KT_OK) {
		kt_log_add_secret(b.data);
		if (kube_token_clean(b.data) != 0) {
			rc = kt_error_set(err, KT_EUSAGE, "%s: token file '%s' of user '%s' is empty or "
			                  "holds blanks or control characters inside the token",
			                  c->cfg.source, c->cfg.token_file,
			                  c->cfg.user ? c->cfg.user : "(service account)");
		} else {
			kt_log_add_secret(b.data);
			*out = kt_xstrdup(b.data);
		}
	} else {
		kt_error_wrap(err, "%s", c->cfg.source);
	}
	explicit_bzero(b.data, b.len);
	kt_buf_release(&b);
	return rc;
}

kt_code kube_http_setup(kt_kube *c, kt_error *err)
{
	/* An exec plugin's certificate (slots 3, 4) wins over the config's. */
	int exec_cert = c->pem_path[3] != NULL;
	kt_http_opts ho = {
		.cacert = c->pem_path[0],
		.cert = exec_cert ? c->pem_path[3] : c->pem_path[1],
		.key = exec_cert ? c->pem_path[4] : c->pem_path[2],
		.connect_timeout_ms = c->opts.connect_timeout_ms,
		.timeout_ms = c->opts.timeout_ms,
		.version = KT_HTTP_2TLS,
		.cancel = c->opts.cancel,
	};
	kt_http *h = NULL;
	kt_code rc = kt_http_new(&h, &ho, err);
	if (rc)
		return rc;
	kt_http_free(c->http);
	c->http = h;
	return KT_OK;
}

kt_code kt_kube_client_new(kt_kube **out, const kt_kube_config *cfg, const kt_kube_opts *opts,
                           kt_error *err)
{
	if (!cfg || !cfg->server)
		return kt_error_set(err, KT_EUSAGE, "kube client: no server in the config");
	kt_kube *c = kt_xcalloc(1, sizeof(*c));
	kt_code rc = KT_OK;

	for (int i = 0; i < KUBE_N_PEM; i++)
		c->pem_fd[i] = -1;
	config_copy(&c->cfg, cfg);
	if (opts)
		c->opts = *opts;
	if (c->opts.timeout_ms <= 0)
		c->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (c->opts.max_response == 0)
		c->opts.max_response = KT_KUBE_MAX_RESPONSE;
	kt_http_origin(c->cfg.server, c->origin, sizeof(c->origin));
	const char *cl = c->cfg.cluster ? c->cfg.cluster : "(in-cluster)";
	const char *us = c->cfg.user ? c->cfg.user : "(service account)";

	if (c->cfg.ca_pem)
		rc = kube_pem_to_path(c, 0, c->cfg.ca_pem, c->cfg.ca_pem_len,
		                      "certificate-authority-data", err);
	else if (c->cfg.ca_file && !(rc = check_readable(c, c->cfg.ca_file, "certificate-authority",
	                                                   "cluster", cl, err)))
		c->pem_path[0] = kt_xstrdup(c->cfg.ca_file);
	if (rc == KT_OK && c->cfg.cert_pem)
		rc = kube_pem_to_path(c, 1, c->cfg.cert_pem, c->cfg.cert_pem_len,
		                      "client-certificate-data", err);
	else if (rc == KT_OK && c->cfg.cert_file &&
	         !(rc = check_readable(c, c->cfg.cert_file, "client-certificate", "user", us, err)))
		c->pem_path[1] = kt_xstrdup(c->cfg.cert_file);
	if (rc == KT_OK && c->cfg.key_pem)
		rc = kube_pem_to_path(c, 2, c->cfg.key_pem, c->cfg.key_pem_len, "client-key-data",
		                      err);
	else if (rc == KT_OK && c->cfg.key_file &&
	         !(rc = check_readable(c, c->cfg.key_file, "client-key", "user", us, err)))
		c->pem_path[2] = kt_xstrdup(c->cfg.key_file);

	if (rc == KT_OK && c->cfg.token) {
		kt_log_add_secret(c->cfg.token);
		c->token = kt_xstrdup(c->cfg.token);
	} else if (rc == KT_OK && c->cfg.token_file) {
		rc = read_token_file(c, &c->token, err);
	}
	if (rc == KT_OK && (c->token || c->cfg.exec) && !strncmp(c->cfg.server, "http://", 7))
		rc = kt_error_set(err, KT_EUSAGE, "%s: server %s is http://: refusing to send a token "
		                  "in clear text (use https://)", c->cfg.source, c->origin);
	if (rc == KT_OK)
		rc = kube_http_setup(c, err);
	if (rc) {
		kt_kube_client_free(c);
		return rc;
	}
	*out = c;
	return KT_OK;
}

void kt_kube_client_free(kt_kube *c)
{
	if (!c)
		return;
	kt_http_free(c->http);
	for (int i = 0; i < KUBE_N_PEM; i++)
		kube_pem_clear(c, i);
	if (c->token)
		kube_wipe_free(c->token, strlen(c->token));
	kt_kube_config_release(&c->cfg);
	free(c->res);
	json_decref(c->disc_docs);
	free(c);
}

const kt_kube_config *kt_kube_client_config(const kt_kube *c)
{
	return &c->cfg;
}

/* ------------------------------------------------------------------ */
/* One exchange */

typedef struct xfer {
	kt_buf buf;           /* collected body (error bodies, or all when not streaming) */
	const kube_call *k;
	long status;
	int streaming;        /* 2xx and k->stream: body goes there */
} xfer;

static kt_code on_header(void *ctx, const char *name, const char *value, int is_trailer,
                         kt_error *err)
{
	xfer *x = ctx;
	(void)is_trailer;
	(void)err;
	if (!strcmp(name, ":status")) {
		x->status = strtol(value, NULL, 10);
		x->streaming = x->k->stream && x->status >= 200 && x->status <= 299;
		if (!x->streaming && x->k->stream)
			x->buf.max = ERROR_BODY_MAX; /* a failed watch: just the Status */
	}
	return KT_OK;
}

static kt_code on_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	xfer *x = ctx;
	if (x->streaming)
		return x->k->stream(x->k->stream_ctx, data, n, err);
	if (x->buf.len + n > x->buf.max) {
		int plen = (int)strcspn(x->k->path, "?");
		return kt_error_set(err, KT_ELIMIT, "the response to %s %.*s is larger than %zu bytes%s",
		                    x->k->method, plen > 200 ? 200 : plen, x->k->path, x->buf.max,
		                    x->k->verb && !strcmp(x->k->verb, "list")
		                        ? " (list with a smaller page limit)" : "");
	}
	return kt_buf_add(&x->buf, data, n, err);
}

typedef struct retry_hdr {
	xfer *x;
	int64_t retry_after_ms;
} retry_hdr;

static kt_code on_header_retry(void *ctx, const char *name, const char *value, int is_trailer,
                               kt_error *err)
{
	retry_hdr *r = ctx;
	if (!strcmp(name, "retry-after")) {
		char *end;
		long v = strtol(value, &end, 10);
		if (end != value && v >= 0)
			r->retry_after_ms = (int64_t)(v > 30 ? 30 : v) * 1000;
	}
	return on_header(r->x, name, value, is_trailer, err);
}

static kt_code body_fwd(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	return on_body(((retry_hdr *)ctx)->x, data, n, err);
}

static kt_code exchange(kt_kube *c, const kube_call *k, xfer *x, retry_hdr *rh, kt_error *err)
{
	kt_buf url, auth, ctype, accept;
	kt_http_resp resp;
	kt_code rc;
	const char *headers[4] = { "Accept: application/json", NULL, NULL, NULL };
	int nh = 1;

	kt_buf_init(&url, KT_BUF_UNLIMITED);
	kt_buf_init(&auth, KT_BUF_UNLIMITED);
	kt_buf_init(&ctype, KT_BUF_UNLIMITED);
	kt_buf_init(&accept, KT_BUF_UNLIMITED);
	if (k->accept) {
		kt_buf_addf(&accept, NULL, "Accept: %s", k->accept);
		headers[0] = accept.data;
	}
	kt_buf_addf(&url, NULL, "%s%s", c->cfg.server, k->path);
	if (c->token) {
		kt_buf_addf(&auth, NULL, "Authorization: Bearer %s", c->token);
		headers[nh++] = auth.data;
	}
	if (k->content_type) {
		kt_buf_addf(&ctype, NULL, "Content-Type: %s", k->content_type);
		headers[nh++] = ctype.data;
	}
	kt_http_req req = {
		.method = k->method,
		.url = url.data,
		.headers = headers,
		.body = k->body,
		.body_len = k->body_len,
		.on_header = on_header_retry,
		.on_body = body_fwd,
		.ctx = rh,
		.timeout_ms = k->timeout_ms,
	};
	memset(&resp, 0, sizeof(resp));
	rc = kt_http_request(c->http, &req, &resp, err);
	explicit_bzero(auth.data, auth.len);
	kt_buf_release(&auth);
	kt_buf_release(&url);
	kt_buf_release(&ctype);
	kt_buf_release(&accept);
	if (!x->status)
		x->status = resp.status;
	if (rc == KT_ETLS && err) {
		/* kt_http's hint names CLI flags; ours names the kubeconfig fields. */
		char *hint = strstr(err->msg, " (pass --");
		if (hint)
			*hint = '\0';
		kt_buf msg;
		kt_buf_init(&msg, KT_BUF_UNLIMITED);
		kt_buf_addf(&msg, NULL, "%s (check certificate-authority(-data) of cluster '%s' and "
		            "client-certificate/client-key(-data) of user '%s')", err->msg,
		            c->cfg.cluster ? c->cfg.cluster : "(in-cluster)",
		            c->cfg.user ? c->cfg.user : "(service account)");
		kt_error_set(err, KT_ETLS, "%s", msg.data);
		kt_buf_release(&msg);
	}
	if (rc && rc != KT_ELIMIT && !(x->streaming && k->streamed && *k->streamed))
		kt_error_wrap(err, "%s", c->cfg.source);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Status -> error */

/* Copy s into out as printable text, at most outlen-1 bytes. */
static void printable(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 1 < outlen; s++)
		out[o++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
	out[o] = '\0';
}

/* If the bearer token is a JWT whose exp lies in the past, say when it
 * expired into out (else out[0] = 0).  The token is not verified: this
 * only explains a 401 the server already gave. */
static void jwt_expired(const char *tok, char *out, size_t outlen)
{
	out[0] = '\0';
	const char *d1 = tok ? strchr(tok, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d2 || d2 - d1 - 1 > 8192)
		return;
	size_t n = (size_t)(d2 - d1 - 1);
	char *b = kt_xmalloc(n + 1), *dec = NULL;
	size_t dl = 0;
	for (size_t i = 0; i < n; i++)
		b[i] = d1[1 + i] == '-' ? '+' : d1[1 + i] == '_' ? '/' : d1[1 + i];
	if (kt_base64_decode(b, n, &dec, &dl) == 0) {
		json_t *j = json_loadb(dec, dl, 0, NULL);
		json_t *exp = json_object_get(j, "exp");
		if (json_is_integer(exp) && json_integer_value(exp) * 1000 < kube_wall_ms()) {
			time_t t = (time_t)json_integer_value(exp);
			struct tm tm;
			char when[40] = "?";
			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			snprintf(out, outlen, "%s", when);
		}
		json_decref(j);
		kube_wipe_free(dec, dl);
	}
	kube_wipe_free(b, n + 1);
}

/* "configmaps "x" in namespace "ns"" for messages. */
static void object_words(const kube_call *k, char *out, size_t outlen)
{
	const kt_kube_target *t = k->t;
	char grp[160] = "";
	if (t && t->group && t->group[0])
		snprintf(grp, sizeof(grp), ".%.150s", t->group);
	if (!t) {
		snprintf(out, outlen, "%.200s", k->path);
		return;
	}
	size_t o = (size_t)snprintf(out, outlen, "%.100s%s", t->resource ? t->resource : "?", grp);
	if (o < outlen && t->name)
		o += (size_t)snprintf(out + o, outlen - o, " \"%.253s\"", t->name);
	if (o < outlen && t->namespace)
		snprintf(out + o, outlen - o, " in namespace \"%.63s\"", t->namespace);
	else if (o < outlen && !t->name)
		snprintf(out + o, outlen - o, " in all namespaces");
}

static kt_code status_error(kt_kube *c, const kube_call *k, long status, const kt_buf *body,
                            kt_error *err)
{
	char msg[300] = "", reason[64] = "", hintbuf[300] = "", exp[48];
	json_t *j = json_loadb(body->data, body->len, 0, NULL);
	if (json_is_object(j)) {
		printable(msg, sizeof(msg), json_string_value(json_object_get(j, "message")));
		printable(reason, sizeof(reason), json_string_value(json_object_get(j, "reason")));
	}
	json_decref(j);
	if (c->token && strstr(msg, c->token))
		snprintf(msg, sizeof(msg), "(message withheld: it quotes the token)");
	if (!msg[0])
		snprintf(msg, sizeof(msg), "no Status message");

	kt_code code;
	const char *user = c->cfg.user ? c->cfg.user : "(service account)";
	const char *verb = k->verb ? k->verb : "request";
	if (status == 401) {
		code = KT_EAUTH;
		jwt_expired(c->token, exp, sizeof(exp));
		if (exp[0])
			snprintf(hintbuf, sizeof(hintbuf), " (the token of user '%s' in %s expired at %s: "
			         "get a new token)", user, c->cfg.source, exp);
		else
			snprintf(hintbuf, sizeof(hintbuf), " (the server did not accept the credentials of "
			         "user '%s' in %s: check its token or client certificate)", user,
			         c->cfg.source);
	} else if (status == 403) {
		code = KT_EAUTH;
		snprintf(hintbuf, sizeof(hintbuf), " (user '%s' of %s lacks RBAC permission to %s "
		         "this: grant it with a Role or ClusterRole)", user, c->cfg.source, verb);
		if (!k->verb)
			snprintf(hintbuf, sizeof(hintbuf), " (user '%s' of %s lacks RBAC permission for "
			         "this request)", user, c->cfg.source);
	} else if (status == 404) {
		code = KT_ENOTFOUND;
	} else if (status == 409) {
		code = KT_EEXIST;
		if (strcmp(reason, "AlreadyExists"))
			snprintf(hintbuf, sizeof(hintbuf), " (the object changed since it was read: read "
			         "it again and retry)");
	} else if (status == 410) {
		code = KT_EREMOTE;
		snprintf(hintbuf, sizeof(hintbuf), " (the server no longer keeps that version: %s "
		         "again from the start)", !strcmp(verb, "watch") ? "list and watch" : "list");
	} else if (status == 400 || status == 422) {
		code = KT_EUSAGE;
	} else if (status == 408 || status == 429 || status >= 500) {
		code = KT_ETRANSIENT;
	} else {
		code = KT_EREMOTE;
	}
	int plen = (int)strcspn(k->path, "?");
	if (plen > 200)
		plen = 200;
	if (!k->verb) {
		kt_error_set(err, code, "kube-apiserver %s: %s %.*s: %ld%s%s%s: %s%s", c->origin,
		             k->method, plen, k->path, status, reason[0] ? " (" : "", reason,
		             reason[0] ? ")" : "", msg, hintbuf);
	} else {
		char obj[400];
		object_words(k, obj, sizeof(obj));
		kt_error_set(err, code, "cannot %s %s: %ld%s%s%s: %s%s [kube-apiserver %s: %s %.*s]",
		             k->verb, obj, status, reason[0] ? " (" : "", reason, reason[0] ? ")" : "",
		             msg, hintbuf, c->origin, k->method, plen, k->path);
	}
	if (err)
		err->status = status;
	return code;
}

/* ------------------------------------------------------------------ */
/* The request core */

/* Sleep ms, waking early (KT_ECANCELED) when the caller cancels. */
static kt_code nap(kt_kube *c, int64_t ms, kt_error *err)
{
	int64_t end = kt_now_ms() + ms;
	for (;;) {
		if (c->opts.cancel && *c->opts.cancel)
			return kt_error_set(err, KT_ECANCELED, "interrupted while waiting to retry");
		int64_t left = end - kt_now_ms();
		if (left <= 0)
			return KT_OK;
		struct timespec ts = { 0, (left > 50 ? 50 : left) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static int64_t backoff_ms(int attempt)
{
	int64_t ms = 200LL << attempt; /* 200 ms, 400, 800, 1.6 s ... */
	if (ms > 5000)
		ms = 5000;
	return ms / 2 + (int64_t)(((unsigned)rand()) % (unsigned)(ms / 2 + 1));
}

kt_code kube_do(kt_kube *c, const kube_call *k, json_t **out, long *status_out, kt_error *err)
{
	xfer x;
	kt_code rc = KT_OK;
	int auth_retried = 0;

	memset(&x, 0, sizeof(x));
	x.k = k;
	kt_buf_init(&x.buf, k->max_body ? k->max_body : c->opts.max_response);
	for (int attempt = 0;; attempt++) {
		retry_hdr rh = { .x = &x, .retry_after_ms = -1 };
		x.status = 0;
		x.streaming = 0;
		x.buf.max = k->max_body ? k->max_body : c->opts.max_response;
		explicit_bzero(x.buf.data, x.buf.len);
		kt_buf_reset(&x.buf);
		rc = kube_exec_ensure(c, 0, err);
		if (rc)
			break;
		rc = exchange(c, k, &x, &rh, err);
		int streamed = k->streamed && *k->streamed;
		if (rc) {
			if (rc == KT_ETRANSIENT && k->idempotent && !streamed && attempt + 1 < KUBE_ATTEMPTS) {
				kt_log(KT_LOG_DEBUG, "kube %s %s: %s; retrying", k->method, c->origin,
				       err ? err->msg : "transient failure");
				if ((rc = nap(c, backoff_ms(attempt), err)))
					break;
				continue;
			}
			break;
		}
		if (x.status == 401 && !auth_retried) {
			auth_retried = 1;
			if (c->cfg.exec) {
				/* The plugin's credential may have been revoked early: run it again. */
				if ((rc = kube_exec_ensure(c, 1, err)))
					break;
				attempt--;
				continue;
			}
			if (c->cfg.token_file) {
				/* Projected service-account tokens rotate: re-read the file once. */
				char *fresh = NULL;
				kt_error e;
				if (read_token_file(c, &fresh, &e) == KT_OK && strcmp(fresh, c->token)) {
					kube_wipe_free(c->token, strlen(c->token));
					c->token = fresh;
					attempt--;
					continue;
				}
				if (fresh)
					kube_wipe_free(fresh, strlen(fresh));
			}
		}
		int retry = x.status == 429 ||
		            (k->idempotent && (x.status == 408 || x.status >= 500));
		if (retry && !streamed && attempt + 1 < KUBE_ATTEMPTS) {
			int64_t ms = rh.retry_after_ms >= 0 ? rh.retry_after_ms : backoff_ms(attempt);
			kt_log(KT_LOG_DEBUG, "kube %s %s: HTTP %ld; retrying in %lld ms", k->method,
			       c->origin, x.status, (long long)ms);
			if ((rc = nap(c, ms, err)))
				break;
			continue;
		}
		break;
	}
	if (status_out)
		*status_out = x.status;
	if (rc == KT_OK && (x.status < 200 || x.status > 299))
		rc = status_error(c, k, x.status, &x.buf, err);
	if (rc == KT_OK && out && !k->stream) {
		json_error_t je;
		json_t *j = x.buf.len || !strcmp(k->method, "GET")
		                ? json_loadb(x.buf.data, x.buf.len, 0, &je) : json_object();
		if (!json_is_object(j)) {
			int plen = (int)strcspn(k->path, "?");
			rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: %s %.*s: %ld answer is not a "
			                  "JSON object%s%s (is %s a Kubernetes API server?)", c->origin,
			                  k->method, plen > 200 ? 200 : plen, k->path, x.status,
			                  j ? "" : ": ", j ? "" : je.text, c->origin);
			json_decref(j);
		} else {
			*out = j;
		}
	}
	explicit_bzero(x.buf.data, x.buf.len);
	kt_buf_release(&x.buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Raw GET */

static int valid_path(const char *path)
{
	if (!path || path[0] != '/' || strlen(path) > 2048)
		return 0;
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

kt_code kt_kube_get(kt_kube *c, const char *path, json_t **out, kt_error *err)
{
	if (!valid_path(path))
		return kt_error_set(err, KT_EUSAGE, "kube GET: path '%.200s' must start with '/' and "
		                    "hold no blanks or control characters", path ? path : "");
	kube_call k = { .method = "GET", .path = path, .idempotent = 1 };
	return kube_do(c, &k, out, NULL, err);
}
