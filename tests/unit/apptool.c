/*
 * apptool.c - test driver for src/app against a real API server, used by
 * tests/integration/test_app_capture.py until `kontinuity app backup`
 * stores what the walk captures.
 *
 *   apptool --kubeconfig FILE collect NS [--selector S] [--cluster-rbac]
 *       one line per captured object: "object TIER GROUP RESOURCE NAME"
 *       one line per note: "skip-resource WHAT\tWHY", "skip-object WHAT\tWHY",
 *       "failed WHAT\tWHY"; then "stats OBJECTS SKIPPED_OBJECTS FAILED
 *       RESOURCES SKIPPED_RESOURCES VMHWM_KB"
 *   apptool --kubeconfig FILE sanitize NS TO_NS
 *       the collected objects, sanitized and mapped to TO_NS, one JSON per
 *       line in restore order (tier, then name)
 *   apptool --kubeconfig FILE restore NS TO_NS [--update] [--dry-run]
 *           [--exclude KIND] [--include KIND]
 *       collect, sanitize and apply into TO_NS (namespaced objects only):
 *       "report OUTCOME KIND NAME\tDETAIL" per object, then
 *       "applied CREATED UPDATED SKIPPED FAILED"
 * Exit 0, or 1 with the error on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "kube/kube.h"

static void on_note(void *ctx, kt_app_note_kind k, const char *what, const char *why)
{
	(void)ctx;
	static const char *const names[] = { "skip-resource", "skip-object", "failed" };
	printf("%s %s\t%s\n", names[k], what, why);
}

typedef struct sink {
	int sanitize;
	const char *from, *to;
	json_t *all;   /* sanitize mode: [tier, name, object] rows */
} sink;

static kt_code on_obj(void *ctx, const kt_kube_resource *r, json_t *obj, kt_error *err)
{
	sink *s = ctx;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"),
	                                                     "name"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	int tier = kt_app_tier(r->group, kind ? kind : r->kind);
	if (!s->sanitize) {
		printf("object %d %s %s %s\n", tier, *r->group ? r->group : "core", r->resource,
		       name ? name : "?");
		return KT_OK;
	}
	json_t *copy = json_deep_copy(obj);
	kt_app_map m = { .from_ns = s->from, .to_ns = s->to };
	kt_code rc = kt_app_sanitize(copy, &m, err);
	if (!rc)
		json_array_append_new(s->all, json_pack("[i, s, o]", tier, name ? name : "", copy));
	else
		json_decref(copy);
	return rc;
}

static int cmp_rows(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t tx = json_integer_value(json_array_get(x, 0));
	json_int_t ty = json_integer_value(json_array_get(y, 0));
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(json_string_value(json_array_get(x, 1)), json_string_value(json_array_get(y, 1)));
}

static void on_report(void *ctx, const char *kind, const char *ns, const char *name,
                      kt_app_outcome out, const char *detail)
{
	(void)ctx;
	(void)ns;
	printf("report %s %s %s\t%s\n", kt_app_outcome_name(out), kind, name, detail);
}

static long vmhwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	const char *kubeconfig = NULL, *selector = NULL;
	int rbac = 0, i = 1;
	for (; i + 1 < argc && !strcmp(argv[i], "--kubeconfig"); i += 2)
		kubeconfig = argv[i + 1];
	if (i + 1 >= argc) {
		fprintf(stderr, "usage: apptool --kubeconfig FILE collect|sanitize NS ...\n");
		return 2;
	}
	const char *cmd = argv[i], *ns = argv[i + 1];
	int restore = !strcmp(cmd, "restore");
	sink s = { .sanitize = restore || !strcmp(cmd, "sanitize"), .from = ns };
	kt_app_apply_opts ao = { .report = on_report };
	const char *include[2] = { NULL, NULL }, *exclude[2] = { NULL, NULL };
	for (int j = i + 2; j < argc; j++) {
		if (!strcmp(argv[j], "--selector") && j + 1 < argc)
			selector = argv[++j];
		else if (!strcmp(argv[j], "--cluster-rbac"))
			rbac = 1;
		else if (!strcmp(argv[j], "--update"))
			ao.update_existing = 1;
		else if (!strcmp(argv[j], "--dry-run"))
			ao.dry_run = 1;
		else if (!strcmp(argv[j], "--include") && j + 1 < argc)
			include[0] = argv[++j], ao.include_kinds = include;
		else if (!strcmp(argv[j], "--exclude") && j + 1 < argc)
			exclude[0] = argv[++j], ao.exclude_kinds = exclude;
		else if (s.sanitize && !s.to)
			s.to = argv[j];
	}
	kt_log_setup(stderr, KT_LOG_TEXT, KT_LOG_WARN);
	kt_kube_config cfg;
	kt_kube *c = NULL;
	kt_error err;
	kt_kube_config_init(&cfg);
	kt_code rc = kt_kube_config_resolve(&cfg, kubeconfig, NULL, &err);
	if (!rc)
		rc = kt_kube_client_new(&c, &cfg, NULL, &err);
	kt_kube_config_release(&cfg);
	kt_app_collect_opts o = { .namespace = ns, .selector = selector, .cluster_rbac = rbac,
	                          .note = s.sanitize ? NULL : on_note };
	kt_app_collect_stats st = { 0 };
	s.all = json_array();
	if (!rc)
		rc = kt_app_collect(c, &o, on_obj, &s, &st, &err);
	if (!rc && restore) {
		/* namespaced objects and the Namespace only: the cluster-scoped
		 * dependencies exist in this cluster already */
		json_t *keep = json_array();
		size_t k;
		json_t *row;
		json_array_foreach(s.all, k, row) {
			json_t *obj = json_array_get(row, 2);
			const char *kind = json_string_value(json_object_get(obj, "kind"));
			if (json_object_get(json_object_get(obj, "metadata"), "namespace") ||
			    (kind && !strcmp(kind, "Namespace")))
				json_array_append(keep, obj);
		}
		kt_app_apply_stats as = { 0 };
		kt_code arc = kt_app_apply(c, keep, &ao, &as, &err);
		printf("applied %u %u %u %u\n", as.created, as.updated, as.skipped, as.failed);
		json_decref(keep);
		if (arc && arc != KT_EREMOTE)
			rc = arc;
		json_array_clear(s.all);
	}
	kt_kube_client_free(c);
	if (rc) {
		fprintf(stderr, "apptool: %s: %s\n", kt_code_name(rc), err.msg);
		json_decref(s.all);
		return 1;
	}
	if (restore) {
		/* printed above */
	} else if (s.sanitize) {
		size_t n = json_array_size(s.all);
		json_t **rows = malloc((n ? n : 1) * sizeof(*rows));
		for (size_t k = 0; k < n; k++)
			rows[k] = json_array_get(s.all, k);
		qsort(rows, n, sizeof(*rows), cmp_rows);
		for (size_t k = 0; k < n; k++) {
			char *t = json_dumps(json_array_get(rows[k], 2), JSON_COMPACT | JSON_SORT_KEYS);
			printf("%s\n", t);
			free(t);
		}
		free(rows);
	} else {
		printf("stats %llu %llu %llu %u %u %ld\n", (unsigned long long)st.objects,
		       (unsigned long long)st.skipped_objects, (unsigned long long)st.failed,
		       st.resources, st.skipped_resources, vmhwm_kb());
	}
	json_decref(s.all);
	return 0;
}
