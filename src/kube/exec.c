/*
 * exec.c - exec credential plugins (users[].user.exec): run the command,
 * read the ExecCredential it prints, and keep the credential until it
 * expires, as client-go does.
 *
 * Invariants:
 *   1. The plugin gets an argument vector (no shell), our environment plus
 *      exec.env plus KUBERNETES_EXEC_INFO, stdin /dev/null (we never run it
 *      interactively), our stderr (its prompts and errors reach the user, as
 *      with kubectl) and a pipe as stdout, of which at most EXEC_OUT_MAX
 *      bytes are read.  It dies with us (PR_SET_PDEATHSIG) and is killed
 *      after the client's request timeout.
 *   2. The credential is never logged or put in a message; the output is
 *      wiped after parsing; the token is registered with kt_log_add_secret.
 *   3. A returned client certificate/key goes to memory files (slots 3, 4)
 *      and the kt_http handle is remade to present it.
 *   4. It runs through kt_proc_run (src/core/proc.c) with stdout captured
 *      alone, its own environment, a hard output limit and the read buffer
 *      wiped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube_int.h"

#define EXEC_OUT_MAX (1u << 20)

extern char **environ;

/* What to call the plugin in messages. */
static void plugin_words(const kt_kube *c, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s: exec plugin '%.200s' of user '%.100s'", c->cfg.source,
	         c->cfg.exec->command, c->cfg.user ? c->cfg.user : "?");
}

static kt_code exec_fail(const kt_kube *c, kt_error *err, kt_code code, const char *what)
{
	char who[512];
	plugin_words(c, who, sizeof(who));
	const char *hint = c->cfg.exec->install_hint;
	return kt_error_set(err, code, "%s %s%s%.200s%s", who, what, hint ? " (" : "",
	                    hint ? hint : "", hint ? ")" : "");
}

/* KUBERNETES_EXEC_INFO=... into b. */
static void exec_info(const kt_kube *c, kt_buf *b)
{
	json_t *spec = json_pack("{s:b}", "interactive", 0);
	if (c->cfg.exec->provide_cluster_info) {
		json_t *cl = json_pack("{s:s}", "server", c->cfg.server);
		kt_buf ca;
		kt_buf_init(&ca, KT_BUF_UNLIMITED);
		if (c->cfg.ca_pem) {
			kt_base64_encode(c->cfg.ca_pem, c->cfg.ca_pem_len, &ca, NULL);
		} else if (c->cfg.ca_file) {
			kt_buf f;
			kt_buf_init(&f, 1u << 20);
			if (kube_read_file(c->cfg.ca_file, 1u << 20, "CA file", &f, NULL) == KT_OK)
				kt_base64_encode(f.data, f.len, &ca, NULL);
			kt_buf_release(&f);
		}
		if (ca.len)
			json_object_set_new(cl, "certificate-authority-data", json_string(ca.data));
		kt_buf_release(&ca);
		json_object_set_new(spec, "cluster", cl);
	}
	json_t *info = json_pack("{s:s, s:s, s:o}", "apiVersion", c->cfg.exec->api_version, "kind",
	                         "ExecCredential", "spec", spec);
	char *s = json_dumps(info, JSON_COMPACT);
	kt_buf_addf(b, NULL, "KUBERNETES_EXEC_INFO=%s", s ? s : "{}");
	free(s);
	json_decref(info);
}

static int env_overridden(const char *entry, char *const *env, size_t n)
{
	size_t l = strcspn(entry, "=");
	if (!strncmp(entry, "KUBERNETES_EXEC_INFO=", 21))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], entry, l) && env[i][l] == '=')
			return 1;
	return 0;
}

/* Run the plugin; its stdout into out (bounded). */
static kt_code run_plugin(kt_kube *c, kt_buf *out, kt_error *err)
{
	const kt_kube_exec *x = c->cfg.exec;
	char path[4096], what[160];
	kt_error e;
	if (kt_proc_find(x->command, path, sizeof(path), &e) != KT_OK)
		return exec_fail(c, err, KT_EAUTH, "cannot be found or run");

	/* Everything the child needs is built before fork. */
	size_t n_env = 0;
	while (environ && environ[n_env])
		n_env++;
	char **envp = kt_xcalloc(n_env + x->n_env + 2, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n_env; i++)
		if (!env_overridden(environ[i], x->env, x->n_env))
			envp[k++] = environ[i];
	for (size_t i = 0; i < x->n_env; i++)
		envp[k++] = x->env[i];
	kt_buf info;
	kt_buf_init(&info, KT_BUF_UNLIMITED);
	exec_info(c, &info);
	envp[k++] = info.data;
	envp[k] = NULL;
	char **argv = kt_xcalloc(x->n_args + 2, sizeof(char *));
	argv[0] = path;
	for (size_t i = 0; i < x->n_args; i++)
		argv[i + 1] = x->args[i];

	kt_proc_opts po = { .timeout_ms = c->opts.timeout_ms, .cancel = c->opts.cancel,
	                    .envp = envp, .stdout_only = 1, .output_max = EXEC_OUT_MAX,
	                    .secret_output = 1 };
	kt_proc_result res;
	c->n_exec_runs++;
	kt_code rc = kt_proc_run((const char *const *)argv, &po, &res, &e);
	if (rc == KT_ECANCELED) {
		rc = kt_error_set(err, KT_ECANCELED, "interrupted while exec plugin '%s' ran",
		                  x->command);
	} else if (rc == KT_ETRANSIENT) {
		snprintf(what, sizeof(what), "did not finish within %lld s",
		         (long long)(c->opts.timeout_ms / 1000));
		rc = exec_fail(c, err, KT_ETRANSIENT, what);
	} else if (rc == KT_ELIMIT) {
		snprintf(what, sizeof(what), "printed more than %u bytes", EXEC_OUT_MAX);
		rc = exec_fail(c, err, KT_ELIMIT, what);
	} else if (rc) {
		rc = kt_error_set(err, rc, "cannot run exec plugin '%s': %s", x->command, e.msg);
	} else if (res.exit_code != 0) {
		if (res.exit_code > 0)
			snprintf(what, sizeof(what), "exited with status %d%s", res.exit_code,
			         res.exit_code == 127 ? " (could not be executed)" : "");
		else
			snprintf(what, sizeof(what), "was killed by signal %d", res.signal);
		rc = exec_fail(c, err, KT_EAUTH, what);
	} else {
		kt_buf_add(out, res.output.data, res.output.len, NULL);
	}
	explicit_bzero(res.output.data, res.output.len);
	kt_proc_result_release(&res);
	free(argv);
	free(envp);
	kt_buf_release(&info);
	return rc;
}

/* Parse the ExecCredential and put it to use. */
static kt_code apply_credential(kt_kube *c, const kt_buf *outb, kt_error *err)
{
	char who[512];
	plugin_words(c, who, sizeof(who));
	json_error_t je;
	json_t *j = json_loadb(outb->data, outb->len, 0, &je);
	kt_code rc = KT_OK;
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *ver = json_string_value(json_object_get(j, "apiVersion"));
	json_t *st = json_object_get(j, "status");
	if (!json_is_object(j)) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed no ExecCredential JSON (line %d: %.100s)",
		                  who, je.line, je.text);
		goto out;
	}
	if (!kind || strcmp(kind, "ExecCredential") || !ver ||
	    strcmp(ver, c->cfg.exec->api_version)) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed kind '%.60s' apiVersion '%.80s', expected "
		                  "ExecCredential %s", who, kind ? kind : "", ver ? ver : "",
		                  c->cfg.exec->api_version);
		goto out;
	}
	if (!json_is_object(st)) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed an ExecCredential without status", who);
		goto out;
	}
	const char *tok = json_string_value(json_object_get(st, "token"));
	const char *cert = json_string_value(json_object_get(st, "clientCertificateData"));
	const char *key = json_string_value(json_object_get(st, "clientKeyData"));
	const char *exp = json_string_value(json_object_get(st, "expirationTimestamp"));
	if (tok && !tok[0])
		tok = NULL;
	if (!!cert != !!key) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed status.%s without status.%s", who,
		                  cert ? "clientCertificateData" : "clientKeyData",
		                  cert ? "clientKeyData" : "clientCertificateData");
		goto out;
	}
	if (!tok && !cert) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed neither status.token nor "
		                  "status.clientCertificateData", who);
		goto out;
	}
	int64_t expiry = INT64_MAX;
	if (exp && exp[0] && (expiry = kube_parse_time(exp)) < 0) {
		rc = kt_error_set(err, KT_EAUTH, "%s printed status.expirationTimestamp '%.60s', not an "
		                  "RFC 3339 time", who, exp);
		goto out;
	}
	char *t = NULL;
	int had_cert = c->pem_path[3] != NULL;
	if (tok) {
		kt_log_add_secret(tok);
		t = kt_xstrdup(tok);
		if (kube_token_clean(t) != 0) {
			kube_wipe_free(t, strlen(t));
			rc = kt_error_set(err, KT_EAUTH, "%s printed a status.token with blanks or control "
			                  "characters", who);
			goto out;
		}
		kt_log_add_secret(t);
	}
	if (cert) {
		if (!strstr(cert, "-----BEGIN ") || !strstr(key, "-----BEGIN ")) {
			if (t)
				kube_wipe_free(t, strlen(t));
			rc = kt_error_set(err, KT_EAUTH, "%s printed client certificate data that is not "
			                  "PEM", who);
			goto out;
		}
		rc = kube_pem_to_path(c, 3, cert, strlen(cert), "exec client certificate", err);
		if (rc == KT_OK)
			rc = kube_pem_to_path(c, 4, key, strlen(key), "exec client key", err);
	} else if (c->pem_path[3]) {
		kube_pem_clear(c, 3);
		kube_pem_clear(c, 4);
	}
	if (rc == KT_OK && (cert || had_cert))
		rc = kube_http_setup(c, err);
	if (rc) {
		if (t)
			kube_wipe_free(t, strlen(t));
		goto out;
	}
	if (c->token)
		kube_wipe_free(c->token, strlen(c->token));
	c->token = t;
	c->exec_have = 1;
	c->exec_expiry_ms = expiry;
out:
	json_decref(j);
	return rc;
}

kt_code kube_exec_ensure(kt_kube *c, int force, kt_error *err)
{
	if (!c->cfg.exec)
		return KT_OK;
	if (!force && c->exec_have && kube_wall_ms() < c->exec_expiry_ms)
		return KT_OK;
	kt_buf out;
	kt_buf_init(&out, EXEC_OUT_MAX);
	kt_code rc = run_plugin(c, &out, err);
	if (rc == KT_OK)
		rc = apply_credential(c, &out, err);
	explicit_bzero(out.data, out.len);
	kt_buf_release(&out);
	return rc;
}
