/*
 * kubetool.c - test driver for src/kube: loads a kubeconfig (or the
 * in-cluster config), makes a client and runs one call, printing one JSON
 * object on stdout.  Used by tests/integration/test_kube.py.
 *
 *   kubetool [--kubeconfig FILE] [--context NAME] [--in-cluster DIR] CMD [ARGS] [OPTS]
 *     (no --kubeconfig and no --in-cluster: kt_kube_config_resolve's lookup
 *     order: $KUBECONFIG, ~/.kube/config, in-cluster)
 *     config            the parsed config (no credential values)
 *     get PATH          the decoded object
 *     secret NS NAME    {"type": ..., "data": {key: value}} (decoded)
 *     nsuid NS          {"uid": ...}
 *     discover          {"n": N, "resources": [...]}
 *     find WHAT         the resource WHAT resolves to
 *     getobj RES NS NAME            (RES: "configmaps", "Deployment.apps"...; NS "-": none)
 *     create RES NS FILE            FILE holds a JSON object; "-" = stdin
 *     create-many NS PREFIX N       N ConfigMaps PREFIX-0..N-1 {"n": N}
 *     update RES NS FILE
 *     patch RES NS NAME merge|json|apply FILE [--force] [--manager M]
 *     delete RES NS NAME [--propagation P] [--uid U] [--rv RV]
 *     list RES NS [--limit N] [--selector S]
 *         prints "item NAMESPACE/NAME" per object, then the result
 *         {"n_items", "n_pages", "resource_version", "vmhwm_kb"}
 *     watch RES NS [--rv RV] [--max-events N] [--timeout S] [--bookmarks]
 *         prints "event TYPE NAME RV" per event, then {"n_events", "last_rv"}
 *     --repeat N (get, getobj): the call N times on one client (credential caching)
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
	fprintf(stderr, "usage: kubetool [--kubeconfig FILE] [--context NAME] [--in-cluster DIR] "
	                "CMD ... (see kubetool.c)\n");
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

/* Options after the command's positional arguments: "--name value" or a
 * bare "--force"/"--bookmarks". */
static const char *opt(int argc, char **argv, int from, const char *name)
{
	for (int i = from; i < argc; i++)
		if (!strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, name))
			return i + 1 < argc && strncmp(argv[i + 1], "--", 2) ? argv[i + 1] : "1";
	return NULL;
}

static long vmhwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			v = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static json_t *read_json_file(const char *path, kt_error *err)
{
	json_error_t je;
	json_t *j = !strcmp(path, "-") ? json_loadf(stdin, 0, &je) : json_load_file(path, 0, &je);
	if (!j)
		kt_error_set(err, KT_EUSAGE, "%s: %s", path, je.text);
	return j;
}

static char *read_text_file(const char *path, size_t *len)
{
	FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "rb");
	kt_buf b;
	char chunk[4096];
	size_t n;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		kt_buf_add(&b, chunk, n, NULL);
	if (f && f != stdin)
		fclose(f);
	return kt_buf_detach(&b, len);
}

static json_t *resource_json(const kt_kube_resource *r)
{
	static const char *const verbs[] = { "get", "list", "watch", "create", "update", "patch",
	                                     "delete", "deletecollection" };
	json_t *v = json_array();
	for (unsigned i = 0; i < 8; i++)
		if (r->verbs & (1u << i))
			json_array_append_new(v, json_string(verbs[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o}", "group", r->group, "version",
	                 r->version, "resource", r->resource, "kind", r->kind, "namespaced",
	                 r->namespaced, "preferred", r->preferred, "verbs", v);
}

/* RES NS [NAME] -> target through discovery. */
static kt_code target(kt_kube *c, const char *res, const char *ns, const char *name,
                      kt_kube_target *t, kt_error *err)
{
	const kt_kube_resource *r;
	kt_code rc = kt_kube_resource_find(c, res, &r, err);
	if (rc)
		return rc;
	kt_kube_target_of(t, r, strcmp(ns, "-") ? ns : NULL, name);
	return KT_OK;
}

static kt_code print_item(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	(void)ctx;
	json_t *m = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	printf("item %s/%s\n", ns ? ns : "", json_string_value(json_object_get(m, "name")));
	return KT_OK;
}

typedef struct wstate {
	long max;
	long n;
} wstate;

static kt_code print_event(void *ctx, const char *type, json_t *obj, int *stop, kt_error *err)
{
	wstate *w = ctx;
	(void)err;
	json_t *m = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *rv = json_string_value(json_object_get(m, "resourceVersion"));
	printf("event %s %s %s\n", type, name ? name : "-", rv ? rv : "-");
	fflush(stdout);
	if (++w->n >= w->max && w->max > 0)
		*stop = 1;
	return KT_OK;
}

static kt_code run(kt_kube *c, const char *cmd, int argc, char **argv, int i, json_t **result,
                   kt_error *err)
{
	int n = argc - i;
	kt_kube_target t;
	kt_code rc;
	const char *repeat = opt(argc, argv, i, "repeat");
	int times = repeat ? (int)strtol(repeat, NULL, 10) : 1;

	if (!strcmp(cmd, "get") && n >= 1) {
		for (int k = 0; k < times; k++) {
			json_decref(*result);
			*result = NULL;
			if ((rc = kt_kube_get(c, argv[i], result, err)))
				return rc;
		}
		return KT_OK;
	}
	if (!strcmp(cmd, "discover")) {
		const kt_kube_resource *all;
		size_t n_all;
		if ((rc = kt_kube_discover(c, &all, &n_all, err)))
			return rc;
		json_t *list = json_array();
		for (size_t k = 0; k < n_all; k++)
			json_array_append_new(list, resource_json(&all[k]));
		*result = json_pack("{s:i, s:o}", "n", (json_int_t)n_all, "resources", list);
		return KT_OK;
	}
	if (!strcmp(cmd, "find") && n >= 1) {
		const kt_kube_resource *r;
		if ((rc = kt_kube_resource_find(c, argv[i], &r, err)))
			return rc;
		*result = resource_json(r);
		return KT_OK;
	}
	if (!strcmp(cmd, "getobj") && n >= 3) {
		if ((rc = target(c, argv[i], argv[i + 1], argv[i + 2], &t, err)))
			return rc;
		for (int k = 0; k < times; k++) {
			json_decref(*result);
			*result = NULL;
			if ((rc = kt_kube_get_object(c, &t, result, err)))
				return rc;
		}
		return KT_OK;
	}
	if ((!strcmp(cmd, "create") || !strcmp(cmd, "update")) && n >= 3) {
		json_t *obj = read_json_file(argv[i + 2], err);
		if (!obj)
			return err->code;
		const char *name = json_string_value(
			json_object_get(json_object_get(obj, "metadata"), "name"));
		rc = target(c, argv[i], argv[i + 1], name, &t, err);
		if (rc == KT_OK)
			rc = !strcmp(cmd, "create") ? kt_kube_create(c, &t, obj, result, err)
			                            : kt_kube_update(c, &t, obj, result, err);
		json_decref(obj);
		return rc;
	}
	if (!strcmp(cmd, "create-many") && n >= 3) {
		long count = strtol(argv[i + 2], NULL, 10);
		t = (kt_kube_target){ .version = "v1", .resource = "configmaps",
		                      .namespace = argv[i] };
		for (long k = 0; k < count; k++) {
			char name[200];
			snprintf(name, sizeof(name), "%s-%ld", argv[i + 1], k);
			json_t *obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
			                        "ConfigMap", "metadata", "name", name, "data", "k", name);
			rc = kt_kube_create(c, &t, obj, NULL, err);
			json_decref(obj);
			if (rc)
				return rc;
		}
		*result = json_pack("{s:i}", "n", (json_int_t)count);
		return KT_OK;
	}
	if (!strcmp(cmd, "patch") && n >= 5) {
		const char *ty = argv[i + 3];
		kt_kube_patch_type pt = !strcmp(ty, "merge") ? KT_KUBE_PATCH_MERGE
		                        : !strcmp(ty, "json") ? KT_KUBE_PATCH_JSON
		                                              : KT_KUBE_PATCH_APPLY;
		if ((rc = target(c, argv[i], argv[i + 1], argv[i + 2], &t, err)))
			return rc;
		size_t len = 0;
		char *body = read_text_file(argv[i + 4], &len);
		kt_kube_patch_opts po = { .field_manager = opt(argc, argv, i, "manager"),
		                          .force = opt(argc, argv, i, "force") != NULL };
		rc = kt_kube_patch(c, &t, pt, body, len, &po, result, err);
		free(body);
		return rc;
	}
	if (!strcmp(cmd, "delete") && n >= 3) {
		if ((rc = target(c, argv[i], argv[i + 1], argv[i + 2], &t, err)))
			return rc;
		kt_kube_delete_opts d = { .propagation = opt(argc, argv, i, "propagation"),
		                          .uid = opt(argc, argv, i, "uid"),
		                          .resource_version = opt(argc, argv, i, "rv") };
		rc = kt_kube_delete(c, &t, &d, err);
		if (rc == KT_OK)
			*result = json_pack("{s:b}", "deleted", 1);
		return rc;
	}
	if (!strcmp(cmd, "list") && n >= 2) {
		if ((rc = target(c, argv[i], argv[i + 1], NULL, &t, err)))
			return rc;
		const char *lim = opt(argc, argv, i, "limit");
		kt_kube_list_opts lo = { .limit = lim ? (unsigned)strtoul(lim, NULL, 10) : 0,
		                         .label_selector = opt(argc, argv, i, "selector") };
		kt_kube_list_result lr;
		rc = kt_kube_list(c, &t, &lo, print_item, NULL, &lr, err);
		if (rc == KT_OK)
			*result = json_pack("{s:i, s:i, s:s, s:i}", "n_items", (json_int_t)lr.n_items,
			                    "n_pages", (json_int_t)lr.n_pages, "resource_version",
			                    lr.resource_version, "vmhwm_kb", (json_int_t)vmhwm_kb());
		return rc;
	}
	if (!strcmp(cmd, "watch") && n >= 2) {
		if ((rc = target(c, argv[i], argv[i + 1], NULL, &t, err)))
			return rc;
		const char *me = opt(argc, argv, i, "max-events");
		const char *to = opt(argc, argv, i, "timeout");
		const char *mx = opt(argc, argv, i, "max-event-bytes");
		kt_kube_watch_opts wo = { .resource_version = opt(argc, argv, i, "rv"),
		                          .bookmarks = opt(argc, argv, i, "bookmarks") != NULL,
		                          .timeout_s = to ? (unsigned)strtoul(to, NULL, 10) : 0,
		                          .max_event = mx ? (size_t)strtoul(mx, NULL, 10) : 0 };
		wstate w = { .max = me ? strtol(me, NULL, 10) : 0 };
		char last[128];
		rc = kt_kube_watch(c, &t, &wo, print_event, &w, last, err);
		if (rc == KT_OK)
			*result = json_pack("{s:i, s:s}", "n_events", (json_int_t)w.n, "last_rv", last);
		return rc;
	}
	return KT_EUSAGE + 1000;
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
	if (i >= argc || (kubeconfig && in_cluster))
		return usage();
	const char *cmd = argv[i++];

	if (in_cluster ? kt_kube_config_in_cluster(&cfg, in_cluster, &err)
	               : kt_kube_config_resolve(&cfg, kubeconfig, context, &err))
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
	if (!strcmp(cmd, "nsuid") && i + 1 == argc) {
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
		rc = run(c, cmd, argc, argv, i, &result, &err);
		if (rc == KT_EUSAGE + 1000) {
			kt_kube_client_free(c);
			return usage();
		}
	}
	kt_kube_client_free(c);
	if (rc) {
		json_decref(result);
		return fail(&err);
	}
	return print(json_pack("{s:b, s:o}", "ok", 1, "result", result ? result : json_null()));
}
