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
 *
 * kt_proc_run (src/core/proc.c) is not used: it merges stderr into stdout
 * and cannot set the environment, and a plugin's stdout must be the
 * credential alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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
			kube_b64_encode(&ca, c->cfg.ca_pem, c->cfg.ca_pem_len);
		} else if (c->cfg.ca_file) {
			kt_buf f;
			kt_buf_init(&f, 1u << 20);
			if (kube_read_file(c->cfg.ca_file, 1u << 20, "CA file", &f, NULL) == KT_OK)
				kube_b64_encode(&ca, f.data, f.len);
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

	kt_code rc = KT_OK;
	int p[2] = { -1, -1 };
	pid_t parent = getpid();
	pid_t pid = -1;
	struct sigaction sa;
	if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
		sa.sa_handler = SIG_DFL; /* so waitpid sees the exit status */
		sa.sa_flags = 0;
		sigaction(SIGCHLD, &sa, NULL);
	}
	if (pipe2(p, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		int er = errno;
		rc = kt_error_sys(err, KT_EIO, er, "%s: cannot start exec plugin '%s'", c->cfg.source,
		                  x->command);
		goto out;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(p[1], 1);
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(p[1]);
	p[1] = -1;
	c->n_exec_runs++;
	int64_t deadline = kt_now_ms() + c->opts.timeout_ms;
	for (;;) {
		if (c->opts.cancel && *c->opts.cancel) {
			rc = kt_error_set(err, KT_ECANCELED, "interrupted while exec plugin '%s' ran",
			                  x->command);
			break;
		}
		if (kt_now_ms() > deadline) {
			snprintf(what, sizeof(what), "did not finish within %lld s",
			         (long long)(c->opts.timeout_ms / 1000));
			rc = exec_fail(c, err, KT_ETRANSIENT, what);
			break;
		}
		struct pollfd pf = { p[0], POLLIN, 0 };
		int n = poll(&pf, 1, 100);
		if (n < 0 && errno != EINTR) {
			rc = kt_error_sys(err, KT_EIO, errno, "cannot read exec plugin '%s'", x->command);
			break;
		}
		if (n <= 0)
			continue;
		char chunk[4096];
		ssize_t r = read(p[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (out->len + (size_t)r > EXEC_OUT_MAX) {
			snprintf(what, sizeof(what), "printed more than %u bytes", EXEC_OUT_MAX);
			rc = exec_fail(c, err, KT_ELIMIT, what);
			break;
		}
		kt_buf_add(out, chunk, (size_t)r, NULL);
		explicit_bzero(chunk, sizeof(chunk));
	}
	if (rc)
		kill(pid, SIGKILL);
	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (rc == KT_OK && w < 0)
		rc = kt_error_sys(err, KT_EIO, errno, "cannot learn how exec plugin '%s' ended",
		                  x->command);
	if (rc == KT_OK && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		if (WIFEXITED(status))
			snprintf(what, sizeof(what), "exited with status %d%s", WEXITSTATUS(status),
			         WEXITSTATUS(status) == 127 ? " (could not be executed)" : "");
		else
			snprintf(what, sizeof(what), "was killed by signal %d",
			         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		rc = exec_fail(c, err, KT_EAUTH, what);
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
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
