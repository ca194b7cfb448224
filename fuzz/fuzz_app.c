/*
 * fuzz_app.c - libFuzzer target for the restore transforms of src/app on
 * objects as a hostile restore point or API server could hand them over:
 * any JSON document goes through kt_app_skip_object, kt_app_tier and
 * kt_app_sanitize (with and without namespace mapping and a PVC snapshot).
 * Properties: sanitizing is idempotent; a sanitized object has no status,
 * uid, resourceVersion, managedFields or ownerReferences and, when mapped,
 * sits in the target namespace if it named one.  The same document as a
 * Job's status goes through kt_app_mover_job_state (a Failed reason is
 * always NUL-terminated within its buffer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *snap(void *ctx, const char *pvc)
{
	(void)ctx;
	return pvc[0] == 'd' ? "snap" : NULL;
}

static void check_once(json_t *o, const kt_app_map *m)
{
	kt_error err;
	if (kt_app_sanitize(o, m, &err) != KT_OK)
		return;
	char *a = json_dumps(o, JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (kt_app_sanitize(o, m, &err) != KT_OK)
		abort();
	char *b = json_dumps(o, JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!a || !b || strcmp(a, b))
		abort();
	free(a);
	free(b);
	json_t *meta = json_object_get(o, "metadata");
	if (json_object_get(o, "status") || json_object_get(meta, "uid") ||
	    json_object_get(meta, "resourceVersion") || json_object_get(meta, "managedFields") ||
	    json_object_get(meta, "ownerReferences"))
		abort();
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	if (m && m->to_ns && json_object_get(meta, "namespace") && (!ns || strcmp(ns, m->to_ns)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *o = json_loadb((const char *)data, size, 0, &jerr);
	if (!o)
		return 0;
	const char *kind = json_string_value(json_object_get(o, "kind"));
	if (kind) {
		int t = kt_app_tier("", kind);
		if (t < 0 || t >= KT_APP_TIERS)
			abort();
	}
	kt_app_skip_object("", "pods", o);
	kt_app_skip_object("apps", "replicasets", o);
	kt_app_skip_object("", "secrets", o);
	kt_app_skip_object("", "configmaps", o);
	char why[64];
	memset(why, 'x', sizeof(why));
	int st = kt_app_mover_job_state(o, why, sizeof(why));
	if (st < 0 || st > 2 || (st == 2 && !memchr(why, '\0', sizeof(why))))
		abort();
	json_t *copy = json_deep_copy(o);
	check_once(o, NULL);
	kt_app_map m = { .from_ns = "pg", .to_ns = "pg-copy", .snapshot_of = snap };
	if (copy)
		check_once(copy, &m);
	json_decref(copy);
	json_decref(o);
	return 0;
}
