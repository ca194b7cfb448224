/*
 * client.c - GET against the Kubernetes API over kt_http, the HTTP status
 * -> kt_code mapping, and the typed helpers (Secret data, namespace UID).
 *
 * Invariants:
 *   1. The token lives in c->token only; it is put into an Authorization
 *      header built for one request and wiped afterwards, registered with
 *      kt_log_add_secret, and a Status message that quotes it is withheld.
 *   2. Inline PEM (certificate-authority-data, client-*-data) reaches
 *      libcurl as a path to an anonymous memory file (memfd_create,
 *      /proc/self/fd/N), so key material never touches a disk; if that is
 *      unavailable, a 0600 temp file that kt_kube_client_free unlinks.
 *   3. Response bodies are collected up to opts.max_response bytes, wiped
 *      before they are freed (they may hold Secret data).
 *   4. Messages name the server's origin, the method and the path (never
 *      the query), and the config source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../http/http.h"
#include "kube_int.h"

#define DEFAULT_TIMEOUT_MS 30000
#define N_PEM 3

struct kt_kube {
	kt_kube_config cfg;   /* deep copy of the caller's */
	kt_kube_opts opts;
	kt_http *http;
	char *token;          /* current bearer token or NULL */
	int pem_fd[N_PEM];    /* memory files holding inline PEM, or -1 */
	char *pem_tmp[N_PEM]; /* fallback temp files to unlink, or NULL */
	char origin[256];
};

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

/* Put PEM bytes where libcurl can open them by path; *path_out is malloc'd. */
static kt_code pem_to_path(kt_kube *c, int slot, const char *pem, size_t len, const char *what,
                           char **path_out, kt_error *err)
{
	char path[64];
	int fd = memfd_create("kontinuity-kube-pem", MFD_CLOEXEC);
	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (write_all(fd, pem, len) == KT_OK && access(path, R_OK) == 0) {
			c->pem_fd[slot] = fd;
			*path_out = kt_xstrdup(path);
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
	*path_out = kt_xstrdup(tpl);
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

kt_code kt_kube_client_new(kt_kube **out, const kt_kube_config *cfg, const kt_kube_opts *opts,
                           kt_error *err)
{
	if (!cfg || !cfg->server)
		return kt_error_set(err, KT_EUSAGE, "kube client: no server in the config");
	kt_kube *c = kt_xcalloc(1, sizeof(*c));
	char *ca = NULL, *cert = NULL, *key = NULL;
	kt_code rc = KT_OK;

	for (int i = 0; i < N_PEM; i++)
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
		rc = pem_to_path(c, 0, c->cfg.ca_pem, c->cfg.ca_pem_len, "certificate-authority-data",
		                 &ca, err);
	else if (c->cfg.ca_file && !(rc = check_readable(c, c->cfg.ca_file, "certificate-authority",
	                                                   "cluster", cl, err)))
		ca = kt_xstrdup(c->cfg.ca_file);
	if (rc == KT_OK && c->cfg.cert_pem)
		rc = pem_to_path(c, 1, c->cfg.cert_pem, c->cfg.cert_pem_len,
		                 "client-certificate-data", &cert, err);
	else if (rc == KT_OK && c->cfg.cert_file &&
	         !(rc = check_readable(c, c->cfg.cert_file, "client-certificate", "user", us, err)))
		cert = kt_xstrdup(c->cfg.cert_file);
	if (rc == KT_OK && c->cfg.key_pem)
		rc = pem_to_path(c, 2, c->cfg.key_pem, c->cfg.key_pem_len, "client-key-data", &key,
		                 err);
	else if (rc == KT_OK && c->cfg.key_file &&
	         !(rc = check_readable(c, c->cfg.key_file, "client-key", "user", us, err)))
		key = kt_xstrdup(c->cfg.key_file);

	if (rc == KT_OK && c->cfg.token) {
		kt_log_add_secret(c->cfg.token);
		c->token = kt_xstrdup(c->cfg.token);
	} else if (rc == KT_OK && c->cfg.token_file) {
		rc = read_token_file(c, &c->token, err);
	}
	if (rc == KT_OK && c->token && !strncmp(c->cfg.server, "http://", 7))
		rc = kt_error_set(err, KT_EUSAGE, "%s: server %s is http://: refusing to send a token "
		                  "in clear text (use https://)", c->cfg.source, c->origin);
	if (rc == KT_OK) {
		kt_http_opts ho = {
			.cacert = ca,
			.cert = cert,
			.key = key,
			.connect_timeout_ms = c->opts.connect_timeout_ms,
			.timeout_ms = c->opts.timeout_ms,
			.version = KT_HTTP_2TLS,
			.cancel = c->opts.cancel,
		};
		rc = kt_http_new(&c->http, &ho, err);
	}
	free(ca);
	free(cert);
	free(key);
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
	for (int i = 0; i < N_PEM; i++) {
		if (c->pem_fd[i] >= 0)
			close(c->pem_fd[i]);
		if (c->pem_tmp[i]) {
			unlink(c->pem_tmp[i]);
			free(c->pem_tmp[i]);
		}
	}
	if (c->token)
		kube_wipe_free(c->token, strlen(c->token));
	kt_kube_config_release(&c->cfg);
	free(c);
}

const kt_kube_config *kt_kube_client_config(const kt_kube *c)
{
	return &c->cfg;
}

/* ------------------------------------------------------------------ */
/* GET */

typedef struct body_ctx {
	kt_buf buf;
	const char *path;
} body_ctx;

static kt_code on_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	body_ctx *b = ctx;
	if (b->buf.len + n > b->buf.max)
		return kt_error_set(err, KT_ELIMIT, "the response to GET %.200s is larger than %zu bytes",
		                    b->path, b->buf.max);
	return kt_buf_add(&b->buf, data, n, err);
}

static int valid_path(const char *path)
{
	if (!path || path[0] != '/' || strlen(path) > 2048)
		return 0;
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

/* Copy s into out as printable text, at most outlen-1 bytes. */
static void printable(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 1 < outlen; s++)
		out[o++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
	out[o] = '\0';
}

/* Turn a non-2xx answer into an error quoting the Status message. */
static kt_code status_error(kt_kube *c, const char *path, long status, const kt_buf *body,
                            kt_error *err)
{
	char msg[300] = "", reason[64] = "";
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

	int plen = (int)strcspn(path, "?");
	if (plen > 200)
		plen = 200;
	kt_code code;
	const char *hint = "";
	char hintbuf[300];
	const char *user = c->cfg.user ? c->cfg.user : "(service account)";
	if (status == 401) {
		code = KT_EAUTH;
		snprintf(hintbuf, sizeof(hintbuf), " (the server did not accept the credentials of user "
		         "'%s' in %s: check its token or client certificate)", user, c->cfg.source);
		hint = hintbuf;
	} else if (status == 403) {
		code = KT_EAUTH;
		snprintf(hintbuf, sizeof(hintbuf), " (user '%s' of %s lacks RBAC permission for this "
		         "request)", user, c->cfg.source);
		hint = hintbuf;
	} else if (status == 404) {
		code = KT_ENOTFOUND;
	} else if (status == 408 || status == 429 || status >= 500) {
		code = KT_ETRANSIENT;
	} else {
		code = KT_EREMOTE;
	}
	kt_error_set(err, code, "kube-apiserver %s: GET %.*s: %ld%s%s%s: %s%s", c->origin, plen,
	             path, status, reason[0] ? " (" : "", reason, reason[0] ? ")" : "", msg, hint);
	if (err)
		err->status = status;
	return code;
}

static kt_code do_get(kt_kube *c, const char *path, body_ctx *b, long *status_out,
                      kt_error *err)
{
	kt_buf url, auth;
	kt_http_resp resp;
	kt_code rc;
	const char *headers[3] = { "Accept: application/json", NULL, NULL };

	kt_buf_init(&url, KT_BUF_UNLIMITED);
	kt_buf_init(&auth, KT_BUF_UNLIMITED);
	kt_buf_addf(&url, NULL, "%s%s", c->cfg.server, path);
	if (c->token) {
		kt_buf_addf(&auth, NULL, "Authorization: Bearer %s", c->token);
		headers[1] = auth.data;
	}
	kt_http_req req = {
		.method = "GET",
		.url = url.data,
		.headers = headers,
		.on_body = on_body,
		.ctx = b,
	};
	memset(&resp, 0, sizeof(resp));
	rc = kt_http_request(c->http, &req, &resp, err);
	explicit_bzero(auth.data, auth.len);
	kt_buf_release(&auth);
	kt_buf_release(&url);
	*status_out = resp.status;
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
	if (rc && rc != KT_ELIMIT)
		kt_error_wrap(err, "%s", c->cfg.source);
	return rc;
}

kt_code kt_kube_get(kt_kube *c, const char *path, json_t **out, kt_error *err)
{
	body_ctx b = { .path = path };
	long status = 0;
	kt_code rc;

	if (!valid_path(path))
		return kt_error_set(err, KT_EUSAGE, "kube GET: path '%.200s' must start with '/' and "
		                    "hold no blanks or control characters", path ? path : "");
	kt_buf_init(&b.buf, c->opts.max_response);
	rc = do_get(c, path, &b, &status, err);
	if (rc == KT_OK && status == 401 && c->cfg.token_file) {
		/* Projected service-account tokens rotate: re-read the file once. */
		char *fresh = NULL;
		kt_error e;
		if (read_token_file(c, &fresh, &e) == KT_OK && strcmp(fresh, c->token)) {
			kube_wipe_free(c->token, strlen(c->token));
			c->token = fresh;
			fresh = NULL;
			explicit_bzero(b.buf.data, b.buf.len);
			kt_buf_reset(&b.buf);
			rc = do_get(c, path, &b, &status, err);
		}
		if (fresh)
			kube_wipe_free(fresh, strlen(fresh));
	}
	if (rc == KT_OK && (status < 200 || status > 299))
		rc = status_error(c, path, status, &b.buf, err);
	if (rc == KT_OK) {
		json_error_t je;
		json_t *j = json_loadb(b.buf.data, b.buf.len, 0, &je);
		if (!json_is_object(j)) {
			int plen = (int)strcspn(path, "?");
			rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: GET %.*s: %ld answer is not a "
			                  "JSON object%s%s (is %s a Kubernetes API server?)", c->origin,
			                  plen > 200 ? 200 : plen, path, status, j ? "" : ": ",
			                  j ? "" : je.text, c->origin);
			json_decref(j);
		} else {
			*out = j;
		}
	}
	explicit_bzero(b.buf.data, b.buf.len);
	kt_buf_release(&b.buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Typed helpers */

kt_code kt_kube_namespace_uid(kt_kube *c, const char *ns, char **out, kt_error *err)
{
	char path[128];
	json_t *j = NULL;
	if (!kt_kube_valid_label(ns))
		return kt_error_set(err, KT_EUSAGE, "'%.100s' is not a valid namespace name",
		                    ns ? ns : "");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	kt_code rc = kt_kube_get(c, path, &j, err);
	if (rc)
		return rc;
	const char *uid = json_string_value(json_object_get(json_object_get(j, "metadata"), "uid"));
	if (!uid || !uid[0])
		rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: namespace '%s' has no "
		                  "metadata.uid", c->origin, ns);
	else
		*out = kt_xstrdup(uid);
	json_decref(j);
	return rc;
}

void kt_kube_secret_free(kt_kube_secret *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_items; i++) {
		free(s->items[i].key);
		kube_wipe_free(s->items[i].value, s->items[i].len);
	}
	free(s->items);
	free(s->namespace);
	free(s->name);
	free(s->type);
	free(s);
}

const kt_kube_secret_item *kt_kube_secret_find(const kt_kube_secret *s, const char *key)
{
	for (size_t i = 0; s && i < s->n_items; i++)
		if (!strcmp(s->items[i].key, key))
			return &s->items[i];
	return NULL;
}

kt_code kt_kube_get_secret(kt_kube *c, const char *ns, const char *name,
                           kt_kube_secret **out, kt_error *err)
{
	char path[400];
	json_t *j = NULL;
	if (!kt_kube_valid_label(ns))
		return kt_error_set(err, KT_EUSAGE, "'%.100s' is not a valid namespace name",
		                    ns ? ns : "");
	if (!kt_kube_valid_name(name))
		return kt_error_set(err, KT_EUSAGE, "'%.260s' is not a valid Secret name",
		                    name ? name : "");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	kt_code rc = kt_kube_get(c, path, &j, err);
	if (rc)
		return rc;

	kt_kube_secret *s = kt_xcalloc(1, sizeof(*s));
	s->namespace = kt_xstrdup(ns);
	s->name = kt_xstrdup(name);
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *type = json_string_value(json_object_get(j, "type"));
	s->type = kt_xstrdup(type ? type : "");
	json_t *data = json_object_get(j, "data");
	if (kind && strcmp(kind, "Secret")) {
		rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: GET %s answered a %.40s, not a "
		                  "Secret", c->origin, path, kind);
	} else if (data && !json_is_object(data) && !json_is_null(data)) {
		rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data is not an object", ns, name);
	} else if (json_is_object(data)) {
		size_t n = json_object_size(data), i = 0;
		const char *key;
		json_t *v;
		s->items = kt_xcalloc(n ? n : 1, sizeof(*s->items));
		json_object_foreach(data, key, v) {
			const char *b64 = json_string_value(v);
			kt_kube_secret_item *it = &s->items[i];
			if (!b64) {
				rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data.%.100s is not a string",
				                  ns, name, key);
				break;
			}
			if (kube_b64_decode(b64, json_string_length(v), &it->value, &it->len) != 0) {
				rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data.%.100s is not valid "
				                  "base64", ns, name, key);
				break;
			}
			it->key = kt_xstrdup(key);
			s->n_items = ++i;
		}
	}
	json_decref(j);
	if (rc) {
		kt_kube_secret_free(s);
		return rc;
	}
	*out = s;
	return KT_OK;
}
