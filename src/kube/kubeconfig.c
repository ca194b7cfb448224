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
	kube_exec_free(cfg->exec);
	memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------------ */
/* Parse context and node helpers */

/* One input file.  root is NULL for an empty file (allowed when merging). */
typedef struct pfile {
	const char *name;       /* file name for messages */
	const char *base_dir;
	yaml_document_t doc;
	int loaded;
	yaml_node_t *root;
} pfile;

/* cur is the file every node handle and message refers to: find_named
 * moves it to the file an entry was found in. */
typedef struct pctx {
	pfile *files;
	size_t n;
	size_t cur;
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
	return kt_error_set(p->err, code, "kubeconfig '%s': %s", p->files[p->cur].name, msg);
}

static yaml_node_t *node_at(pctx *p, int index)
{
	return yaml_document_get_node(&p->files[p->cur].doc, index);
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
 * users) of the current file; *found_idx = -1 when it has none.  Two
 * entries with the name are an error (kubectl refuses them too).
 */
static kt_code find_in_file(pctx *p, const char *key, const char *name, yaml_node_t **entry,
                            int *found_idx)
{
	yaml_node_t *list;
	*found_idx = -1;
	*entry = NULL;
	if (!p->files[p->cur].root)
		return KT_OK;
	kt_code rc = map_get(p, p->files[p->cur].root, "", key, &list);
	if (rc)
		return rc;
	if (list && list->type != YAML_SEQUENCE_NODE)
		return fail(p, KT_EUSAGE, "%s must be a list, not %s", key, kind_name(list));
	int i = 0;
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
		if (*found_idx >= 0)
			return fail(p, KT_EUSAGE, "%s[%d] and %s[%d] are both named '%s' (keep one)", key,
			            *found_idx, key, i, name);
		*found_idx = i;
		*entry = e;
	}
	return KT_OK;
}

/*
 * Find the entry called name under key in the first file that defines it
 * (kubectl's merge rule) and return its inner mapping (entry.inner_key) in
 * *out, its index in *index; p->cur is left on that file.  referrer names
 * the field that asked (NULL: the caller's --context).
 */
static kt_code find_named(pctx *p, const char *key, const char *inner_key, const char *name,
                          const char *referrer, yaml_node_t **out, int *index)
{
	size_t asked = p->cur;
	int found = -1;
	yaml_node_t *entry = NULL;
	for (size_t f = 0; f < p->n && found < 0; f++) {
		p->cur = f;
		kt_code rc = find_in_file(p, key, name, &entry, &found);
		if (rc)
			return rc;
	}
	if (found < 0) {
		p->cur = asked;
		const char *where = p->n > 1 ? " of any file" : "";
		if (!referrer)
			return fail(p, KT_ENOTFOUND, "%s '%s' is not defined in %s%s", inner_key, name,
			            key, where);
		return fail(p, KT_ENOTFOUND, "%s names %s '%s', which is not defined in %s%s",
		            referrer, inner_key, name, key, where);
	}
	char where[64];
	snprintf(where, sizeof(where), "%s[%d]", key, found);
	kt_code rc = map_get_map(p, entry, where, inner_key, out);
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
	const char *base = p->files[p->cur].base_dir;
	if (!*path || !base || (*path)[0] == '/')
		return;
	size_t n = strlen(base) + strlen(*path) + 2;
	char *full = kt_xmalloc(n);
	snprintf(full, n, "%s/%s", base, *path);
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
		if (kt_base64_decode(data, strlen(data), &pem, &pem_len) != 0) {
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

/* A list of strings (exec.args) into a malloc'd vector. */
static kt_code get_str_list(pctx *p, yaml_node_t *map, const char *where, const char *key,
                            char ***out, size_t *n_out)
{
	yaml_node_t *l;
	kt_code rc = map_get(p, map, where, key, &l);
	if (rc || !l)
		return rc;
	if (l->type != YAML_SEQUENCE_NODE)
		return fail(p, KT_EUSAGE, "%s.%s must be a list of strings, not %s", where, key,
		            kind_name(l));
	size_t n = (size_t)(l->data.sequence.items.top - l->data.sequence.items.start), i = 0;
	if (n > 1024)
		return fail(p, KT_ELIMIT, "%s.%s has more than 1024 entries", where, key);
	*out = kt_xcalloc(n + 1, sizeof(char *));
	for (yaml_node_item_t *it = l->data.sequence.items.start; it < l->data.sequence.items.top;
	     it++, i++) {
		yaml_node_t *e = node_at(p, *it);
		if (!e || e->type != YAML_SCALAR_NODE)
			return fail(p, KT_EUSAGE, "%s.%s[%zu] must be a string", where, key, i);
		if (memchr(e->data.scalar.value, '\0', e->data.scalar.length))
			return fail(p, KT_EUSAGE, "%s.%s[%zu] holds a NUL byte", where, key, i);
		(*out)[i] = kt_xstrdup((const char *)e->data.scalar.value);
		*n_out = i + 1;
	}
	return KT_OK;
}

void kube_exec_free(kt_kube_exec *x)
{
	if (!x)
		return;
	free(x->api_version);
	free(x->command);
	for (size_t i = 0; i < x->n_args; i++)
		free(x->args[i]);
	free(x->args);
	for (size_t i = 0; i < x->n_env; i++)
		kube_wipe_free(x->env[i], strlen(x->env[i]));
	free(x->env);
	free(x->install_hint);
	free(x);
}

/* users[i].user.exec, as client-go reads it (v1 and v1beta1 only). */
static kt_code parse_exec(pctx *p, yaml_node_t *ex, const char *user_where, kt_kube_exec **out)
{
	char where[96];
	snprintf(where, sizeof(where), "%s.exec", user_where);
	if (ex->type != YAML_MAPPING_NODE)
		return fail(p, KT_EUSAGE, "%s must be a mapping, not %s", where, kind_name(ex));
	kt_kube_exec *x = kt_xcalloc(1, sizeof(*x));
	char *mode = NULL;
	yaml_node_t *envl;
	kt_code rc = map_get_str(p, ex, where, "apiVersion", &x->api_version);
	if (rc == KT_OK)
		rc = map_get_str(p, ex, where, "command", &x->command);
	if (rc == KT_OK)
		rc = get_str_list(p, ex, where, "args", &x->args, &x->n_args);
	if (rc == KT_OK)
		rc = map_get_str(p, ex, where, "installHint", &x->install_hint);
	if (rc == KT_OK)
		rc = map_get_bool(p, ex, where, "provideClusterInfo", &x->provide_cluster_info);
	if (rc == KT_OK)
		rc = map_get_str(p, ex, where, "interactiveMode", &mode);
	if (rc == KT_OK)
		rc = map_get(p, ex, where, "env", &envl);
	if (rc)
		goto out;
	if (!x->api_version) {
		rc = fail(p, KT_EUSAGE, "%s.apiVersion is missing (client.authentication.k8s.io/v1)",
		          where);
		goto out;
	}
	int v1 = !strcmp(x->api_version, "client.authentication.k8s.io/v1");
	if (!v1 && strcmp(x->api_version, "client.authentication.k8s.io/v1beta1")) {
		rc = fail(p, KT_EUSAGE, "%s.apiVersion '%.100s' is not supported (use "
		          "client.authentication.k8s.io/v1 or v1beta1)", where, x->api_version);
		goto out;
	}
	if (!x->command) {
		rc = fail(p, KT_EUSAGE, "%s.command is missing", where);
		goto out;
	}
	if (v1 && !mode) {
		rc = fail(p, KT_EUSAGE, "%s.interactiveMode must be set for %s (Never or "
		          "IfAvailable)", where, x->api_version);
		goto out;
	}
	if (mode && strcmp(mode, "Never") && strcmp(mode, "IfAvailable")) {
		rc = fail(p, KT_EUSAGE, "%s.interactiveMode '%.40s': kontinuity never runs a plugin "
		          "interactively (use Never or IfAvailable)", where, mode);
		goto out;
	}
	if (envl && envl->type != YAML_SEQUENCE_NODE) {
		rc = fail(p, KT_EUSAGE, "%s.env must be a list of {name, value}", where);
		goto out;
	}
	if (envl) {
		size_t n = (size_t)(envl->data.sequence.items.top - envl->data.sequence.items.start);
		if (n > 1024) {
			rc = fail(p, KT_ELIMIT, "%s.env has more than 1024 entries", where);
			goto out;
		}
		x->env = kt_xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n && rc == KT_OK; i++) {
			yaml_node_t *e = node_at(p, envl->data.sequence.items.start[i]);
			char ew[128], *name = NULL, *value = NULL;
			snprintf(ew, sizeof(ew), "%s.env[%zu]", where, i);
			if (!e || e->type != YAML_MAPPING_NODE) {
				rc = fail(p, KT_EUSAGE, "%s must be a mapping with name and value", ew);
				break;
			}
			rc = map_get_str(p, e, ew, "name", &name);
			if (rc == KT_OK)
				rc = map_get_str(p, e, ew, "value", &value);
			if (rc == KT_OK && (!name || strchr(name, '=')))
				rc = fail(p, KT_EUSAGE, "%s.name is missing or holds '='", ew);
			if (rc == KT_OK) {
				size_t l = strlen(name) + (value ? strlen(value) : 0) + 2;
				x->env[i] = kt_xmalloc(l);
				snprintf(x->env[i], l, "%s=%s", name, value ? value : "");
				x->n_env = i + 1;
			}
			free(name);
			if (value)
				kube_wipe_free(value, strlen(value));
		}
		if (rc)
			goto out;
	}
	/* client-go resolves a relative command with a directory part against
	 * the kubeconfig's directory; a bare name is looked up on PATH. */
	if (strchr(x->command, '/'))
		resolve_path(p, &x->command);
out:
	free(mode);
	if (rc) {
		kube_exec_free(x);
		return rc;
	}
	*out = x;
	return KT_OK;
}

static kt_code parse_user(pctx *p, yaml_node_t *u, int idx, kt_kube_config *cfg)
{
	char where[64];
	yaml_node_t *n;
	snprintf(where, sizeof(where), "users[%d].user", idx);

	static const char *const unsupported[][2] = {
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
	rc = map_get(p, u, where, "exec", &n);
	if (rc || !n)
		return rc;
	if (cfg->token || cfg->token_file || has_cert)
		return fail(p, KT_EUSAGE, "%s sets exec and also a token or client certificate (keep "
		            "one way to authenticate)", where);
	return parse_exec(p, n, where, &cfg->exec);
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

/* Load file f (p->cur) as a YAML document and check its top level. */
static kt_code load_file(pctx *p, const kt_kube_file *f)
{
	yaml_parser_t parser;
	pfile *pf = &p->files[p->cur];
	kt_code rc;
	char *s = NULL;

	if (f->len > KT_KUBE_MAX_CONFIG)
		return fail(p, KT_ELIMIT, "is %zu bytes, more than the %u allowed", f->len,
		            KT_KUBE_MAX_CONFIG);
	rc = check_shape(p, f->data, f->len);
	if (rc)
		return rc;
	if (!yaml_parser_initialize(&parser))
		return fail(p, KT_ENOMEM, "out of memory starting the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)f->data, f->len);
	if (!yaml_parser_load(&parser, &pf->doc)) {
		rc = fail(p, parser.error == YAML_MEMORY_ERROR ? KT_ENOMEM : KT_EUSAGE,
		          "not valid YAML: %s at line %zu column %zu",
		          parser.problem ? parser.problem : "load error",
		          parser.problem_mark.line + 1, parser.problem_mark.column + 1);
		yaml_parser_delete(&parser);
		return rc;
	}
	yaml_parser_delete(&parser);
	pf->loaded = 1;

	yaml_node_t *root = yaml_document_get_root_node(&pf->doc);
	if (!root || is_null(root)) {
		if (p->n == 1)
			return fail(p, KT_EUSAGE, "is empty (expected a kubeconfig with clusters, users "
			            "and contexts)");
		return KT_OK; /* kubectl skips empty files in $KUBECONFIG */
	}
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
	pf->root = root;
	return KT_OK;
}

static kt_code parse_doc(pctx *p, const char *context, kt_kube_config *cfg)
{
	yaml_node_t *ctx, *cl, *u;
	char *ctx_name = NULL;
	int ci, cli, ui;
	kt_code rc;

	p->cur = 0;
	if (context && context[0]) {
		ctx_name = kt_xstrdup(context);
	} else {
		/* The first file that sets current-context decides it. */
		for (size_t f = 0; f < p->n && !ctx_name; f++) {
			p->cur = f;
			if (!p->files[f].root)
				continue;
			rc = map_get_str(p, p->files[f].root, "", "current-context", &ctx_name);
			if (rc)
				return rc;
		}
		if (!ctx_name) {
			p->cur = 0;
			return fail(p, KT_EUSAGE, "current-context is not set%s (name a context to use)",
			            p->n > 1 ? " in any file" : "");
		}
	}
	char referrer[96];
	size_t ctx_file;
	rc = find_named(p, "contexts", "context", ctx_name,
	                context && context[0] ? NULL : "current-context", &ctx, &ci);
	cfg->context = ctx_name;
	if (rc)
		return rc;
	ctx_file = p->cur;

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
	rc = find_named(p, "clusters", "cluster", cfg->cluster, referrer, &cl, &cli);
	if (rc == KT_OK)
		rc = parse_cluster(p, cl, cli, cfg);
	if (rc)
		return rc;
	size_t cl_file = p->cur;
	if (cfg->user) {
		p->cur = ctx_file;
		snprintf(referrer, sizeof(referrer), "%s.user", where);
		rc = find_named(p, "users", "user", cfg->user, referrer, &u, &ui);
		if (rc == KT_OK)
			rc = parse_user(p, u, ui, cfg);
		if (rc)
			return rc;
	}
	if (!strncmp(cfg->server, "http://", 7) &&
	    (cfg->token || cfg->token_file || cfg->exec)) {
		p->cur = cl_file;
		return fail(p, KT_EUSAGE, "clusters[%d].cluster.server is http://: refusing to send the "
		            "token of user '%s' in clear text (use https://)", cli, cfg->user);
	}
	return KT_OK;
}

kt_code kt_kube_config_parse_files(kt_kube_config *out, const kt_kube_file *files, size_t n,
                                   const char *context, kt_error *err)
{
	pctx p = { .n = n, .err = err };
	kt_kube_config cfg;
	kt_code rc = KT_OK;

	kt_kube_config_init(out);
	if (n == 0)
		return kt_error_set(err, KT_EUSAGE, "no kubeconfig given");
	p.files = kt_xcalloc(n, sizeof(*p.files));
	for (size_t i = 0; i < n; i++) {
		p.files[i].name = files[i].name ? files[i].name : "(memory)";
		p.files[i].base_dir = files[i].base_dir;
	}
	for (size_t i = 0; i < n && rc == KT_OK; i++) {
		p.cur = i;
		rc = load_file(&p, &files[i]);
	}
	kt_kube_config_init(&cfg);
	if (rc == KT_OK)
		rc = parse_doc(&p, context, &cfg);
	for (size_t i = 0; i < n; i++)
		if (p.files[i].loaded)
			yaml_document_delete(&p.files[i].doc);
	if (rc) {
		free(p.files);
		kt_kube_config_release(&cfg);
		return rc;
	}
	kt_buf src;
	kt_buf_init(&src, KT_BUF_UNLIMITED);
	kt_buf_adds(&src, "kubeconfig '", NULL);
	for (size_t i = 0; i < n; i++)
		kt_buf_addf(&src, NULL, "%s%s", i ? ":" : "", p.files[i].name);
	kt_buf_adds(&src, "'", NULL);
	cfg.source = kt_buf_detach(&src, NULL);
	free(p.files);
	*out = cfg;
	return KT_OK;
}

kt_code kt_kube_config_parse(kt_kube_config *out, const char *data, size_t len,
                             const char *name, const char *base_dir, const char *context,
                             kt_error *err)
{
	kt_kube_file f = { .name = name, .base_dir = base_dir, .data = data, .len = len };
	return kt_kube_config_parse_files(out, &f, 1, context, err);
}

/* The directory part of path (malloc'd), or NULL when it has none. */
static char *dir_of(const char *path)
{
	char *dir = kt_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash) {
		free(dir);
		return NULL;
	}
	if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	return dir;
}

kt_code kt_kube_config_load_files(kt_kube_config *out, const char *const *paths, size_t n,
                                  const char *context, kt_error *err)
{
	kt_buf *bufs = kt_xcalloc(n ? n : 1, sizeof(*bufs));
	kt_kube_file *files = kt_xcalloc(n ? n : 1, sizeof(*files));
	char **dirs = kt_xcalloc(n ? n : 1, sizeof(*dirs));
	size_t used = 0;
	kt_code rc = KT_OK;

	kt_kube_config_init(out);
	for (size_t i = 0; i < n && rc == KT_OK; i++) {
		kt_buf_init(&bufs[used], KT_KUBE_MAX_CONFIG);
		rc = kube_read_file(paths[i], KT_KUBE_MAX_CONFIG, "kubeconfig", &bufs[used], err);
		if (rc == KT_ENOTFOUND && n > 1) {
			/* kubectl skips files of $KUBECONFIG that do not exist */
			kt_buf_release(&bufs[used]);
			rc = KT_OK;
			continue;
		}
		if (rc)
			break;
		dirs[used] = dir_of(paths[i]);
		files[used] = (kt_kube_file){ .name = paths[i], .base_dir = dirs[used],
		                              .data = bufs[used].data, .len = bufs[used].len };
		used++;
	}
	if (rc == KT_OK && used == 0)
		rc = kt_error_set(err, KT_ENOTFOUND, "none of the %zu kubeconfig files named exists "
		                  "(first: '%s')", n, n ? paths[0] : "");
	if (rc == KT_OK)
		rc = kt_kube_config_parse_files(out, files, used, context, err);
	for (size_t i = 0; i < n; i++) {
		/* The files may hold key material. */
		explicit_bzero(bufs[i].data, bufs[i].len);
		kt_buf_release(&bufs[i]);
		free(dirs[i]);
	}
	free(bufs);
	free(files);
	free(dirs);
	return rc;
}

kt_code kt_kube_config_load(kt_kube_config *out, const char *path, const char *context,
                            kt_error *err)
{
	return kt_kube_config_load_files(out, &path, 1, context, err);
}

kt_code kt_kube_config_resolve(kt_kube_config *out, const char *kubeconfig, const char *context,
                               kt_error *err)
{
	kt_kube_config_init(out);
	if (kubeconfig && kubeconfig[0])
		return kt_kube_config_load(out, kubeconfig, context, err);

	const char *env = getenv("KUBECONFIG");
	if (env && env[0]) {
		char *list = kt_xstrdup(env);
		size_t n = 0;
		const char *paths[64];
		for (char *s = list, *e; s && n < 64; s = e ? e + 1 : NULL) {
			e = strchr(s, ':');
			if (e)
				*e = '\0';
			if (s[0])
				paths[n++] = s;
		}
		kt_code rc = n ? kt_kube_config_load_files(out, paths, n, context, err)
		               : kt_error_set(err, KT_EUSAGE, "$KUBECONFIG names no file");
		if (rc)
			kt_error_wrap(err, "$KUBECONFIG");
		free(list);
		return rc;
	}
	const char *home = getenv("HOME");
	if (home && home[0]) {
		size_t l = strlen(home) + 16;
		char *path = kt_xmalloc(l);
		snprintf(path, l, "%s/.kube/config", home);
		struct stat st;
		if (stat(path, &st) == 0) {
			kt_code rc = kt_kube_config_load(out, path, context, err);
			free(path);
			return rc;
		}
		free(path);
	}
	if (getenv("KUBERNETES_SERVICE_HOST")) {
		if (context && context[0])
			return kt_error_set(err, KT_EUSAGE, "--context '%.100s' given but no kubeconfig "
			                    "found (in-cluster config has no contexts)", context);
		return kt_kube_config_in_cluster(out, NULL, err);
	}
	return kt_error_set(err, KT_ENOTFOUND, "no Kubernetes config: no --kubeconfig, $KUBECONFIG "
	                    "unset, no $HOME/.kube/config and not in a pod (KUBERNETES_SERVICE_HOST "
	                    "unset): pass --kubeconfig FILE");
}
