/*
 * kubeconfig.c - where the API server is and who we are: kubeconfig files
 * (parsed with libyaml's document API) and the in-cluster service account.
 *
 * Invariants:
 *   1. The input is bounded before libyaml builds a document: at most
 *      KT_KUBE_MAX_CONFIG bytes, one YAML document, nesting at most
 *      KT_KUBE_MAX_DEPTH deep (checked by an event pass first).
 *   2. Only fixed paths are navigated (root -> list entry -> its mapping ->
 *      scalar), never the whole graph, so aliases (even cyclic ones) cannot
 *      make the walk explode: a node of the wrong kind is an error.
 *   3. Every message is "kubeconfig 'NAME': FIELD ..." with FIELD the path
 *      in the file (users[0].user.token) and never a value of a credential
 *      field.
 *   4. Parsing reads no other file (see kube.h, invariant 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "kube_int.h"

/* ------------------------------------------------------------------ */
/* Shared helpers (kube_int.h) */

void kube_wipe_free(void *p, size_t n)
{
	if (!p)
		return;
	volatile unsigned char *v = p;
	for (size_t i = 0; i < n; i++)
		v[i] = 0;
	free(p);
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int kube_b64_decode(const char *in, size_t n, char **out, size_t *out_len)
{
	char *buf = kt_xmalloc(n / 4 * 3 + 4);
	size_t o = 0, pad = 0;
	unsigned quad = 0, nq = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = b64_value(c);
		if (v < 0 || pad)
			goto bad; /* bad byte, or data after padding */
		quad = quad << 6 | (unsigned)v;
		if (++nq == 4) {
			buf[o++] = (char)(quad >> 16);
			buf[o++] = (char)(quad >> 8);
			buf[o++] = (char)quad;
			quad = 0;
			nq = 0;
		}
	}
	/* Final group: 2 or 3 symbols (padding optional but must match). */
	if (nq == 1 || (pad && pad != 4 - nq) || (nq == 0 && pad))
		goto bad;
	if (nq == 2) {
		if (quad & 0xf)
			goto bad; /* non-canonical trailing bits */
		buf[o++] = (char)(quad >> 4);
	} else if (nq == 3) {
		if (quad & 0x3)
			goto bad;
		buf[o++] = (char)(quad >> 10);
		buf[o++] = (char)(quad >> 2);
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
bad:
	kube_wipe_free(buf, n / 4 * 3 + 4);
	return -1;
}

kt_code kube_read_file(const char *path, size_t max, const char *what, kt_buf *b,
                       kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot open %s '%s'", what, path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return kt_error_sys(err, KT_EIO, e, "cannot stat %s '%s'", what, path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kt_error_set(err, KT_EUSAGE, "%s '%s' is not a regular file", what, path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return kt_error_set(err, KT_ELIMIT, "%s '%s' is %llu bytes, more than the %zu allowed",
		                    what, path, (unsigned long long)st.st_size, max);
	}
	char chunk[8192];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return kt_error_sys(err, KT_EIO, e, "cannot read %s '%s'", what, path);
		}
		if (r == 0)
			break;
		if (b->len + (size_t)r > max) {
			close(fd);
			return kt_error_set(err, KT_ELIMIT, "%s '%s' is more than the %zu bytes allowed",
			                    what, path, max);
		}
		kt_code rc = kt_buf_add(b, chunk, (size_t)r, err);
		if (rc) {
			close(fd);
			return rc;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	return KT_OK;
}

int kube_token_clean(char *s)
{
	size_t n = strlen(s), start = 0;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	while (start < n && (s[start] == ' ' || s[start] == '\t' || s[start] == '\n' ||
	                     s[start] == '\r'))
		start++;
	memmove(s, s + start, n - start);
	n -= start;
	s[n] = '\0';
	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Config lifecycle */

void kt_kube_config_init(kt_kube_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

void kt_kube_config_release(kt_kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->source);
	free(cfg->server);
	free(cfg->context);
	free(cfg->cluster);
	free(cfg->user);
	free(cfg->namespace);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->cert_file);
	free(cfg->cert_pem);
	free(cfg->key_file);
	kube_wipe_free(cfg->key_pem, cfg->key_pem_len);
	if (cfg->token)
		kube_wipe_free(cfg->token, strlen(cfg->token));
	free(cfg->token_file);
	memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------------ */
/* Parse context and node helpers */

typedef struct pctx {
	const char *name;       /* file name for messages */
	const char *base_dir;
	yaml_document_t doc;
	kt_error *err;
} pctx;

static kt_code fail(pctx *p, kt_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static kt_code fail(pctx *p, kt_code code, const char *fmt, ...)
{
	char msg[KT_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kt_error_set(p->err, code, "kubeconfig '%s': %s", p->name, msg);
}

static yaml_node_t *node_at(pctx *p, int index)
{
	return yaml_document_get_node(&p->doc, index);
}

static int is_null(const yaml_node_t *n)
{
	if (!n)
		return 1;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = (const char *)n->data.scalar.value;
	return !strcmp(v, "") || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static int scalar_is(const yaml_node_t *n, const char *s)
{
	return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
	       !memcmp(n->data.scalar.value, s, n->data.scalar.length);
}

static const char *kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "empty";
	}
}

/*
 * *out = the value of key in mapping map (NULL if absent or null).  where
 * names map in messages.  A key given twice is an error: which one a
 * reader takes differs between YAML libraries.
 */
static kt_code map_get(pctx *p, yaml_node_t *map, const char *where, const char *key,
                       yaml_node_t **out)
{
	yaml_node_t *found = NULL;
	int n_found = 0;
	*out = NULL;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		if (scalar_is(node_at(p, pr->key), key)) {
			found = node_at(p, pr->value);
			n_found++;
		}
	}
	if (n_found > 1)
		return fail(p, KT_EUSAGE, "%s%s%s is given %d times (keep one)", where,
		            where[0] ? "." : "", key, n_found);
	*out = is_null(found) ? NULL : found;
	return KT_OK;
}

/* Like map_get, requiring a mapping (or absent). */
static kt_code map_get_map(pctx *p, yaml_node_t *map, const char *where, const char *key,
                           yaml_node_t **out)
{
	kt_code rc = map_get(p, map, where, key, out);
	if (rc == KT_OK && *out && (*out)->type != YAML_MAPPING_NODE)
		rc = fail(p, KT_EUSAGE, "%s.%s must be a mapping, not %s", where, key, kind_name(*out));
	return rc;
}

/* A string field: *out is a malloc'd copy, or NULL when absent/null/empty. */
static kt_code map_get_str(pctx *p, yaml_node_t *map, const char *where, const char *key,
                           char **out)
{
	yaml_node_t *n;
	*out = NULL;
	kt_code rc = map_get(p, map, where, key, &n);
	if (rc || !n)
		return rc;
	if (n->type != YAML_SCALAR_NODE)
		return fail(p, KT_EUSAGE, "%s%s%s must be a string, not %s", where, where[0] ? "." : "",
		            key, kind_name(n));
	size_t len = n->data.scalar.length;
	if (memchr(n->data.scalar.value, '\0', len))
		return fail(p, KT_EUSAGE, "%s%s%s holds a NUL byte", where, where[0] ? "." : "", key);
	if (len == 0)
		return KT_OK;
	char *s = kt_xmalloc(len + 1);
	memcpy(s, n->data.scalar.value, len);
	s[len] = '\0';
	*out = s;
	return KT_OK;
}

/* A boolean field (YAML 1.1 spellings, as Go's yaml.v2 reads them). */
static kt_code map_get_bool(pctx *p, yaml_node_t *map, const char *where, const char *key,
                            int *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
	                                   "ON", "y", "Y" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off",
	                                  "OFF", "n", "N" };
	yaml_node_t *n;
	*out = 0;
	kt_code rc = map_get(p, map, where, key, &n);
	if (rc || !n)
		return rc;
	for (size_t i = 0; n->type == YAML_SCALAR_NODE && i < sizeof(yes) / sizeof(*yes); i++) {
		if (scalar_is(n, yes[i])) {
			*out = 1;
			return KT_OK;
		}
		if (scalar_is(n, no[i]))
			return KT_OK;
	}
	return fail(p, KT_EUSAGE, "%s.%s must be true or false", where, key);
}

/*
 * Find the entry called name in the list under key (contexts, clusters,
 * users) and return its inner mapping (entry.inner_key) in *out, its index
 * in *index.  Two entries with the name are an error (kubectl refuses them
 * too); so is an entry without the inner mapping.
 */
static kt_code find_named(pctx *p, yaml_node_t *root, const char *key, const char *inner_key,
                          const char *name, const char *referrer, yaml_node_t **out, int *index)
{
	yaml_node_t *list;
	kt_code rc = map_get(p, root, "", key, &list);
	if (rc)
		return rc;
	if (list && list->type != YAML_SEQUENCE_NODE)
		return fail(p, KT_EUSAGE, "%s must be a list, not %s", key, kind_name(list));
	int found = -1, i = 0;
	yaml_node_t *entry = NULL;
	for (yaml_node_item_t *it = list ? list->data.sequence.items.start : NULL;
	     list && it < list->data.sequence.items.top; it++, i++) {
		yaml_node_t *e = node_at(p, *it);
		char where[64];
		snprintf(where, sizeof(where), "%s[%d]", key, i);
		if (!e || e->type != YAML_MAPPING_NODE)
			return fail(p, KT_EUSAGE, "%s must be a mapping, not %s", where,
			            e ? kind_name(e) : "empty");
		yaml_node_t *n;
		rc = map_get(p, e, where, "name", &n);
		if (rc)
			return rc;
		if (!scalar_is(n, name))
			continue;
		if (found >= 0)
			return fail(p, KT_EUSAGE, "%s[%d] and %s[%d] are both named '%s' (keep one)", key,
			            found, key, i, name);
		found = i;
		entry = e;
	}
	if (found < 0 && !referrer)
		return fail(p, KT_ENOTFOUND, "%s '%s' is not defined in %s", inner_key, name, key);
	if (found < 0)
		return fail(p, KT_ENOTFOUND, "%s names %s '%s', which is not defined in %s", referrer,
		            inner_key, name, key);
	char where[64];
	snprintf(where, sizeof(where), "%s[%d]", key, found);
	rc = map_get_map(p, entry, where, inner_key, out);
	if (rc)
		return rc;
	if (!*out)
		return fail(p, KT_EUSAGE, "%s.%s is missing", where, inner_key);
	*index = found;
	return KT_OK;
}

/* base_dir/path for a relative path (taken over: *path is replaced). */
static void resolve_path(pctx *p, char **path)
{
	if (!*path || !p->base_dir || (*path)[0] == '/')
		return;
	size_t n = strlen(p->base_dir) + strlen(*path) + 2;
	char *full = kt_xmalloc(n);
	snprintf(full, n, "%s/%s", p->base_dir, *path);
	free(*path);
	*path = full;
}

/*
 * One credential or CA given as a file (key) or inline (key-data, base64
 * PEM).  Both set is an error (kubectl refuses it too).  Decoded data must
 * hold a PEM block: a typo should fail here, naming the field, rather than
 * as an opaque TLS error later.
 */
static kt_code file_or_data(pctx *p, yaml_node_t *map, const char *where, const char *key,
                            char **file_out, char **pem_out, size_t *pem_len_out)
{
	char data_key[64], *file = NULL, *data = NULL;
	snprintf(data_key, sizeof(data_key), "%s-data", key);
	kt_code rc = map_get_str(p, map, where, key, &file);
	if (rc == KT_OK)
		rc = map_get_str(p, map, where, data_key, &data);
	if (rc == KT_OK && file && data)
		rc = fail(p, KT_EUSAGE, "%s sets both %s and %s (keep one)", where, key, data_key);
	if (rc == KT_OK && data) {
		char *pem;
		size_t pem_len;
		if (kube_b64_decode(data, strlen(data), &pem, &pem_len) != 0) {
			rc = fail(p, KT_EUSAGE, "%s.%s is not valid base64", where, data_key);
		} else if (!memmem(pem, pem_len, "-----BEGIN ", 11)) {
			kube_wipe_free(pem, pem_len);
			rc = fail(p, KT_EUSAGE, "%s.%s does not hold PEM data (no '-----BEGIN' line after "
			          "base64 decoding)", where, data_key);
		} else {
			*pem_out = pem;
			*pem_len_out = pem_len;
		}
	}
	if (rc == KT_OK && file) {
		resolve_path(p, &file);
		*file_out = file;
		file = NULL;
	}
	free(file);
	if (data)
		kube_wipe_free(data, strlen(data));
	return rc;
}

/* "https://host[:port][/prefix]": no userinfo, query, fragment or blanks. */
static kt_code check_server(pctx *p, const char *where, char *server)
{
	const char *rest;
	if (!strncmp(server, "https://", 8))
		rest = server + 8;
	else if (!strncmp(server, "http://", 7))
		rest = server + 7;
	else
		return fail(p, KT_EUSAGE, "%s.server '%.200s' must start with https://", where, server);
	size_t auth = strcspn(rest, "/");
	if (auth == 0)
		return fail(p, KT_EUSAGE, "%s.server '%.200s' has no host", where, server);
	for (const char *c = server; *c; c++) {
		unsigned char u = (unsigned char)*c;
		if (u <= 0x20 || u >= 0x7f || u == '?' || u == '#' || u == '\\')
			return fail(p, KT_EUSAGE, "%s.server is not a plain https:// URL (no blanks, "
			            "queries or fragments)", where);
	}
	if (memchr(rest, '@', auth))
		return fail(p, KT_EUSAGE, "%s.server must not carry user information (user@host)",
		            where);
	size_t n = strlen(server);
	while (n > (size_t)(rest - server) + auth && server[n - 1] == '/')
		server[--n] = '\0';
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Sections */

static kt_code parse_cluster(pctx *p, yaml_node_t *cl, int idx, kt_kube_config *cfg)
{
	char where[64];
	int insecure = 0;
	char *s = NULL;
	snprintf(where, sizeof(where), "clusters[%d].cluster", idx);

	kt_code rc = map_get_bool(p, cl, where, "insecure-skip-tls-verify", &insecure);
	if (rc)
		return rc;
	if (insecure)
		return fail(p, KT_EUSAGE, "%s.insecure-skip-tls-verify is true: kontinuity never turns "
		            "off TLS verification (set certificate-authority-data to the cluster's CA)",
		            where);
	static const char *const unsupported[][2] = {
		{ "tls-server-name", "connect by the name in the server's certificate instead" },
		{ "proxy-url", "use the https_proxy environment variable instead" },
	};
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++) {
		rc = map_get_str(p, cl, where, unsupported[i][0], &s);
		if (rc)
			return rc;
		if (s) {
			free(s);
			return fail(p, KT_EUSAGE, "%s.%s is not supported (%s)", where, unsupported[i][0],
			            unsupported[i][1]);
		}
	}
	rc = map_get_str(p, cl, where, "server", &cfg->server);
	if (rc)
		return rc;
	if (!cfg->server)
		return fail(p, KT_EUSAGE, "%s.server is missing", where);
	rc = check_server(p, where, cfg->server);
	if (rc)
		return rc;
	return file_or_data(p, cl, where, "certificate-authority", &cfg->ca_file, &cfg->ca_pem,
	                    &cfg->ca_pem_len);
}

static kt_code parse_user(pctx *p, yaml_node_t *u, int idx, kt_kube_config *cfg)
{
	char where[64];
	yaml_node_t *n;
	snprintf(where, sizeof(where), "users[%d].user", idx);

	static const char *const unsupported[][2] = {
		{ "exec", "exec credential plugins are not supported: use a client certificate or a "
		          "token (e.g. a ServiceAccount token)" },
		{ "auth-provider", "auth-provider plugins are not supported: use a client certificate "
		                   "or a token" },
		{ "username", "basic authentication was removed from Kubernetes in 1.19: use a client "
		              "certificate or a token" },
		{ "password", "basic authentication was removed from Kubernetes in 1.19: use a client "
		              "certificate or a token" },
		{ "as", "impersonation is not supported" },
		{ "as-uid", "impersonation is not supported" },
		{ "as-groups", "impersonation is not supported" },
		{ "as-user-extra", "impersonation is not supported" },
	};
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++) {
		kt_code rc = map_get(p, u, where, unsupported[i][0], &n);
		if (rc)
			return rc;
		if (n)
			return fail(p, KT_EUSAGE, "%s.%s: %s", where, unsupported[i][0],
			            unsupported[i][1]);
	}
	kt_code rc = file_or_data(p, u, where, "client-certificate", &cfg->cert_file,
	                          &cfg->cert_pem, &cfg->cert_pem_len);
	if (rc == KT_OK)
		rc = file_or_data(p, u, where, "client-key", &cfg->key_file, &cfg->key_pem,
		                  &cfg->key_pem_len);
	if (rc)
		return rc;
	int has_cert = cfg->cert_file || cfg->cert_pem, has_key = cfg->key_file || cfg->key_pem;
	if (has_cert && !has_key)
		return fail(p, KT_EUSAGE, "%s has a client certificate but no client-key or "
		            "client-key-data", where);
	if (has_key && !has_cert)
		return fail(p, KT_EUSAGE, "%s has a client key but no client-certificate or "
		            "client-certificate-data", where);

	rc = map_get_str(p, u, where, "token", &cfg->token);
	if (rc == KT_OK)
		rc = map_get_str(p, u, where, "tokenFile", &cfg->token_file);
	if (rc)
		return rc;
	if (cfg->token) {
		kt_log_add_secret(cfg->token);
		if (kube_token_clean(cfg->token) != 0)
			return fail(p, KT_EUSAGE, "%s.token is not a usable bearer token (it holds "
			            "blanks or control characters)", where);
		kt_log_add_secret(cfg->token);
		/* client-go prefers the inline token; say nothing and ignore the file. */
		free(cfg->token_file);
		cfg->token_file = NULL;
	}
	resolve_path(p, &cfg->token_file);
	return KT_OK;
}

/* Check the event stream first: one document, bounded depth.  libyaml's
 * loader would otherwise build any shape the input describes. */
static kt_code check_shape(pctx *p, const char *data, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	kt_code rc = KT_OK;
	int depth = 0, docs = 0, done = 0;

	if (!yaml_parser_initialize(&parser))
		return fail(p, KT_ENOMEM, "out of memory starting the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done && rc == KT_OK) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = fail(p, KT_EUSAGE, "not valid YAML: %s at line %zu column %zu",
			          parser.problem ? parser.problem : "parse error",
			          parser.problem_mark.line + 1, parser.problem_mark.column + 1);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				rc = fail(p, KT_EUSAGE, "holds more than one YAML document (line %zu)",
				          ev.start_mark.line + 1);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++depth > KT_KUBE_MAX_DEPTH)
				rc = fail(p, KT_ELIMIT, "nests deeper than %d levels (line %zu)",
				          KT_KUBE_MAX_DEPTH, ev.start_mark.line + 1);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rc;
}

static kt_code parse_doc(pctx *p, const char *context, kt_kube_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(&p->doc);
	yaml_node_t *ctx, *cl, *u;
	char *s = NULL, *ctx_name = NULL;
	int ci, cli, ui;
	kt_code rc;

	if (!root || is_null(root))
		return fail(p, KT_EUSAGE, "is empty (expected a kubeconfig with clusters, users and "
		            "contexts)");
	if (root->type != YAML_MAPPING_NODE)
		return fail(p, KT_EUSAGE, "is not a kubeconfig: the top level is %s, not a mapping",
		            kind_name(root));
	rc = map_get_str(p, root, "", "kind", &s);
	if (rc)
		return rc;
	if (s && strcmp(s, "Config")) {
		rc = fail(p, KT_EUSAGE, "kind is '%.100s', expected 'Config'", s);
		free(s);
		return rc;
	}
	free(s);

	if (context && context[0]) {
		ctx_name = kt_xstrdup(context);
	} else {
		rc = map_get_str(p, root, "", "current-context", &ctx_name);
		if (rc)
			return rc;
		if (!ctx_name)
			return fail(p, KT_EUSAGE, "current-context is not set (name a context to use)");
	}
	char referrer[96];
	rc = find_named(p, root, "contexts", "context", ctx_name,
	                context && context[0] ? NULL : "current-context", &ctx, &ci);
	cfg->context = ctx_name;
	if (rc)
		return rc;

	char where[64];
	snprintf(where, sizeof(where), "contexts[%d].context", ci);
	rc = map_get_str(p, ctx, where, "cluster", &cfg->cluster);
	if (rc == KT_OK)
		rc = map_get_str(p, ctx, where, "user", &cfg->user);
	if (rc == KT_OK)
		rc = map_get_str(p, ctx, where, "namespace", &cfg->namespace);
	if (rc)
		return rc;
	if (!cfg->cluster)
		return fail(p, KT_EUSAGE, "%s.cluster is missing", where);
	if (cfg->namespace && !kt_kube_valid_label(cfg->namespace))
		return fail(p, KT_EUSAGE, "%s.namespace '%.100s' is not a valid namespace name", where,
		            cfg->namespace);
	if (!cfg->namespace)
		cfg->namespace = kt_xstrdup("default");

	snprintf(referrer, sizeof(referrer), "%s.cluster", where);
	rc = find_named(p, root, "clusters", "cluster", cfg->cluster, referrer, &cl, &cli);
	if (rc == KT_OK)
		rc = parse_cluster(p, cl, cli, cfg);
	if (rc)
		return rc;
	if (cfg->user) {
		snprintf(referrer, sizeof(referrer), "%s.user", where);
		rc = find_named(p, root, "users", "user", cfg->user, referrer, &u, &ui);
		if (rc == KT_OK)
			rc = parse_user(p, u, ui, cfg);
		if (rc)
			return rc;
	}
	if (!strncmp(cfg->server, "http://", 7) && (cfg->token || cfg->token_file))
		return fail(p, KT_EUSAGE, "clusters[%d].cluster.server is http://: refusing to send the "
		            "token of user '%s' in clear text (use https://)", cli, cfg->user);
	return KT_OK;
}

kt_code kt_kube_config_parse(kt_kube_config *out, const char *data, size_t len,
                             const char *name, const char *base_dir, const char *context,
                             kt_error *err)
{
	pctx p = { .name = name ? name : "(memory)", .base_dir = base_dir, .err = err };
	yaml_parser_t parser;
	kt_kube_config cfg;
	kt_code rc;

	kt_kube_config_init(out);
	if (len > KT_KUBE_MAX_CONFIG)
		return fail(&p, KT_ELIMIT, "is %zu bytes, more than the %u allowed", len,
		            KT_KUBE_MAX_CONFIG);
	rc = check_shape(&p, data, len);
	if (rc)
		return rc;
	if (!yaml_parser_initialize(&parser))
		return fail(&p, KT_ENOMEM, "out of memory starting the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	if (!yaml_parser_load(&parser, &p.doc)) {
		rc = fail(&p, parser.error == YAML_MEMORY_ERROR ? KT_ENOMEM : KT_EUSAGE,
		          "not valid YAML: %s at line %zu column %zu",
		          parser.problem ? parser.problem : "load error",
		          parser.problem_mark.line + 1, parser.problem_mark.column + 1);
		yaml_parser_delete(&parser);
		return rc;
	}
	yaml_parser_delete(&parser);

	kt_kube_config_init(&cfg);
	rc = parse_doc(&p, context, &cfg);
	yaml_document_delete(&p.doc);
	if (rc) {
		kt_kube_config_release(&cfg);
		return rc;
	}
	size_t n = strlen(p.name) + 16;
	cfg.source = kt_xmalloc(n);
	snprintf(cfg.source, n, "kubeconfig '%s'", p.name);
	*out = cfg;
	return KT_OK;
}

kt_code kt_kube_config_load(kt_kube_config *out, const char *path, const char *context,
                            kt_error *err)
{
	kt_buf b;
	kt_kube_config_init(out);
	kt_buf_init(&b, KT_KUBE_MAX_CONFIG);
	kt_code rc = kube_read_file(path, KT_KUBE_MAX_CONFIG, "kubeconfig", &b, err);
	if (rc == KT_OK) {
		char *dir = kt_xstrdup(path);
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			dir[1] = '\0';
		else if (slash)
			*slash = '\0';
		rc = kt_kube_config_parse(out, b.data, b.len, path, slash ? dir : NULL, context, err);
		free(dir);
	}
	/* The file may hold key material. */
	explicit_bzero(b.data, b.len);
	kt_buf_release(&b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* In-cluster */

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = kt_xmalloc(n);
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

kt_code kt_kube_config_in_cluster(kt_kube_config *out, const char *dir, kt_error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	kt_kube_config cfg;
	kt_code rc = KT_OK;

	kt_kube_config_init(out);
	if (!dir)
		dir = KT_KUBE_SA_DIR;
	if (!host || !host[0] || !port || !port[0])
		return kt_error_set(err, KT_ENOTFOUND, "in-cluster config: KUBERNETES_SERVICE_HOST and "
		                    "KUBERNETES_SERVICE_PORT are not set (not running in a pod? pass "
		                    "--kubeconfig)");
	for (const char *c = host; *c; c++)
		if (!(((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '.' || *c == '-' || *c == ':'))
			return kt_error_set(err, KT_EUSAGE, "in-cluster config: KUBERNETES_SERVICE_HOST "
			                    "'%.100s' is not a host name or address", host);
	char *end;
	errno = 0;
	unsigned long pn = strtoul(port, &end, 10);
	if (*end || errno || pn == 0 || pn > 65535 || port[0] < '0' || port[0] > '9')
		return kt_error_set(err, KT_EUSAGE, "in-cluster config: KUBERNETES_SERVICE_PORT "
		                    "'%.20s' is not a port number", port);

	kt_kube_config_init(&cfg);
	cfg.source = kt_xstrdup("in-cluster config");
	size_t n = strlen(host) + 32;
	cfg.server = kt_xmalloc(n);
	if (strchr(host, ':'))
		snprintf(cfg.server, n, "https://[%s]:%lu", host, pn);
	else
		snprintf(cfg.server, n, "https://%s:%lu", host, pn);
	cfg.token_file = join(dir, "token");
	cfg.ca_file = join(dir, "ca.crt");

	struct stat st;
	if (stat(cfg.token_file, &st) != 0) {
		int e = errno;
		rc = kt_error_sys(err, kt_code_from_errno(e), e, "in-cluster config: no service-account "
		                  "token '%s' (does the pod mount one?)", cfg.token_file);
		goto out;
	}
	char *ns_path = join(dir, "namespace");
	kt_buf b;
	kt_buf_init(&b, 1024);
	kt_error e;
	if (kube_read_file(ns_path, 1024, "namespace file", &b, &e) == KT_OK) {
		size_t l = b.len;
		while (l && (b.data[l - 1] == '\n' || b.data[l - 1] == ' ' || b.data[l - 1] == '\r'))
			b.data[--l] = '\0';
		if (kt_kube_valid_label(b.data))
			cfg.namespace = kt_xstrdup(b.data);
	}
	kt_buf_release(&b);
	free(ns_path);
	if (!cfg.namespace)
		cfg.namespace = kt_xstrdup("default");
out:
	if (rc) {
		kt_kube_config_release(&cfg);
		return rc;
	}
	*out = cfg;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Names */

static int label_char(char c, int edge)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!edge && c == '-');
}

int kt_kube_valid_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!label_char(s[i], i == 0 || i == n - 1))
			return 0;
	return 1;
}

int kt_kube_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 253)
		return 0;
	/* dot-separated labels */
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63)
				return 0;
			for (size_t j = start; j < i; j++)
				if (!label_char(s[j], j == start || j == i - 1))
					return 0;
			start = i + 1;
		}
	}
	return 1;
}
