/*
 * kubetool.c - test driver for src/kube: loads a kubeconfig (or the
 * in-cluster config), makes a client and runs one call, printing one JSON
 * object on stdout.  Used by tests/integration/test_kube.py.
 *
 *   kubetool (--kubeconfig FILE [--context NAME] | --in-cluster DIR) CMD
 *     config            the parsed config (no credential values)
 *     get PATH          the decoded object
 *     secret NS NAME    {"type": ..., "data": {key: value}} (decoded)
 *     nsuid NS          {"uid": ...}
 *
 * Success: {"ok": true, "result": ...}, exit 0.  Failure: {"ok": false,
 * "code": "auth", "status": 401, "message": "..."}, exit 1.  The message is
 * printed as the library wrote it, deliberately NOT through kt_redact, so
 * the tests prove that the library itself keeps tokens out of messages.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"

static int usage(void)
{
	fprintf(stderr, "usage: kubetool (--kubeconfig FILE [--context NAME] | --in-cluster DIR) "
	                "config | get PATH | secret NS NAME | nsuid NS\n");
	return 2;
}

static int print(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%s\n", s ? s : "{}");
	free(s);
	json_decref(o);
	return 0;
}

static int fail(const kt_error *err)
{
	print(json_pack("{s:b, s:s, s:i, s:s}", "ok", 0, "code", kt_code_name(err->code),
	                "status", (int)err->status, "message", err->msg));
	return 1;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *config_json(const kt_kube_config *c)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:b, s:o, s:b, s:b, s:o}",
	                 "source", str_or_null(c->source), "server", str_or_null(c->server),
	                 "context", str_or_null(c->context), "cluster", str_or_null(c->cluster),
	                 "user", str_or_null(c->user), "namespace", str_or_null(c->namespace),
	                 "ca_file", str_or_null(c->ca_file), "ca_data", c->ca_pem != NULL,
	                 "cert_file", str_or_null(c->cert_file), "cert_data", c->cert_pem != NULL,
	                 "key_file", str_or_null(c->key_file), "key_data", c->key_pem != NULL,
	                 "token", c->token != NULL, "token_file", str_or_null(c->token_file));
}

int main(int argc, char **argv)
{
	const char *kubeconfig = NULL, *context = NULL, *in_cluster = NULL;
	int i = 1;
	kt_error err;
	kt_kube_config cfg;
	kt_kube *c = NULL;
	int rc;

	kt_error_clear(&err);
	kt_log_setup(stderr, KT_LOG_TEXT, KT_LOG_DEBUG);
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--kubeconfig"))
			kubeconfig = argv[i + 1];
		else if (!strcmp(argv[i], "--context"))
			context = argv[i + 1];
		else if (!strcmp(argv[i], "--in-cluster"))
			in_cluster = argv[i + 1];
		else
			return usage();
	}
	if (i >= argc || (!kubeconfig == !in_cluster))
		return usage();
	const char *cmd = argv[i++];

	if (kubeconfig ? kt_kube_config_load(&cfg, kubeconfig, context, &err)
	               : kt_kube_config_in_cluster(&cfg, in_cluster, &err))
		return fail(&err);
	if (!strcmp(cmd, "config")) {
		print(json_pack("{s:b, s:o}", "ok", 1, "result", config_json(&cfg)));
		kt_kube_config_release(&cfg);
		return 0;
	}
	rc = kt_kube_client_new(&c, &cfg, NULL, &err);
	kt_kube_config_release(&cfg);
	if (rc)
		return fail(&err);

	json_t *result = NULL;
	if (!strcmp(cmd, "get") && i + 1 == argc) {
		rc = kt_kube_get(c, argv[i], &result, &err);
	} else if (!strcmp(cmd, "nsuid") && i + 1 == argc) {
		char *uid = NULL;
		rc = kt_kube_namespace_uid(c, argv[i], &uid, &err);
		if (rc == KT_OK)
			result = json_pack("{s:s}", "uid", uid);
		free(uid);
	} else if (!strcmp(cmd, "secret") && i + 2 == argc) {
		kt_kube_secret *s = NULL;
		rc = kt_kube_get_secret(c, argv[i], argv[i + 1], &s, &err);
		if (rc == KT_OK) {
			json_t *data = json_object();
			for (size_t k = 0; k < s->n_items; k++) {
				json_t *v = json_stringn(s->items[k].value, s->items[k].len);
				json_object_set_new(data, s->items[k].key, v ? v : json_string("(binary)"));
			}
			result = json_pack("{s:s, s:s, s:s, s:o}", "namespace", s->namespace, "name",
			                   s->name, "type", s->type, "data", data);
			kt_kube_secret_free(s);
		}
	} else {
		kt_kube_client_free(c);
		return usage();
	}
	kt_kube_client_free(c);
	if (rc)
		return fail(&err);
	return print(json_pack("{s:b, s:o}", "ok", 1, "result", result));
}
