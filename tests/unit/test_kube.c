/*
 * test_kube.c - src/kube without a cluster: kubeconfig parsing (each auth
 * form, context selection, missing and refused fields, bad base64, hostile
 * YAML), the in-cluster config, the base64 decoder, static pod manifests
 * (reading etcd's flags, rewriting them, every refusal), $KUBECONFIG
 * merging and exec plugin fields.  The client's requests are tested in
 * test_kube_client.c; TLS, tokens, exec plugins and the verbs against a
 * real kube-apiserver in tests/integration/test_kube*.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube/kube.h"
#include "kube/kube_int.h"
#include "unit.h"

/* ---- helpers ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of s into a static buffer (one at a time per slot). */
static const char *b64(int slot, const char *s)
{
	static char out[4][1024];
	size_t n = strlen(s), o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[slot][o++] = B64[v >> 18 & 63];
		out[slot][o++] = B64[v >> 12 & 63];
		out[slot][o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
		out[slot][o++] = i + 2 < n ? B64[v & 63] : '=';
	}
	out[slot][o] = '\0';
	return out[slot];
}

#define PEM_CERT "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
#define PEM_KEY "-----BEGIN PRIVATE KEY-----\nMIGHfake\n-----END PRIVATE KEY-----\n"
#define TOKEN "s3cr3t-t0ken-abcdef0123456789"

static char cfgbuf[16384];

/* A kubeconfig with two clusters/users/contexts; user_a's lines given. */
static const char *kubeconfig(const char *cluster_extra, const char *user_a)
{
	snprintf(cfgbuf, sizeof(cfgbuf),
	         "apiVersion: v1\n"
	         "kind: Config\n"
	         "clusters:\n"
	         "- name: ca\n"
	         "  cluster:\n"
	         "    server: https://10.0.0.1:6443/\n"
	         "    certificate-authority-data: %s\n"
	         "%s"
	         "- name: cb\n"
	         "  cluster:\n"
	         "    server: https://b.example:443\n"
	         "    certificate-authority: pki/ca.crt\n"
	         "users:\n"
	         "- name: ua\n"
	         "  user:\n"
	         "%s"
	         "- name: ub\n"
	         "  user:\n"
	         "    tokenFile: secrets/token\n"
	         "contexts:\n"
	         "- name: a\n"
	         "  context:\n"
	         "    cluster: ca\n"
	         "    user: ua\n"
	         "    namespace: team-a\n"
	         "- name: b\n"
	         "  context: {cluster: cb, user: ub}\n"
	         "current-context: a\n",
	         b64(0, PEM_CERT), cluster_extra, user_a);
	return cfgbuf;
}

static kt_code parse(kt_kube_config *cfg, const char *text, const char *context, kt_error *err)
{
	kt_error_clear(err);
	return kt_kube_config_parse(cfg, text, strlen(text), "admin.conf", "/etc/k", context, err);
}

/* Parse text expecting failure with code and a message containing want. */
static void expect_fail(const char *text, const char *context, kt_code code, const char *want)
{
	kt_kube_config cfg;
	kt_error err;
	kt_code rc = parse(&cfg, text, context, &err);
	CHECK_EQ_U(rc, code);
	CHECK_EQ_U(err.code, code);
	CHECK_CONTAINS(err.msg, "kubeconfig 'admin.conf': ");
	CHECK_CONTAINS(err.msg, want);
	CHECK(cfg.server == NULL && cfg.token == NULL && cfg.source == NULL);
	if (rc == KT_OK)
		kt_kube_config_release(&cfg);
}

/* ---- base64 ---- */

static void test_b64_decoder(void)
{
	static const struct { const char *in, *out; } good[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" }, { "Zg", "f" },
		{ "Zm8", "fo" }, { "Zm9v\nYmFy\r\n", "foobar" }, { " Zm9v YmE= ", "fooba" },
	};
	static const char *const bad[] = { "Z", "Zg=a", "Zm9v=", "Zg===", "Zh==", "Zm9=", "Zm9v!",
	                                   "=Zg", "Zm-v", "Zm_v" };
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		char *out = NULL;
		size_t n = 0;
		CHECK(kt_base64_decode(good[i].in, strlen(good[i].in), &out, &n) == 0);
		CHECK_STR(out, good[i].out);
		CHECK_EQ_U(n, strlen(good[i].out));
		free(out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char *out = NULL;
		size_t n = 0;
		int r = kt_base64_decode(bad[i], strlen(bad[i]), &out, &n);
		if (r == 0)
			fprintf(stderr, "  accepted bad base64 '%s'\n", bad[i]);
		CHECK(r == -1 && out == NULL);
	}
	/* Binary bytes, including NUL, survive. */
	char *out = NULL;
	size_t n = 0;
	CHECK(kt_base64_decode("AP8A", 4, &out, &n) == 0);
	CHECK_EQ_U(n, 3);
	CHECK(out && out[0] == 0 && (unsigned char)out[1] == 0xff && out[2] == 0);
	free(out);
}

/* ---- good kubeconfigs, one per auth form ---- */

static void test_token_inline(void)
{
	kt_kube_config cfg;
	kt_error err;
	CHECK_EQ_U(parse(&cfg, kubeconfig("", "    token: " TOKEN "\n"), NULL, &err), KT_OK);
	CHECK_STR(cfg.source, "kubeconfig 'admin.conf'");
	CHECK_STR(cfg.server, "https://10.0.0.1:6443"); /* trailing slash dropped */
	CHECK_STR(cfg.context, "a");
	CHECK_STR(cfg.cluster, "ca");
	CHECK_STR(cfg.user, "ua");
	CHECK_STR(cfg.namespace, "team-a");
	CHECK_STR(cfg.token, TOKEN);
	CHECK(cfg.token_file == NULL && cfg.ca_file == NULL);
	CHECK(cfg.ca_pem && cfg.ca_pem_len == strlen(PEM_CERT) && !strcmp(cfg.ca_pem, PEM_CERT));
	CHECK(!cfg.cert_pem && !cfg.cert_file && !cfg.key_pem && !cfg.key_file);
	/* The token is registered for redaction as soon as it is parsed. */
	kt_buf b;
	kt_buf_init(&b, 4096);
	kt_redact(&b, "Bearer " TOKEN);
	CHECK_STR(b.data, "Bearer [REDACTED]");
	kt_buf_release(&b);
	kt_kube_config_release(&cfg);
	CHECK(cfg.token == NULL && cfg.server == NULL);
}

static void test_client_cert_data(void)
{
	char user[4096];
	kt_kube_config cfg;
	kt_error err;
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n",
	         b64(1, PEM_CERT), b64(2, PEM_KEY));
	CHECK_EQ_U(parse(&cfg, kubeconfig("", user), NULL, &err), KT_OK);
	CHECK_STR(cfg.cert_pem, PEM_CERT);
	CHECK_EQ_U(cfg.cert_pem_len, strlen(PEM_CERT));
	CHECK_STR(cfg.key_pem, PEM_KEY);
	CHECK(cfg.token == NULL && cfg.token_file == NULL);
	kt_kube_config_release(&cfg);
}

static void test_cert_files_and_token_file_relative(void)
{
	kt_kube_config cfg;
	kt_error err;
	const char *user = "    client-certificate: pki/admin.crt\n"
	                   "    client-key: /abs/admin.key\n"
	                   "    tokenFile: tok\n";
	CHECK_EQ_U(parse(&cfg, kubeconfig("", user), NULL, &err), KT_OK);
	CHECK_STR(cfg.cert_file, "/etc/k/pki/admin.crt");
	CHECK_STR(cfg.key_file, "/abs/admin.key");
	CHECK_STR(cfg.token_file, "/etc/k/tok");
	kt_kube_config_release(&cfg);

	/* Context b: CA file and tokenFile relative to the kubeconfig's dir. */
	CHECK_EQ_U(parse(&cfg, kubeconfig("", "    token: " TOKEN "\n"), "b", &err), KT_OK);
	CHECK_STR(cfg.context, "b");
	CHECK_STR(cfg.server, "https://b.example:443");
	CHECK_STR(cfg.ca_file, "/etc/k/pki/ca.crt");
	CHECK(cfg.ca_pem == NULL && cfg.token == NULL);
	CHECK_STR(cfg.token_file, "/etc/k/secrets/token");
	CHECK_STR(cfg.namespace, "default");
	kt_kube_config_release(&cfg);

	/* Without a base dir, relative paths stay relative. */
	const char *t = kubeconfig("", "    token: x12\n");
	CHECK_EQ_U(kt_kube_config_parse(&cfg, t, strlen(t), "m", NULL, "b", &err), KT_OK);
	CHECK_STR(cfg.ca_file, "pki/ca.crt");
	kt_kube_config_release(&cfg);
}

static void test_token_wins_over_token_file(void)
{
	kt_kube_config cfg;
	kt_error err;
	CHECK_EQ_U(parse(&cfg, kubeconfig("", "    token: " TOKEN "\n    tokenFile: /t\n"), NULL,
	                 &err), KT_OK);
	CHECK_STR(cfg.token, TOKEN);
	CHECK(cfg.token_file == NULL);
	kt_kube_config_release(&cfg);
}

static void test_token_and_cert_together(void)
{
	char user[4096];
	kt_kube_config cfg;
	kt_error err;
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n"
	         "    token: " TOKEN "\n", b64(1, PEM_CERT), b64(2, PEM_KEY));
	CHECK_EQ_U(parse(&cfg, kubeconfig("", user), NULL, &err), KT_OK);
	CHECK(cfg.cert_pem && cfg.key_pem && cfg.token);
	kt_kube_config_release(&cfg);
}

static void test_anonymous_and_quoting(void)
{
	kt_kube_config cfg;
	kt_error err;
	const char *t = "clusters:\n- name: \"c\"\n  cluster:\n    server: 'https://h:1'\n"
	                "    insecure-skip-tls-verify: false\n"
	                "contexts:\n- name: x\n  context:\n    cluster: c\n    user: null\n"
	                "current-context: x\n";
	CHECK_EQ_U(parse(&cfg, t, NULL, &err), KT_OK);
	CHECK_STR(cfg.server, "https://h:1");
	CHECK(cfg.user == NULL && cfg.token == NULL && cfg.ca_pem == NULL);
	kt_kube_config_release(&cfg);

	/* JSON is YAML: a kubeconfig written as JSON parses too. */
	t = "{\"kind\":\"Config\",\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":"
	    "\"https://h:2\"}}],\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":\"c\"}}],"
	    "\"current-context\":\"x\"}";
	CHECK_EQ_U(parse(&cfg, t, NULL, &err), KT_OK);
	CHECK_STR(cfg.server, "https://h:2");
	kt_kube_config_release(&cfg);

	/* http:// is allowed without credentials (kubectl proxy). */
	t = "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8001'}}]\n"
	    "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n";
	CHECK_EQ_U(parse(&cfg, t, NULL, &err), KT_OK);
	kt_kube_config_release(&cfg);
}

/* ---- context selection ---- */

static void test_context_selection(void)
{
	const char *t = kubeconfig("", "    token: " TOKEN "\n");
	expect_fail(t, "nope", KT_ENOTFOUND, "context 'nope' is not defined in contexts");

	char text[16384];
	snprintf(text, sizeof(text), "%s", t);
	*strstr(text, "current-context: a") = '#';
	expect_fail(text, NULL, KT_EUSAGE, "current-context is not set");
	*strstr(text, "#urrent-context: a") = 'c';
	memcpy(strstr(text, "current-context: a") + 17, "z", 1);
	expect_fail(text, NULL, KT_ENOTFOUND, "current-context names context 'z', which is not "
	            "defined in contexts");

	expect_fail("clusters: []\ncontexts: [{name: x, context: {cluster: gone}}]\n"
	            "current-context: x\n", NULL, KT_ENOTFOUND,
	            "contexts[0].context.cluster names cluster 'gone', which is not defined in "
	            "clusters");
	expect_fail("clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
	            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
	            NULL, KT_ENOTFOUND, "contexts[0].context.user names user 'u', which is not "
	            "defined in users");
	expect_fail("contexts: [{name: x, context: {cluster: c}}, {name: x, context: {cluster: d}}]\n"
	            "current-context: x\n", NULL, KT_EUSAGE,
	            "contexts[0] and contexts[1] are both named 'x'");
	expect_fail("contexts: [{name: x}]\ncurrent-context: x\n", NULL, KT_EUSAGE,
	            "contexts[0].context is missing");
	expect_fail("contexts: [{name: x, context: {user: u}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "contexts[0].context.cluster is missing");
	expect_fail("contexts: [{name: x, context: {cluster: c, namespace: Bad_NS}}]\n"
	            "current-context: x\n", NULL, KT_EUSAGE, "namespace 'Bad_NS' is not a valid");
}

/* ---- missing, malformed and refused fields ---- */

static void test_missing_and_malformed_fields(void)
{
	expect_fail("clusters: [{name: c, cluster: {certificate-authority: x}}]\n"
	            "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "clusters[0].cluster.server is missing");
	expect_fail("clusters: [{name: c, cluster: {server: 'ftp://h'}}]\n"
	            "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "clusters[0].cluster.server 'ftp://h' must start with https://");
	expect_fail("clusters: [{name: c, cluster: {server: 'https://u:p@h'}}]\n"
	            "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "must not carry user information");
	expect_fail("clusters: [{name: c, cluster: {server: 'https://h/?q'}}]\n"
	            "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "is not a plain https:// URL");
	expect_fail("clusters: [{name: c, cluster: {server: [a]}}]\n"
	            "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n", NULL,
	            KT_EUSAGE, "clusters[0].cluster.server must be a string, not a list");
	expect_fail("clusters: {c: 1}\ncontexts: [{name: x, context: {cluster: c}}]\n"
	            "current-context: x\n", NULL, KT_EUSAGE, "clusters must be a list, not a mapping");
	expect_fail("clusters: [oops]\ncontexts: [{name: x, context: {cluster: c}}]\n"
	            "current-context: x\n", NULL, KT_EUSAGE, "clusters[0] must be a mapping, not a "
	            "scalar");
	expect_fail("kind: Pod\n", NULL, KT_EUSAGE, "kind is 'Pod', expected 'Config'");
	expect_fail("current-context: a\ncurrent-context: b\n", NULL, KT_EUSAGE,
	            "current-context is given 2 times");
	expect_fail(kubeconfig("", "    client-certificate-data: AAAA\n"), NULL, KT_EUSAGE,
	            "users[0].user.client-certificate-data does not hold PEM data");
	expect_fail(kubeconfig("", "    client-certificate: a.crt\n"), NULL, KT_EUSAGE,
	            "users[0].user has a client certificate but no client-key");
	expect_fail(kubeconfig("", "    client-key: a.key\n"), NULL, KT_EUSAGE,
	            "users[0].user has a client key but no client-certificate");
	expect_fail(kubeconfig("", "    client-certificate: a.crt\n    client-certificate-data: AAAA\n"),
	            NULL, KT_EUSAGE, "users[0].user sets both client-certificate and "
	            "client-certificate-data (keep one)");
	expect_fail(kubeconfig("    certificate-authority: /ca.crt\n", "    token: t0k\n"), NULL,
	            KT_EUSAGE, "clusters[0].cluster sets both certificate-authority and "
	            "certificate-authority-data");
}

static void test_bad_base64_names_the_field(void)
{
	char user[4096];
	kt_kube_config cfg;
	kt_error err;
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n",
	         b64(1, PEM_CERT), "not*base64");
	CHECK_EQ_U(parse(&cfg, kubeconfig("", user), NULL, &err), KT_EUSAGE);
	CHECK_STR(err.msg, "kubeconfig 'admin.conf': users[0].user.client-key-data is not valid "
	          "base64");
	/* The CA of the cluster too. */
	char text[16384];
	snprintf(text, sizeof(text), "%s", kubeconfig("", "    token: t0k\n"));
	char *ca = strstr(text, "certificate-authority-data: ") + 28;
	ca[0] = '.';
	expect_fail(text, NULL, KT_EUSAGE, "clusters[0].cluster.certificate-authority-data is not "
	            "valid base64");
}

static void test_refused_and_unsupported(void)
{
	expect_fail(kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t0k\n"), NULL,
	            KT_EUSAGE, "clusters[0].cluster.insecure-skip-tls-verify is true: kontinuity "
	            "never turns off TLS verification");
	expect_fail(kubeconfig("    insecure-skip-tls-verify: maybe\n", "    token: t0k\n"), NULL,
	            KT_EUSAGE, "insecure-skip-tls-verify must be true or false");
	expect_fail(kubeconfig("    tls-server-name: k\n", "    token: t0k\n"), NULL, KT_EUSAGE,
	            "clusters[0].cluster.tls-server-name is not supported");
	expect_fail(kubeconfig("    proxy-url: http://p:3128\n", "    token: t0k\n"), NULL,
	            KT_EUSAGE, "clusters[0].cluster.proxy-url is not supported");
	expect_fail(kubeconfig("", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	                           "      command: aws\n"), NULL, KT_EUSAGE,
	            "users[0].user.exec.interactiveMode must be set");
	expect_fail(kubeconfig("", "    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n"
	                           "      command: aws\n"), NULL, KT_EUSAGE,
	            "users[0].user.exec.apiVersion 'client.authentication.k8s.io/v1alpha1' is not "
	            "supported");
	expect_fail(kubeconfig("", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	                           "      command: aws\n      interactiveMode: Always\n"), NULL,
	            KT_EUSAGE, "kontinuity never runs a plugin interactively");
	expect_fail(kubeconfig("", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	                           "      interactiveMode: Never\n"), NULL, KT_EUSAGE,
	            "users[0].user.exec.command is missing");
	expect_fail(kubeconfig("", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
	                           "      command: aws\n      interactiveMode: Never\n"
	                           "      env: [{value: x}]\n"), NULL, KT_EUSAGE,
	            "users[0].user.exec.env[0].name is missing");
	expect_fail(kubeconfig("", "    token: t0k\n    exec:\n"
	                           "      apiVersion: client.authentication.k8s.io/v1\n"
	                           "      command: aws\n      interactiveMode: Never\n"), NULL,
	            KT_EUSAGE, "sets exec and also a token");
	expect_fail(kubeconfig("", "    auth-provider:\n      name: oidc\n"), NULL, KT_EUSAGE,
	            "users[0].user.auth-provider: auth-provider plugins are not supported");
	expect_fail(kubeconfig("", "    username: admin\n    password: hunter2\n"), NULL, KT_EUSAGE,
	            "basic authentication was removed");
	expect_fail(kubeconfig("", "    as: someone\n    token: t0k\n"), NULL, KT_EUSAGE,
	            "users[0].user.as: impersonation is not supported");
	/* A token over http:// would travel in clear text. */
	expect_fail("clusters: [{name: c, cluster: {server: 'http://h:8080'}}]\n"
	            "users: [{name: u, user: {token: t0k3n}}]\n"
	            "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
	            NULL, KT_EUSAGE, "refusing to send the token of user 'u' in clear text");
}

static void test_exec_parsed(void)
{
	kt_kube_config cfg;
	kt_error err;
	CHECK_EQ_U(parse(&cfg, kubeconfig("", "    exec:\n"
	                                      "      apiVersion: client.authentication.k8s.io/v1beta1\n"
	                                      "      command: bin/get-token\n"
	                                      "      args: [--cluster, prod]\n"
	                                      "      env:\n      - {name: AWS_PROFILE, value: ops}\n"
	                                      "      installHint: install get-token\n"
	                                      "      provideClusterInfo: true\n"), NULL, &err),
	           KT_OK);
	CHECK(cfg.exec != NULL);
	if (cfg.exec) {
		CHECK_STR(cfg.exec->command, "/etc/k/bin/get-token");
		CHECK_EQ_U(cfg.exec->n_args, 2);
		CHECK_STR(cfg.exec->args[1], "prod");
		CHECK_EQ_U(cfg.exec->n_env, 1);
		CHECK_STR(cfg.exec->env[0], "AWS_PROFILE=ops");
		CHECK_STR(cfg.exec->install_hint, "install get-token");
		CHECK(cfg.exec->provide_cluster_info == 1);
	}
	kt_kube_config_release(&cfg);
	/* A bare name is looked up on PATH when it runs, not resolved now. */
	CHECK_EQ_U(parse(&cfg, kubeconfig("", "    exec:\n"
	                                      "      apiVersion: client.authentication.k8s.io/v1\n"
	                                      "      interactiveMode: IfAvailable\n"
	                                      "      command: aws\n"), NULL, &err), KT_OK);
	CHECK_STR(cfg.exec ? cfg.exec->command : "", "aws");
	kt_kube_config_release(&cfg);
}

static void test_merge_files(void)
{
	kt_kube_config cfg;
	kt_error err;
	const char *a = "current-context: a\n"
	                "contexts: [{name: a, context: {cluster: c, user: u, namespace: one}}]\n"
	                "users: [{name: u, user: {tokenFile: tok}}]\n";
	const char *b = "current-context: b\n"
	                "contexts: [{name: a, context: {cluster: nowhere}},\n"
	                "           {name: b, context: {cluster: c}}]\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:6443', "
	                "certificate-authority: ca.crt}}]\n"
	                "users: [{name: u, user: {token: second}}]\n";
	kt_kube_file files[] = {
		{ "/a/config", "/a", a, strlen(a) },
		{ "/b/config", "/b", b, strlen(b) },
	};
	/* current-context from the first file; context a from the first file
	 * that defines it; the cluster from the second, its path against /b;
	 * the user from the first (its tokenFile against /a). */
	CHECK_EQ_U(kt_kube_config_parse_files(&cfg, files, 2, NULL, &err), KT_OK);
	CHECK_STR(cfg.context, "a");
	CHECK_STR(cfg.namespace, "one");
	CHECK_STR(cfg.server, "https://h:6443");
	CHECK_STR(cfg.ca_file, "/b/ca.crt");
	CHECK_STR(cfg.token_file, "/a/tok");
	CHECK(cfg.token == NULL);
	CHECK_STR(cfg.source, "kubeconfig '/a/config:/b/config'");
	kt_kube_config_release(&cfg);
	/* --context b: from the second file. */
	CHECK_EQ_U(kt_kube_config_parse_files(&cfg, files, 2, "b", &err), KT_OK);
	CHECK_STR(cfg.context, "b");
	CHECK(cfg.user == NULL);
	kt_kube_config_release(&cfg);
	/* A name defined nowhere is named with the file that asked. */
	CHECK_EQ_U(kt_kube_config_parse_files(&cfg, files, 2, "zzz", &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "kubeconfig '/a/config': context 'zzz' is not defined in contexts of "
	               "any file");
	/* A broken second file fails even though the first has everything. */
	files[1].data = "users: [oops";
	files[1].len = strlen(files[1].data);
	CHECK_EQ_U(kt_kube_config_parse_files(&cfg, files, 2, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "kubeconfig '/b/config': not valid YAML");
}

static void test_token_never_in_messages(void)
{
	kt_kube_config cfg;
	kt_error err;
	/* A token with a blank inside is refused without quoting it. */
	const char *t = kubeconfig("", "    token: \"" TOKEN " tail\"\n");
	CHECK_EQ_U(parse(&cfg, t, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "users[0].user.token is not a usable bearer token");
	CHECK(strstr(err.msg, TOKEN) == NULL);
	/* Nor does an error elsewhere in a file with a token quote it. */
	t = kubeconfig("    insecure-skip-tls-verify: yes\n", "    token: " TOKEN "\n");
	CHECK_EQ_U(parse(&cfg, t, NULL, &err), KT_EUSAGE);
	CHECK(strstr(err.msg, TOKEN) == NULL);
}

/* ---- hostile YAML ---- */

static void test_hostile_yaml(void)
{
	kt_kube_config cfg;
	kt_error err;

	expect_fail("", NULL, KT_EUSAGE, "is empty");
	expect_fail("# only a comment\n", NULL, KT_EUSAGE, "is empty");
	expect_fail("- a\n- b\n", NULL, KT_EUSAGE, "the top level is a list, not a mapping");
	expect_fail("just text", NULL, KT_EUSAGE, "the top level is a scalar");
	expect_fail("clusters: [\n", NULL, KT_EUSAGE, "not valid YAML: ");
	expect_fail("a: b\n  c: d\n", NULL, KT_EUSAGE, "at line 2");
	expect_fail("a: *nothing\n", NULL, KT_EUSAGE, "not valid YAML");
	expect_fail("kind: Config\n---\nkind: Config\n", NULL, KT_EUSAGE,
	            "holds more than one YAML document");

	/* Deep nesting stops at the depth limit, before a document is built. */
	char *deep = kt_xmalloc(20001);
	memset(deep, '[', 10000);
	memset(deep + 10000, ']', 10000);
	deep[20000] = '\0';
	expect_fail(deep, NULL, KT_ELIMIT, "nests deeper than 64 levels");
	memset(deep, '{', 10000);
	deep[10000] = '\0';
	expect_fail(deep, NULL, KT_ELIMIT, "nests deeper than 64 levels");
	free(deep);

	/* Size limit. */
	size_t big = KT_KUBE_MAX_CONFIG + 1;
	char *huge = kt_xmalloc(big + 1);
	memset(huge, '#', big);
	huge[big] = '\0';
	CHECK_EQ_U(kt_kube_config_parse(&cfg, huge, big, "admin.conf", NULL, NULL, &err),
	           KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "more than the 4194304 allowed");
	free(huge);

	/* A cyclic alias: users[0] is the list itself, which is not a mapping. */
	expect_fail("clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
	            "users: &u [*u]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
	            "current-context: x\n", NULL, KT_EUSAGE, "users[0] must be a mapping, not a list");
	/* Billion laughs: aliases are references, never expanded. */
	const char *laughs =
		"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\n"
		"clusters: *f\ncontexts: [{name: x, context: {cluster: x}}]\ncurrent-context: x\n";
	expect_fail(laughs, NULL, KT_EUSAGE, "clusters[0] must be a mapping, not a list");
	/* Aliases used sensibly work. */
	const char *anchors = "clusters: [{name: c, cluster: &cl {server: 'https://h:9'}}]\n"
	                      "contexts: [{name: x, context: {cluster: c}}, "
	                      "{name: y, context: {cluster: c}}]\ncurrent-context: y\n"
	                      "extra: *cl\n";
	CHECK_EQ_U(parse(&cfg, anchors, NULL, &err), KT_OK);
	CHECK_STR(cfg.server, "https://h:9");
	kt_kube_config_release(&cfg);

	/* A NUL byte inside a scalar (libyaml rejects raw NULs; escaped too). */
	expect_fail("current-context: \"a\\0b\"\n", NULL, KT_EUSAGE, "current-context holds a NUL");
	const char raw[] = "current-context: a\0b\n";
	CHECK(kt_kube_config_parse(&cfg, raw, sizeof(raw) - 1, "admin.conf", NULL, NULL, &err)
	      != KT_OK);
	/* Non-scalar keys and odd tags do not confuse lookups. */
	expect_fail("? [a]\n: b\n!!str current-context: !!binary eA==\n", NULL, KT_ENOTFOUND,
	            "current-context names context 'eA=='");
}

/* ---- files ---- */

static char tmpdir[256];

static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		CHECK(!"cannot write temp file");
		return;
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void test_load_file(void)
{
	kt_kube_config cfg;
	kt_error err;
	char path[512];

	snprintf(path, sizeof(path), "%s/kubeconfig", tmpdir);
	write_file("kubeconfig", kubeconfig("", "    token: " TOKEN "\n"), 0600);
	CHECK_EQ_U(kt_kube_config_load(&cfg, path, "b", &err), KT_OK);
	char want[600];
	snprintf(want, sizeof(want), "%s/pki/ca.crt", tmpdir);
	CHECK_STR(cfg.ca_file, want);
	snprintf(want, sizeof(want), "kubeconfig '%s'", path);
	CHECK_STR(cfg.source, want);

	/* A client checks referenced files up front, naming the field. */
	kt_kube *c = NULL;
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "cannot read certificate-authority '");
	CHECK_CONTAINS(err.msg, "/pki/ca.crt' of cluster 'cb'");
	CHECK(c == NULL);
	kt_kube_config_release(&cfg);

	/* tokenFile: read at client creation, trimmed, registered for redaction. */
	char d[512];
	snprintf(d, sizeof(d), "%s/pki", tmpdir);
	mkdir(d, 0700);
	snprintf(d, sizeof(d), "%s/secrets", tmpdir);
	mkdir(d, 0700);
	write_file("pki/ca.crt", PEM_CERT, 0600);
	write_file("secrets/token", "\n  file-t0ken-0123456789abcdef \n", 0600);
	CHECK_EQ_U(kt_kube_config_load(&cfg, path, "b", &err), KT_OK);
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_OK);
	CHECK_STR(kt_kube_client_config(c)->server, "https://b.example:443");
	kt_kube_client_free(c);
	c = NULL;
	kt_buf b;
	kt_buf_init(&b, 4096);
	kt_redact(&b, "x file-t0ken-0123456789abcdef y");
	CHECK_STR(b.data, "x [REDACTED] y");
	kt_buf_release(&b);

	write_file("secrets/token", "two words-0123456789\n", 0600);
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "/secrets/token' of user 'ub' is empty or holds blanks");
	CHECK(strstr(err.msg, "words-0123456789") == NULL);
	write_file("secrets/token", "\n", 0600);
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_EUSAGE);
	snprintf(d, sizeof(d), "%s/secrets/token", tmpdir);
	unlink(d);
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "cannot open token file '");
	CHECK(c == NULL);
	kt_kube_config_release(&cfg);

	/* Inline PEM goes to memory files: the client builds. */
	char user[4096];
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n",
	         b64(1, PEM_CERT), b64(2, PEM_KEY));
	write_file("kubeconfig", kubeconfig("", user), 0600);
	CHECK_EQ_U(kt_kube_config_load(&cfg, path, NULL, &err), KT_OK);
	CHECK_EQ_U(kt_kube_client_new(&c, &cfg, NULL, &err), KT_OK);
	kt_kube_client_free(c);
	kt_kube_config_release(&cfg);

	/* Missing file, directory, oversized file. */
	snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
	CHECK_EQ_U(kt_kube_config_load(&cfg, path, NULL, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "cannot open kubeconfig '");
	CHECK_CONTAINS(err.msg, "nope.conf'");
	CHECK_EQ_U(kt_kube_config_load(&cfg, tmpdir, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "is not a regular file");
	CHECK_EQ_U(kt_kube_config_load(&cfg, "/dev/zero", NULL, &err), KT_EUSAGE);
}

static void test_in_cluster(void)
{
	kt_kube_config cfg;
	kt_error err;
	char dir[512];

	snprintf(dir, sizeof(dir), "%s/sa", tmpdir);
	mkdir(dir, 0700);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "no service-account token '");

	write_file("sa/token", "sa-t0ken-0123456789\n", 0600);
	write_file("sa/namespace", "kube-system", 0600);
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_OK);
	CHECK_STR(cfg.server, "https://10.96.0.1:443");
	CHECK_STR(cfg.namespace, "kube-system");
	CHECK_STR(cfg.source, "in-cluster config");
	char want[600];
	snprintf(want, sizeof(want), "%s/token", dir);
	CHECK_STR(cfg.token_file, want);
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	CHECK_STR(cfg.ca_file, want);
	CHECK(cfg.token == NULL);
	kt_kube_config_release(&cfg);

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_OK);
	CHECK_STR(cfg.server, "https://[fd00::1]:443");
	kt_kube_config_release(&cfg);

	setenv("KUBERNETES_SERVICE_HOST", "evil/host", 1);
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_EUSAGE);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "99999", 1);
	CHECK_EQ_U(kt_kube_config_in_cluster(&cfg, dir, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "KUBERNETES_SERVICE_PORT '99999' is not a port number");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_names(void)
{
	CHECK(kt_kube_valid_label("kube-system"));
	CHECK(kt_kube_valid_label("a"));
	CHECK(!kt_kube_valid_label(""));
	CHECK(!kt_kube_valid_label("-a"));
	CHECK(!kt_kube_valid_label("a-"));
	CHECK(!kt_kube_valid_label("A"));
	CHECK(!kt_kube_valid_label("a.b"));
	CHECK(!kt_kube_valid_label("../x"));
	CHECK(kt_kube_valid_name("zadara-backup-export"));
	CHECK(kt_kube_valid_name("a.b-c.d"));
	CHECK(!kt_kube_valid_name("a..b"));
	CHECK(!kt_kube_valid_name(".a"));
	CHECK(!kt_kube_valid_name("a/b"));
	CHECK(!kt_kube_valid_name("a%2Fb"));
}

/* ---- static pod manifests ---- */

/* What kubeadm 1.31 writes to /etc/kubernetes/manifests/etcd.yaml. */
static const char KUBEADM_ETCD[] =
	"apiVersion: v1\n"
	"kind: Pod\n"
	"metadata:\n"
	"  annotations:\n"
	"    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.5:2379\n"
	"  creationTimestamp: null\n"
	"  labels:\n"
	"    component: etcd\n"
	"    tier: control-plane\n"
	"  name: etcd\n"
	"  namespace: kube-system\n"
	"spec:\n"
	"  containers:\n"
	"  - command:\n"
	"    - etcd\n"
	"    - --advertise-client-urls=https://10.0.0.5:2379\n"
	"    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n"
	"    - --client-cert-auth=true\n"
	"    - --data-dir=/var/lib/etcd\n"
	"    - --experimental-initial-corrupt-check=true\n"
	"    - --experimental-watch-progress-notify-interval=5s\n"
	"    - --initial-advertise-peer-urls=https://10.0.0.5:2380\n"
	"    - --initial-cluster=cp1=https://10.0.0.5:2380,cp2=https://10.0.0.6:2380\n"
	"    - --initial-cluster-state=existing\n"
	"    - --key-file=/etc/kubernetes/pki/etcd/server.key\n"
	"    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379\n"
	"    - --listen-metrics-urls=http://127.0.0.1:2381\n"
	"    - --listen-peer-urls=https://10.0.0.5:2380\n"
	"    - --name=cp1\n"
	"    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt\n"
	"    - --peer-client-cert-auth=true\n"
	"    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key\n"
	"    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
	"    - --snapshot-count=10000\n"
	"    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
	"    image: registry.k8s.io/etcd:3.5.15-0\n"
	"    imagePullPolicy: IfNotPresent\n"
	"    livenessProbe:\n"
	"      failureThreshold: 8\n"
	"      httpGet:\n"
	"        host: 127.0.0.1\n"
	"        path: /livez\n"
	"        port: 2381\n"
	"        scheme: HTTP\n"
	"      initialDelaySeconds: 10\n"
	"      periodSeconds: 10\n"
	"      timeoutSeconds: 15\n"
	"    name: etcd\n"
	"    readinessProbe:\n"
	"      failureThreshold: 3\n"
	"      httpGet:\n"
	"        host: 127.0.0.1\n"
	"        path: /readyz\n"
	"        port: 2381\n"
	"        scheme: HTTP\n"
	"      periodSeconds: 1\n"
	"      timeoutSeconds: 15\n"
	"    resources:\n"
	"      requests:\n"
	"        cpu: 100m\n"
	"        memory: 100Mi\n"
	"    startupProbe:\n"
	"      failureThreshold: 24\n"
	"      httpGet:\n"
	"        host: 127.0.0.1\n"
	"        path: /readyz\n"
	"        port: 2381\n"
	"        scheme: HTTP\n"
	"      initialDelaySeconds: 10\n"
	"      periodSeconds: 10\n"
	"      timeoutSeconds: 15\n"
	"    volumeMounts:\n"
	"    - mountPath: /var/lib/etcd\n"
	"      name: etcd-data\n"
	"    - mountPath: /etc/kubernetes/pki/etcd\n"
	"      name: etcd-certs\n"
	"  hostNetwork: true\n"
	"  priority: 2000001000\n"
	"  priorityClassName: system-node-critical\n"
	"  securityContext:\n"
	"    seccompProfile:\n"
	"      type: RuntimeDefault\n"
	"  volumes:\n"
	"  - hostPath:\n"
	"      path: /etc/kubernetes/pki/etcd\n"
	"      type: DirectoryOrCreate\n"
	"    name: etcd-certs\n"
	"  - hostPath:\n"
	"      path: /var/lib/etcd\n"
	"      type: DirectoryOrCreate\n"
	"    name: etcd-data\n"
	"status: {}\n";

#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd, namespace: kube-system}\n"

static kt_code sp_parse(kt_kube_staticpod *p, const char *text, const char *container,
                        kt_error *err)
{
	kt_error_clear(err);
	return kt_kube_staticpod_parse(p, text, strlen(text), container, err);
}

/* Parse text expecting failure with code and a message containing want. */
static void sp_fail(const char *text, const char *container, kt_code code, const char *want)
{
	kt_kube_staticpod p;
	kt_error err;
	kt_code rc = sp_parse(&p, text, container, &err);
	CHECK_EQ_U(rc, code);
	CHECK_EQ_U(err.code, code);
	CHECK_CONTAINS(err.msg, "static pod manifest: ");
	CHECK_CONTAINS(err.msg, want);
	CHECK(p.argv == NULL && p.container == NULL && p.n_argv == 0);
	if (rc == KT_OK)
		kt_kube_staticpod_release(&p);
}

/* p's argv joined with spaces (one static buffer). */
static const char *sp_joined(const kt_kube_staticpod *p)
{
	static char buf[8192];
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < p->n_argv && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? " " : "", p->argv[i]);
	return buf;
}

/* Rewrite text, check it succeeds, parse the result into *p; returns the
 * rewritten text (static buffer). */
static const char *sp_rewrite(kt_kube_staticpod *p, const char *text, const char *container,
                              const char *const *add, const char *const *remove)
{
	static char outbuf[1 << 16];
	kt_buf out;
	kt_error err;
	kt_error_clear(&err);
	kt_buf_init(&out, KT_BUF_UNLIMITED);
	memset(p, 0, sizeof(*p));
	kt_code rc = kt_kube_staticpod_rewrite(text, strlen(text), container, add, remove, &out,
	                                       &err);
	CHECK_EQ_U(rc, KT_OK);
	if (rc)
		fprintf(stderr, "  rewrite failed: %s\n", err.msg);
	snprintf(outbuf, sizeof(outbuf), "%s", out.data);
	if (rc == KT_OK) {
		rc = kt_kube_staticpod_parse(p, out.data, out.len, container, &err);
		CHECK_EQ_U(rc, KT_OK);
		if (rc)
			fprintf(stderr, "  re-parse failed: %s\n---\n%s---\n", err.msg, out.data);
	}
	kt_buf_release(&out);
	return outbuf;
}

static void test_staticpod_kubeadm(void)
{
	kt_kube_staticpod p;
	kt_error err;
	CHECK_EQ_U(sp_parse(&p, KUBEADM_ETCD, NULL, &err), KT_OK);
	CHECK_STR(p.container, "etcd");
	CHECK_STR(p.image, "registry.k8s.io/etcd:3.5.15-0");
	CHECK_EQ_U(p.n_argv, 21);
	CHECK_EQ_U(p.n_command, 21);
	CHECK_EQ_U(p.first_flag, 1);
	CHECK_STR(p.argv[0], "etcd");
	CHECK(p.argv[21] == NULL);
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "cp1");
	CHECK_STR(kt_kube_staticpod_flag(&p, "--name"), "cp1");
	CHECK_STR(kt_kube_staticpod_flag(&p, "data-dir"), "/var/lib/etcd");
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-cluster"),
	          "cp1=https://10.0.0.5:2380,cp2=https://10.0.0.6:2380");
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-cluster-state"), "existing");
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-advertise-peer-urls"), "https://10.0.0.5:2380");
	CHECK_STR(kt_kube_staticpod_flag(&p, "client-cert-auth"), "true");
	CHECK_STR(kt_kube_staticpod_flag(&p, "trusted-ca-file"), "/etc/kubernetes/pki/etcd/ca.crt");
	CHECK(kt_kube_staticpod_flag(&p, "force-new-cluster") == NULL);
	CHECK(kt_kube_staticpod_flag(&p, "etcd") == NULL); /* the program is not a flag */
	CHECK(kt_kube_staticpod_flag(&p, "") == NULL);
	CHECK(kt_kube_staticpod_flag(&p, "initial") == NULL); /* whole names only */
	CHECK(kt_kube_staticpod_flag(NULL, "name") == NULL);
	kt_kube_staticpod_release(&p);
	CHECK(p.argv == NULL && p.container == NULL && p.image == NULL && p.n_argv == 0);
	kt_kube_staticpod_release(&p); /* twice is fine */
	kt_kube_staticpod_release(NULL);

	/* Naming the container explicitly gives the same. */
	CHECK_EQ_U(sp_parse(&p, KUBEADM_ETCD, "etcd", &err), KT_OK);
	CHECK_EQ_U(p.n_argv, 21);
	kt_kube_staticpod_release(&p);
	sp_fail(KUBEADM_ETCD, "etcd2", KT_EPROTO, "no container 'etcd2' in spec.containers (it "
	        "has 'etcd')");
}

static void test_staticpod_flow_and_json(void)
{
	kt_kube_staticpod p;
	kt_error err;
	const char *flow = "{apiVersion: v1, kind: Pod, spec: {containers: [{name: etcd, image: e:1, "
	                   "command: [etcd, --name=a, '--data-dir=/x y', \"--initial-cluster="
	                   "a=https://h:2380\"]}]}}";
	CHECK_EQ_U(sp_parse(&p, flow, NULL, &err), KT_OK);
	CHECK_STR(sp_joined(&p), "etcd --name=a --data-dir=/x y --initial-cluster=a=https://h:2380");
	CHECK_STR(kt_kube_staticpod_flag(&p, "data-dir"), "/x y");
	kt_kube_staticpod_release(&p);

	const char *json = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"etcd\"},"
	                   "\"spec\":{\"containers\":[{\"name\":\"etcd\",\"image\":\"e\",\"command\":"
	                   "[\"/usr/local/bin/etcd\",\"--name=j\"],\"args\":[\"--data-dir=/d\"]}]}}";
	CHECK_EQ_U(sp_parse(&p, json, NULL, &err), KT_OK);
	CHECK_STR(sp_joined(&p), "/usr/local/bin/etcd --name=j --data-dir=/d");
	CHECK_EQ_U(p.n_command, 2);
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "j");
	CHECK_STR(kt_kube_staticpod_flag(&p, "data-dir"), "/d");
	kt_kube_staticpod_release(&p);
}

static void test_staticpod_flag_forms(void)
{
	kt_kube_staticpod p;
	kt_error err;
	const char *t = POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command:\n"
	                "    - etcd\n"
	                "    - --name\n    - cp1\n"               /* --flag value */
	                "    - -data-dir\n    - /var/lib/etcd\n"  /* single dash */
	                "    - -initial-cluster-state=new\n"
	                "    - --force-new-cluster\n"             /* bare boolean */
	                "    - --client-cert-auth\n    - stray\n" /* a boolean takes no value */
	                "    - --listen-metrics-urls=\n"          /* empty value */
	                "    - --log-level\n    - \"\"\n"         /* empty value, separate */
	                "    - --snapshot-count=1\n    - --snapshot-count=2\n" /* last wins */
	                "    - --pre-vote=false\n"
	                "    - --unknown-bare\n    - --quota-backend-bytes=8\n"
	                "    - ---bad\n    - --=x\n    - '-'\n"
	                "    - --auto-compaction-mode\n"          /* last, no value */
	                "    - --\n    - --after=1\n";            /* "--" ends the flags */
	CHECK_EQ_U(sp_parse(&p, t, NULL, &err), KT_OK);
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "cp1");
	CHECK_STR(kt_kube_staticpod_flag(&p, "data-dir"), "/var/lib/etcd");
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-cluster-state"), "new");
	CHECK_STR(kt_kube_staticpod_flag(&p, "force-new-cluster"), "true");
	CHECK_STR(kt_kube_staticpod_flag(&p, "client-cert-auth"), "true");
	CHECK(kt_kube_staticpod_flag(&p, "stray") == NULL);
	CHECK_STR(kt_kube_staticpod_flag(&p, "listen-metrics-urls"), "");
	CHECK_STR(kt_kube_staticpod_flag(&p, "log-level"), "");
	CHECK_STR(kt_kube_staticpod_flag(&p, "snapshot-count"), "2");
	CHECK_STR(kt_kube_staticpod_flag(&p, "pre-vote"), "false");
	CHECK_STR(kt_kube_staticpod_flag(&p, "unknown-bare"), "true");
	CHECK_STR(kt_kube_staticpod_flag(&p, "quota-backend-bytes"), "8");
	CHECK(kt_kube_staticpod_flag(&p, "bad") == NULL);
	CHECK(kt_kube_staticpod_flag(&p, "-bad") == NULL);
	CHECK_STR(kt_kube_staticpod_flag(&p, "auto-compaction-mode"), "true");
	CHECK(kt_kube_staticpod_flag(&p, "after") == NULL);
	kt_kube_staticpod_release(&p);
}

static void test_staticpod_args_and_containers(void)
{
	kt_kube_staticpod p;
	kt_error err;

	/* Only args: the image's entrypoint is the program, args are all flags. */
	const char *args_only = POD_HEAD "spec:\n  containers:\n  - name: etcd\n    image: e\n"
	                        "    args: [--name=a, --data-dir=/d]\n";
	CHECK_EQ_U(sp_parse(&p, args_only, NULL, &err), KT_OK);
	CHECK_EQ_U(p.n_argv, 2);
	CHECK_EQ_U(p.n_command, 0);
	CHECK_EQ_U(p.first_flag, 0);
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "a");
	kt_kube_staticpod_release(&p);

	/* Several containers: etcd is found wherever it is; an explicit name
	 * picks another; with one container of another name, that one. */
	const char *multi = POD_HEAD "spec:\n  containers:\n"
	                    "  - {name: sidecar, image: s, command: [sleep, infinity]}\n"
	                    "  - command: [etcd, --name=m]\n    name: etcd\n    image: e\n"
	                    "  - {name: helper, image: h, args: [--x=1]}\n";
	CHECK_EQ_U(sp_parse(&p, multi, NULL, &err), KT_OK);
	CHECK_STR(p.container, "etcd");
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "m");
	kt_kube_staticpod_release(&p);
	CHECK_EQ_U(sp_parse(&p, multi, "helper", &err), KT_OK);
	CHECK_STR(p.container, "helper");
	CHECK_STR(p.image, "h");
	CHECK_STR(kt_kube_staticpod_flag(&p, "x"), "1");
	kt_kube_staticpod_release(&p);
	sp_fail(multi, "nope", KT_EPROTO, "no container 'nope' in spec.containers (it has "
	        "'sidecar', 'etcd', 'helper')");

	const char *single = POD_HEAD "spec:\n  containers:\n  - {name: my-etcd, command: [etcd]}\n";
	CHECK_EQ_U(sp_parse(&p, single, NULL, &err), KT_OK);
	CHECK_STR(p.container, "my-etcd");
	CHECK(p.image == NULL);
	kt_kube_staticpod_release(&p);
	sp_fail(single, "etcd", KT_EPROTO, "no container 'etcd'"); /* no fallback when named */

	const char *two = POD_HEAD "spec:\n  containers:\n  - {name: a, command: [sh]}\n"
	                  "  - {name: b, command: [ls]}\n";
	sp_fail(two, NULL, KT_EPROTO, "no container 'etcd' in spec.containers (it has 'a', 'b')");
	const char *dup = POD_HEAD "spec:\n  containers:\n  - {name: etcd, command: [sh]}\n"
	                  "  - {name: etcd, command: [ls]}\n";
	sp_fail(dup, NULL, KT_EPROTO, "line 7 column 5: spec.containers[0] and [1] are both named "
	        "'etcd'");

	/* No command. */
	sp_fail(POD_HEAD "spec:\n  containers:\n  - name: etcd\n    image: e\n", NULL, KT_EPROTO,
	        "line 6 column 5: container 'etcd' (spec.containers[0]) has no command");
	sp_fail(POD_HEAD "spec:\n  containers:\n  - {name: etcd, command: [], args: ~}\n", NULL,
	        KT_EPROTO, "container 'etcd' (spec.containers[0]) has no command");
	sp_fail(POD_HEAD "spec:\n  containers:\n  - {name: etcd, command: }\n", NULL, KT_EPROTO,
	        "has no command");
	sp_fail(POD_HEAD "spec:\n  containers: []\n", NULL, KT_EPROTO, "spec.containers is empty");
	sp_fail(POD_HEAD "spec: {}\n", NULL, KT_EPROTO, "spec.containers is missing");
	sp_fail(POD_HEAD, NULL, KT_EPROTO, "spec.containers is missing");
}

static void test_staticpod_not_a_pod(void)
{
	sp_fail("", NULL, KT_EPROTO, "is empty (expected a Pod)");
	sp_fail("# nothing\n", NULL, KT_EPROTO, "is empty");
	sp_fail("---\n", NULL, KT_EPROTO, "is empty");
	sp_fail("- a\n", NULL, KT_EPROTO, "line 1 column 1: not a Pod: the top level is a list, "
	        "not a mapping");
	sp_fail("just text\n", NULL, KT_EPROTO, "not a Pod: the top level is a scalar");
	sp_fail("apiVersion: apps/v1\nkind: Deployment\nspec: {}\n", NULL, KT_EPROTO,
	        "not a Pod: kind is 'Deployment'");
	sp_fail("apiVersion: v1\nspec: {}\n", NULL, KT_EPROTO, "not a Pod: kind is missing");
	sp_fail("kind: Pod\nspec: {}\n", NULL, KT_EPROTO, "apiVersion is missing");
	sp_fail("apiVersion: v2\nkind: Pod\n", NULL, KT_EPROTO, "apiVersion is 'v2', expected 'v1'");
	sp_fail("apiVersion: v1\nkind: [Pod]\n", NULL, KT_EPROTO,
	        "line 2 column 7: kind is a list, not a string");
	sp_fail(POD_HEAD "---\n" POD_HEAD, NULL, KT_EPROTO, "line 4 column 1: holds more than one "
	        "YAML document");
	sp_fail(POD_HEAD "spec:\n  containers:\n  - name: etcd\n   command: [x]\n", NULL,
	        KT_EPROTO, "not valid YAML: ");
	sp_fail(POD_HEAD "spec: {containers: [}\n", NULL, KT_EPROTO,
	        "line 4 column 21: not valid YAML: did not find expected node content");
}

static void test_staticpod_wrong_types(void)
{
#define C1 POD_HEAD "spec:\n  containers:\n  - name: etcd\n"
	sp_fail(C1 "    command: {a: b}\n", NULL, KT_EPROTO,
	        "line 7 column 14: spec.containers[0].command is a mapping, not a list of strings");
	sp_fail(C1 "    command: etcd --name=x\n", NULL, KT_EPROTO,
	        "spec.containers[0].command is a scalar, not a list of strings");
	sp_fail(C1 "    command:\n    - etcd\n    - {name: x}\n", NULL, KT_EPROTO,
	        "line 9 column 7: spec.containers[0].command[1] is a mapping, not a string");
	sp_fail(C1 "    args: [[a]]\n", NULL, KT_EPROTO,
	        "spec.containers[0].args[0] is a list, not a string");
	sp_fail(C1 "    command: [etcd, --port, 2379]\n", NULL, KT_EPROTO,
	        "spec.containers[0].command[2] is a number (2379), not a string; quote it");
	sp_fail(C1 "    command: [etcd, 0x1F]\n", NULL, KT_EPROTO, "is a number (0x1F)");
	sp_fail(C1 "    command: [etcd, -1.5e3]\n", NULL, KT_EPROTO, "is a number (-1.5e3)");
	sp_fail(C1 "    command: [etcd, 1_000]\n", NULL, KT_EPROTO, "is a number (1_000)");
	sp_fail(C1 "    command: [etcd, .inf]\n", NULL, KT_EPROTO, "is a number (.inf)");
	sp_fail(C1 "    command: [etcd, true]\n", NULL, KT_EPROTO,
	        "command[1] is a boolean (true), not a string");
	sp_fail(C1 "    command: [etcd, on]\n", NULL, KT_EPROTO, "is a boolean (on)");
	sp_fail(C1 "    command: [etcd, ~]\n", NULL, KT_EPROTO,
	        "command[1] is null, not a string (write \"\" for an empty one)");
	sp_fail(C1 "    command: [etcd, !!int '7']\n", NULL, KT_EPROTO,
	        "command[1] has the tag 'tag:yaml.org,2002:int', not a string");
	sp_fail(C1 "    command: [etcd, \"a\\0b\"]\n", NULL, KT_EPROTO, "command[1] holds a NUL");
	sp_fail(C1 "    image: [e]\n    command: [etcd]\n", NULL, KT_EPROTO,
	        "spec.containers[0].image is a list, not a string");
	sp_fail(C1 "    name: other\n    command: [etcd]\n", NULL, KT_EPROTO,
	        "line 7 column 5: spec.containers[0].name is given twice (keep one)");
	sp_fail(C1 "    command: [etcd]\n    command: [etcd]\n", NULL, KT_EPROTO,
	        "line 8 column 5: spec.containers[0].command is given twice (keep one)");
	sp_fail(C1 "    command: [etcd]\nspec: {}\n", NULL, KT_EPROTO,
	        "line 8 column 1: spec is given twice");
	sp_fail("kind: Pod\napiVersion: v1\nkind: Pod\n", NULL, KT_EPROTO, "kind is given twice");
	sp_fail(C1 "    <<: {command: [etcd]}\n", NULL, KT_EPROTO, "uses a YAML merge key ('<<')");
	sp_fail(POD_HEAD "spec:\n  containers: {etcd: {}}\n", NULL, KT_EPROTO,
	        "spec.containers is a mapping, not a list of containers");
	sp_fail(POD_HEAD "spec:\n  containers: [etcd]\n", NULL, KT_EPROTO,
	        "spec.containers[0] is a scalar, not a mapping");
	sp_fail(POD_HEAD "spec: [containers]\n", NULL, KT_EPROTO, "spec is a list, not a mapping");

	/* Quoted, tagged !!str and non-specific values are strings; so are
	 * keys we do not read given twice, and odd complex keys. */
	kt_kube_staticpod p;
	kt_error err;
	CHECK_EQ_U(sp_parse(&p, C1 "    command: [etcd, '2379', !!str true, ! 1, \"~\", \"\", 1.2.3,"
	                    " 0x, -, yes-no]\n    x: 1\n    x: 2\n    ? [k]\n    : v\n", NULL, &err),
	           KT_OK);
	CHECK_STR(sp_joined(&p), "etcd 2379 true 1 ~  1.2.3 0x - yes-no");
	kt_kube_staticpod_release(&p);
#undef C1
}

static void test_staticpod_aliases_and_limits(void)
{
	kt_kube_staticpod p;
	kt_error err;

	sp_fail(POD_HEAD "x: &cmd [etcd]\nspec:\n  containers:\n  - name: etcd\n    command: *cmd\n",
	        NULL, KT_EPROTO, "line 8 column 14: uses the YAML alias '*cmd', which kontinuity "
	        "does not follow");
	const char *laughs =
		"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n";
	sp_fail(laughs, NULL, KT_EPROTO, "line 2 column 8: uses the YAML alias '*a'");
	/* Anchors without aliases are harmless. */
	CHECK_EQ_U(sp_parse(&p, POD_HEAD "spec:\n  containers:\n  - &c {name: etcd, command: &x "
	                    "[etcd, &y --name=a]}\n", NULL, &err), KT_OK);
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "a");
	kt_kube_staticpod_release(&p);

	/* Size. */
	size_t big = KT_KUBE_STATICPOD_MAX + 1;
	char *huge = kt_xmalloc(big + 1);
	memset(huge, '#', big);
	huge[big] = '\0';
	CHECK_EQ_U(kt_kube_staticpod_parse(&p, huge, big, NULL, &err), KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "is 1048577 bytes, more than the 1048576 allowed");
	free(huge);

	/* Depth. */
	char *deep = kt_xmalloc(20004);
	memcpy(deep, "a: ", 3);
	memset(deep + 3, '[', 10000);
	memset(deep + 10003, ']', 10000);
	deep[20003] = '\0';
	sp_fail(deep, NULL, KT_ELIMIT, "line 1 column 67: nests deeper than 64 levels");
	free(deep);

	/* Entries: 256 fit, 257 do not; an entry of 8 KiB fits, one more byte not. */
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	kt_buf_adds(&b, POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n",
	            &err);
	for (int i = 1; i < KT_KUBE_STATICPOD_MAX_ARGS; i++)
		kt_buf_addf(&b, &err, "    - --f%d=%d\n", i, i);
	CHECK_EQ_U(sp_parse(&p, b.data, NULL, &err), KT_OK);
	CHECK_EQ_U(p.n_argv, 256);
	CHECK_STR(kt_kube_staticpod_flag(&p, "f255"), "255");
	kt_kube_staticpod_release(&p);
	kt_buf_adds(&b, "    args: [--one-too-many]\n", &err);
	sp_fail(b.data, NULL, KT_ELIMIT, "line 264 column 12: spec.containers[0] has more than 256 "
	        "command and args entries");
	kt_buf_reset(&b);
	kt_buf_adds(&b, POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command:\n    - --x=",
	            &err);
	for (int i = 0; i < 8192 - 4; i++)
		kt_buf_add(&b, "a", 1, &err);
	kt_buf_adds(&b, "\n", &err);
	CHECK_EQ_U(sp_parse(&p, b.data, NULL, &err), KT_OK);
	CHECK_EQ_U(strlen(p.argv[0]), 8192);
	kt_kube_staticpod_release(&p);
	b.data[b.len - 1] = 'a';
	kt_buf_adds(&b, "\n", &err);
	sp_fail(b.data, NULL, KT_ELIMIT, "spec.containers[0].command[0] is 8193 bytes, more than "
	        "the 8192 allowed");

	/* Containers. */
	kt_buf_reset(&b);
	kt_buf_adds(&b, POD_HEAD "spec:\n  containers:\n", &err);
	for (int i = 0; i <= KT_KUBE_STATICPOD_MAX_CONTAINERS; i++)
		kt_buf_addf(&b, &err, "  - {name: c%d, command: [x]}\n", i);
	sp_fail(b.data, NULL, KT_ELIMIT, "has more than 64 containers");
	kt_buf_release(&b);
}

static void test_staticpod_rewrite_kubeadm(void)
{
	kt_kube_staticpod orig, p;
	kt_error err;
	const char *add[] = { "--force-new-cluster", "--initial-cluster-state=new", NULL };
	const char *remove[] = { "initial-cluster-state", "force-new-cluster", NULL };

	CHECK_EQ_U(sp_parse(&orig, KUBEADM_ETCD, NULL, &err), KT_OK);
	const char *out = sp_rewrite(&p, KUBEADM_ETCD, NULL, add, remove);
	/* The same command, without the old state, with the two flags last. */
	CHECK_EQ_U(p.n_argv, 22);
	for (size_t i = 0, j = 0; i < orig.n_argv; i++)
		if (strcmp(orig.argv[i], "--initial-cluster-state=existing"))
			CHECK_STR(p.argv[j++], orig.argv[i]);
	CHECK_STR(p.argv[20], "--force-new-cluster");
	CHECK_STR(p.argv[21], "--initial-cluster-state=new");
	CHECK_STR(kt_kube_staticpod_flag(&p, "force-new-cluster"), "true");
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-cluster-state"), "new");
	CHECK_STR(kt_kube_staticpod_flag(&p, "name"), "cp1");
	CHECK_STR(p.image, "registry.k8s.io/etcd:3.5.15-0");
	/* Everything else is still there. */
	CHECK_CONTAINS(out, "hostNetwork: true\n");
	CHECK_CONTAINS(out, "priorityClassName: system-node-critical\n");
	CHECK_CONTAINS(out, "  annotations:\n    kubeadm.kubernetes.io/etcd.advertise-client-urls: "
	               "https://10.0.0.5:2379\n");
	CHECK_CONTAINS(out, "path: /var/lib/etcd\n");
	CHECK_CONTAINS(out, "creationTimestamp: null\n");
	CHECK_CONTAINS(out, "status: {}\n");
	CHECK_CONTAINS(out, "    - --initial-cluster=cp1=https://10.0.0.5:2380,"
	               "cp2=https://10.0.0.6:2380\n");
	CHECK(strstr(out, "existing") == NULL);
	kt_kube_staticpod_release(&p);

	/* Rewriting the rewrite with the same lists changes nothing. */
	char first[1 << 16];
	snprintf(first, sizeof(first), "%s", out);
	out = sp_rewrite(&p, first, NULL, add, remove);
	CHECK_STR(out, first);
	kt_kube_staticpod_release(&p);

	/* Undo: remove what recover added, put "existing" back. */
	const char *undo_add[] = { "--initial-cluster-state=existing", NULL };
	out = sp_rewrite(&p, first, NULL, undo_add, remove);
	CHECK_EQ_U(p.n_argv, 21);
	CHECK(kt_kube_staticpod_flag(&p, "force-new-cluster") == NULL);
	CHECK_STR(kt_kube_staticpod_flag(&p, "initial-cluster-state"), "existing");
	kt_kube_staticpod_release(&p);

	/* name=value removes only that occurrence; nothing to add is fine. */
	const char *rm_existing[] = { "--initial-cluster-state=existing", "snapshot-count=5", NULL };
	out = sp_rewrite(&p, KUBEADM_ETCD, NULL, NULL, rm_existing);
	CHECK_EQ_U(p.n_argv, 20);
	CHECK(kt_kube_staticpod_flag(&p, "initial-cluster-state") == NULL);
	CHECK_STR(kt_kube_staticpod_flag(&p, "snapshot-count"), "10000");
	kt_kube_staticpod_release(&p);

	/* No changes at all: the same argv back. */
	out = sp_rewrite(&p, KUBEADM_ETCD, NULL, NULL, NULL);
	CHECK_STR(sp_joined(&p), sp_joined(&orig) /* same static buffer: compare below */);
	CHECK_EQ_U(p.n_argv, orig.n_argv);
	for (size_t i = 0; i < orig.n_argv && i < p.n_argv; i++)
		CHECK_STR(p.argv[i], orig.argv[i]);
	kt_kube_staticpod_release(&p);
	kt_kube_staticpod_release(&orig);
}

static void test_staticpod_rewrite_forms(void)
{
	kt_kube_staticpod p;
	const char *add[] = { "--force-new-cluster", "--initial-cluster-state=new", NULL };
	const char *remove[] = { "initial-cluster-state", "force-new-cluster", NULL };

	/* "--flag value" pairs go as a pair; single dash too. */
	const char *pairs = POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command:\n"
	                    "    - etcd\n    - --name\n    - cp1\n    - -initial-cluster-state\n"
	                    "    - existing\n    - --data-dir\n    - /d\n    - --force-new-cluster\n";
	sp_rewrite(&p, pairs, NULL, add, remove);
	CHECK_STR(sp_joined(&p), "etcd --name cp1 --data-dir /d --force-new-cluster "
	          "--initial-cluster-state=new");
	kt_kube_staticpod_release(&p);

	/* Args only: the flags go to args. */
	const char *args_only = POD_HEAD "spec:\n  containers:\n  - name: etcd\n"
	                        "    args: [--initial-cluster-state=existing, --name=a]\n"
	                        "    image: e\n";
	const char *out = sp_rewrite(&p, args_only, NULL, add, remove);
	CHECK_EQ_U(p.n_command, 0);
	CHECK_STR(sp_joined(&p), "--name=a --force-new-cluster --initial-cluster-state=new");
	CHECK(strstr(out, "command") == NULL);
	kt_kube_staticpod_release(&p);

	/* Command and args: added flags go last, to args (args listed first in
	 * the file, so the ordinals are not in argv order). */
	const char *both = POD_HEAD "spec:\n  containers:\n  - name: etcd\n"
	                   "    args: [--initial-cluster-state=existing, --name=a]\n"
	                   "    command: [etcd, --initial-cluster-state, existing, --data-dir=/d]\n";
	sp_rewrite(&p, both, NULL, add, remove);
	CHECK_EQ_U(p.n_command, 2);
	CHECK_STR(sp_joined(&p), "etcd --data-dir=/d --name=a --force-new-cluster "
	          "--initial-cluster-state=new");
	kt_kube_staticpod_release(&p);

	/* Command with an empty args list: the flags go to command. */
	const char *empty_args = POD_HEAD "spec:\n  containers:\n  - name: etcd\n"
	                         "    command: [etcd, --name=a]\n    args: []\n";
	sp_rewrite(&p, empty_args, NULL, add, remove);
	CHECK_EQ_U(p.n_command, 4);
	CHECK_STR(sp_joined(&p), "etcd --name=a --force-new-cluster --initial-cluster-state=new");
	kt_kube_staticpod_release(&p);

	/* All of args removed: the flags still go to args. */
	const char *all_args = POD_HEAD "spec:\n  containers:\n  - name: etcd\n"
	                       "    command: [etcd]\n    args: [--initial-cluster-state=existing]\n";
	sp_rewrite(&p, all_args, NULL, add, remove);
	CHECK_EQ_U(p.n_command, 1);
	CHECK_STR(sp_joined(&p), "etcd --force-new-cluster --initial-cluster-state=new");
	kt_kube_staticpod_release(&p);

	/* Flow style and another container: only etcd's list changes. */
	const char *flow = "{apiVersion: v1, kind: Pod, spec: {containers: [{name: side, command: "
	                   "[x, --force-new-cluster]}, {name: etcd, command: [etcd, "
	                   "--initial-cluster-state=existing]}]}}";
	sp_rewrite(&p, flow, NULL, add, remove);
	CHECK_STR(sp_joined(&p), "etcd --force-new-cluster --initial-cluster-state=new");
	kt_kube_staticpod_release(&p);
	sp_rewrite(&p, flow, "side", NULL, NULL);
	CHECK_STR(sp_joined(&p), "x --force-new-cluster");
	kt_kube_staticpod_release(&p);

	/* Comments are not kept (documented). */
	out = sp_rewrite(&p, "# managed by kubeadm\n" POD_HEAD "spec:\n  containers:\n"
	                 "  - name: etcd # the one\n    command: [etcd]\n", NULL, add, NULL);
	CHECK(strstr(out, "#") == NULL);
	CHECK_STR(sp_joined(&p), "etcd --force-new-cluster --initial-cluster-state=new");
	kt_kube_staticpod_release(&p);
}

static void test_staticpod_rewrite_quoting(void)
{
	kt_kube_staticpod orig, p;
	kt_error err;
	const char *t = POD_HEAD
		"  annotations:\n    plain: true\n    quoted: \"true\"\n    number: '2379'\n"
		"    empty: ''\n    nothing:\n    flow: {a: , b: ~}\n"
		"    multi: |\n      line one\n      line two: x\n"
		"spec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n"
		"    - \"--log-outputs=a: b\"\n"
		"    - '--x=# not a comment'\n"
		"    - \"--y=with  spaces \"\n"
		"    - \"--z=tab\\there\"\n"
		"    - \"--nl=line\\nbreak\"\n"
		"    - --initial-cluster=a=https://h:2380\n"
		"    - \"2379\"\n"
		"    - 'true'\n"
		"    - \"\"\n"
		"    - \"--u=\\u00e9t\\u00e9\"\n"
		"    - --initial-cluster-state=existing\n";
	/* The annotations block sits under metadata, which POD_HEAD wrote in
	 * flow style; write a block one instead. */
	char text[4096];
	snprintf(text, sizeof(text), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n%s",
	         t + strlen(POD_HEAD));
	CHECK_EQ_U(sp_parse(&orig, text, NULL, &err), KT_OK);
	const char *add[] = { "--force-new-cluster", "--extra=a: b # c", "--q=\"quoted\" 'x'",
	                      "--e=", NULL };
	const char *remove[] = { "initial-cluster-state", NULL };
	const char *out = sp_rewrite(&p, text, NULL, add, remove);
	CHECK_EQ_U(p.n_argv, orig.n_argv - 1 + 4);
	for (size_t i = 0; i + 1 < orig.n_argv && i < p.n_argv; i++)
		CHECK_STR(p.argv[i], orig.argv[i]);
	CHECK_STR(kt_kube_staticpod_flag(&p, "log-outputs"), "a: b");
	CHECK_STR(kt_kube_staticpod_flag(&p, "x"), "# not a comment");
	CHECK_STR(kt_kube_staticpod_flag(&p, "y"), "with  spaces ");
	CHECK_STR(kt_kube_staticpod_flag(&p, "z"), "tab\there");
	CHECK_STR(kt_kube_staticpod_flag(&p, "nl"), "line\nbreak");
	CHECK_STR(kt_kube_staticpod_flag(&p, "u"), "\xc3\xa9t\xc3\xa9");
	CHECK_STR(kt_kube_staticpod_flag(&p, "extra"), "a: b # c");
	CHECK_STR(kt_kube_staticpod_flag(&p, "q"), "\"quoted\" 'x'");
	CHECK_STR(kt_kube_staticpod_flag(&p, "e"), "");
	CHECK_STR(p.argv[7], "2379");
	CHECK_STR(p.argv[8], "true");
	CHECK_STR(p.argv[9], "");
	/* Other values keep their type: a quoted "true" stays a string, a
	 * plain one a boolean, nulls stay null, UTF-8 is written as such. */
	CHECK_CONTAINS(out, "plain: true\n");
	CHECK_CONTAINS(out, "quoted: \"true\"\n");
	CHECK_CONTAINS(out, "number: '2379'\n");
	CHECK_CONTAINS(out, "empty: ''\n");
	CHECK_CONTAINS(out, "nothing: ~\n");
	CHECK_CONTAINS(out, "flow: {a: ~, b: ~}\n");
	CHECK_CONTAINS(out, "multi: |\n      line one\n      line two: x\n");
	CHECK_CONTAINS(out, "\xc3\xa9t\xc3\xa9");
	kt_kube_staticpod_release(&p);

	/* Rewriting the output again (removing what was added) gives the same
	 * bytes. */
	const char *remove_all[] = { "initial-cluster-state", "force-new-cluster", "extra", "q", "e",
	                             NULL };
	char first[8192];
	snprintf(first, sizeof(first), "%s", out);
	out = sp_rewrite(&p, first, NULL, add, remove_all);
	CHECK_STR(out, first);
	kt_kube_staticpod_release(&p);
	kt_kube_staticpod_release(&orig);

	/* The non-specific tag "!" means a string: it is written as quoting. */
	const char *bang = "apiVersion: v1\nkind: Pod\nmetadata: ! {name: ! etcd, e: ! , l: ! [a]}\n"
	                   "spec: {containers: [{name: etcd, command: [etcd, ! , ! 1, --x]}]}\n";
	out = sp_rewrite(&p, bang, NULL, NULL, NULL);
	CHECK_STR(out, "apiVersion: v1\nkind: Pod\nmetadata: {name: 'etcd', e: '', l: [a]}\n"
	          "spec: {containers: [{name: etcd, command: [etcd, '', '1', --x]}]}\n");
	CHECK_STR(sp_joined(&p), "etcd  1 --x");
	kt_kube_staticpod_release(&p);

	/* UTF-16 in, UTF-8 out. */
	const char *ascii = POD_HEAD "spec: {containers: [{name: etcd, "
	                    "command: [etcd, --a=\xc3\xa9]}]}\n";
	char u16[1024];
	size_t n = 0;
	u16[n++] = (char)0xff;
	u16[n++] = (char)0xfe;
	for (const char *c = ascii; *c; c++) {
		if ((unsigned char)*c == 0xc3) { /* the one non-ASCII character: U+00E9 */
			u16[n++] = (char)0xe9;
			u16[n++] = 0;
			c++;
			continue;
		}
		u16[n++] = *c;
		u16[n++] = 0;
	}
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(u16, n, NULL, add, NULL, &b, &err), KT_OK);
	CHECK_CONTAINS(b.data, "command: [etcd, --a=\xc3\xa9, --force-new-cluster, ");
	CHECK_EQ_U(kt_kube_staticpod_parse(&p, u16, n, NULL, &err), KT_OK);
	CHECK_STR(kt_kube_staticpod_flag(&p, "a"), "\xc3\xa9");
	kt_kube_staticpod_release(&p);
	kt_buf_release(&b);
}

static void test_staticpod_rewrite_errors(void)
{
	kt_error err;
	kt_buf out;
	kt_buf_init(&out, KT_BUF_UNLIMITED);
	kt_buf_adds(&out, "keep", &err);
	const char *ok_add[] = { "--force-new-cluster", NULL };
	const char *bad_add[] = { "force-new-cluster", NULL };
	const char *bad_add2[] = { "--", NULL };
	const char *bad_add3[] = { "", NULL };
	const char *bad_add4[] = { "--1=x", NULL };
	const char *bad_rm[] = { "", NULL };
	const char *bad_rm2[] = { "a b", NULL };
	size_t n = strlen(KUBEADM_ETCD);

	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, bad_add, NULL, &out, &err),
	           KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "cannot add 'force-new-cluster' to the manifest: not a flag");
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, bad_add2, NULL, &out, &err),
	           KT_EUSAGE);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, bad_add3, NULL, &out, &err),
	           KT_EUSAGE);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, bad_add4, NULL, &out, &err),
	           KT_EUSAGE);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, NULL, bad_rm, &out, &err),
	           KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "cannot remove '' from the manifest: not a flag name");
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, NULL, bad_rm2, &out, &err),
	           KT_EUSAGE);

	/* The manifest's own errors are the parser's. */
	const char *notpod = "apiVersion: v1\nkind: Service\n";
	CHECK_EQ_U(kt_kube_staticpod_rewrite(notpod, strlen(notpod), NULL, ok_add, NULL, &out, &err),
	           KT_EPROTO);
	CHECK_CONTAINS(err.msg, "static pod manifest: not a Pod: kind is 'Service'");
	const char *alias = POD_HEAD "x: &c [etcd]\n"
	                    "spec: {containers: [{name: etcd, command: *c}]}\n";
	CHECK_EQ_U(kt_kube_staticpod_rewrite(alias, strlen(alias), NULL, ok_add, NULL, &out, &err),
	           KT_EPROTO);
	CHECK_CONTAINS(err.msg, "uses the YAML alias '*c'");

	/* A flag added after "--" would not be read by etcd. */
	const char *dashdash = POD_HEAD "spec: {containers: [{name: etcd, "
	                       "command: [etcd, --, x]}]}\n";
	CHECK_EQ_U(kt_kube_staticpod_rewrite(dashdash, strlen(dashdash), NULL, ok_add, NULL, &out,
	                                     &err), KT_EPROTO);
	CHECK_CONTAINS(err.msg, "cannot add --force-new-cluster: etcd would not read it");

	/* Removing a flag must not make a stray argument the value of another. */
	const char *stray = POD_HEAD "spec: {containers: [{name: etcd, command: [etcd, --name, "
	                    "--initial-cluster-state=existing, cp1]}]}\n";
	const char *rm[] = { "initial-cluster-state", NULL };
	CHECK_EQ_U(kt_kube_staticpod_rewrite(stray, strlen(stray), NULL, NULL, rm, &out, &err),
	           KT_EPROTO);
	CHECK_CONTAINS(err.msg, "would change the value etcd reads for --name");

	/* Too many entries after adding. */
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	kt_buf_adds(&b, POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n",
	            &err);
	for (int i = 1; i < KT_KUBE_STATICPOD_MAX_ARGS; i++)
		kt_buf_addf(&b, &err, "    - --f%d=%d\n", i, i);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(b.data, b.len, NULL, ok_add, NULL, &out, &err),
	           KT_ELIMIT);
	CHECK_CONTAINS(err.msg, "the rewritten command would have 257 entries");
	kt_buf_release(&b);

	/* out's own limit. */
	kt_buf small;
	kt_buf_init(&small, 100);
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, ok_add, NULL, &small, &err),
	           KT_ELIMIT);
	CHECK_EQ_U(small.len, 0);
	kt_buf_release(&small);

	/* Failures leave out as it was. */
	CHECK_STR(out.data, "keep");
	/* Success appends. */
	CHECK_EQ_U(kt_kube_staticpod_rewrite(KUBEADM_ETCD, n, NULL, ok_add, NULL, &out, &err), KT_OK);
	CHECK(!strncmp(out.data, "keepapiVersion: v1\n", 19));
	kt_buf_release(&out);
}

static void test_staticpod_load(void)
{
	kt_kube_staticpod p;
	kt_error err;
	char path[512];

	snprintf(path, sizeof(path), "%s/etcd.yaml", tmpdir);
	write_file("etcd.yaml", KUBEADM_ETCD, 0600);
	CHECK_EQ_U(kt_kube_staticpod_load(&p, path, NULL, &err), KT_OK);
	CHECK_STR(kt_kube_staticpod_flag(&p, "data-dir"), "/var/lib/etcd");
	kt_kube_staticpod_release(&p);

	char want[1200];
	write_file("etcd.yaml", POD_HEAD "spec:\n  containers:\n  - name: etcd\n    command: [[x]]\n",
	           0600);
	CHECK_EQ_U(kt_kube_staticpod_load(&p, path, NULL, &err), KT_EPROTO);
	snprintf(want, sizeof(want), "static pod manifest '%s': line 7 column 15: "
	         "spec.containers[0].command[0] is a list, not a string", path);
	CHECK_CONTAINS(err.msg, want);
	CHECK(p.argv == NULL);

	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	CHECK_EQ_U(kt_kube_staticpod_load(&p, path, NULL, &err), KT_ENOTFOUND);
	snprintf(want, sizeof(want), "cannot open static pod manifest '%s'", path);
	CHECK_CONTAINS(err.msg, want);
	CHECK_EQ_U(kt_kube_staticpod_load(&p, tmpdir, NULL, &err), KT_EUSAGE);
	CHECK_CONTAINS(err.msg, "is not a regular file");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/kt-test-kube-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_b64_decoder);
	RUN(test_token_inline);
	RUN(test_client_cert_data);
	RUN(test_cert_files_and_token_file_relative);
	RUN(test_token_wins_over_token_file);
	RUN(test_token_and_cert_together);
	RUN(test_anonymous_and_quoting);
	RUN(test_context_selection);
	RUN(test_missing_and_malformed_fields);
	RUN(test_bad_base64_names_the_field);
	RUN(test_refused_and_unsupported);
	RUN(test_exec_parsed);
	RUN(test_merge_files);
	RUN(test_token_never_in_messages);
	RUN(test_hostile_yaml);
	RUN(test_load_file);
	RUN(test_in_cluster);
	RUN(test_names);
	RUN(test_staticpod_kubeadm);
	RUN(test_staticpod_flow_and_json);
	RUN(test_staticpod_flag_forms);
	RUN(test_staticpod_args_and_containers);
	RUN(test_staticpod_not_a_pod);
	RUN(test_staticpod_wrong_types);
	RUN(test_staticpod_aliases_and_limits);
	RUN(test_staticpod_rewrite_kubeadm);
	RUN(test_staticpod_rewrite_forms);
	RUN(test_staticpod_rewrite_quoting);
	RUN(test_staticpod_rewrite_errors);
	RUN(test_staticpod_load);
	kt_log_clear_secrets();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return unit_done();
}
