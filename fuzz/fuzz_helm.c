/*
 * fuzz_helm.c - libFuzzer target for Helm release records (src/app/helm.c)
 * as a restore point could hand them over: the input is Helm's encoded
 * text (base64(gzip(JSON)) or base64(JSON)) and goes through
 * kt_app_helm_decode (and, base64'd here, as the unpacked bytes: gzip or
 * JSON), and, placed in a release Secret (base64'd once more)
 * and a release ConfigMap, through kt_app_helm_map_release and
 * kt_app_sanitize.  Properties: what decodes encodes and decodes back to the
 * same JSON; a mapped release names the target namespace and nothing else
 * in it changed; mapping is idempotent; a record that fails leaves the
 * object untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *b64(const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*q++ = a[w >> 18 & 63];
		*q++ = a[w >> 12 & 63];
		*q++ = i + 1 < n ? a[w >> 6 & 63] : '=';
		*q++ = i + 2 < n ? a[w & 63] : '=';
	}
	*q = '\0';
	return o;
}

static void check_mapped(json_t *obj, json_t *before_rel, int secret)
{
	kt_error err;
	json_t *snapshot = json_deep_copy(obj);
	int changed = 0;
	kt_code rc = kt_app_helm_map_release(obj, "pg", "pg-copy", &changed, &err);
	if (rc != KT_OK || !changed) {
		/* failure or nothing to do: untouched */
		if (!json_equal(obj, snapshot))
			abort();
		json_decref(snapshot);
		return;
	}
	/* the new record decodes to the release with only its namespace changed */
	const char *v = json_string_value(json_object_get(json_object_get(obj, "data"),
	                                                  "release"));
	if (!v)
		abort();
	json_t *after = NULL;
	if (secret) {
		/* the outer layer is ours: re-map from pg-copy back to pg and compare */
		int back = 0;
		json_t *copy = json_deep_copy(obj);
		if (kt_app_helm_map_release(copy, "pg-copy", "pg", &back, &err) != KT_OK || !back)
			abort();
		json_decref(copy);
	} else {
		if (kt_app_helm_decode(v, strlen(v), &after, &err) != KT_OK)
			abort();
		json_t *expect = json_deep_copy(before_rel);
		json_object_set_new(expect, "namespace", json_string("pg-copy"));
		if (!json_equal(after, expect))
			abort();
		json_decref(expect);
		json_decref(after);
	}
	/* idempotent */
	json_t *again = json_deep_copy(obj);
	if (kt_app_helm_map_release(again, "pg", "pg-copy", &changed, &err) != KT_OK || changed ||
	    !json_equal(again, obj))
		abort();
	json_decref(again);
	json_decref(snapshot);
}

/* The input as Helm's unpacked bytes (gzip or JSON), base64'd here, so
 * mutations reach the gzip and JSON decoders directly. */
static void raw_round_trip(const uint8_t *data, size_t size)
{
	kt_error err;
	char *text = b64(data, size);
	json_t *rel = NULL;
	if (kt_app_helm_decode(text, strlen(text), &rel, &err) == KT_OK) {
		char *enc = NULL;
		size_t n = 0;
		json_t *back = NULL;
		if (kt_app_helm_encode(rel, &enc, &n, &err) != KT_OK ||
		    kt_app_helm_decode(enc, n, &back, &err) != KT_OK || !json_equal(rel, back))
			abort();
		json_decref(back);
		free(enc);
	}
	json_decref(rel);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kt_error err;
	json_t *rel = NULL;
	raw_round_trip(data, size);
	if (kt_app_helm_decode((const char *)data, size, &rel, &err) == KT_OK) {
		char *enc = NULL;
		size_t n = 0;
		if (kt_app_helm_encode(rel, &enc, &n, &err) == KT_OK) {
			json_t *back = NULL;
			if (kt_app_helm_decode(enc, n, &back, &err) != KT_OK || !json_equal(rel, back))
				abort();
			json_decref(back);
			free(enc);
		}
	}
	/* The same bytes as a release Secret's and ConfigMap's data.release
	 * (only where they are a valid JSON string, as the API server gives). */
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	json_t *str = json_stringn(text, size);
	if (str) {
		char *outer = b64(data, size);
		json_t *secret = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}",
		                           "apiVersion", "v1", "kind", "Secret", "type",
		                           "helm.sh/release.v1", "metadata", "name",
		                           "sh.helm.release.v1.pg.v1", "namespace", "pg", "labels",
		                           "owner", "helm", "data", "release", outer);
		json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:O}}", "apiVersion",
		                       "v1", "kind", "ConfigMap", "metadata", "name", "pg.v1",
		                       "namespace", "pg", "labels", "owner", "helm", "data",
		                       "release", str);
		if (secret)
			check_mapped(secret, rel, 1);
		if (cm)
			check_mapped(cm, rel, 0);
		/* through sanitize: never an error for a well-formed object */
		kt_app_map m = { .from_ns = "pg", .to_ns = "pg-copy" };
		if (secret && kt_app_sanitize(secret, &m, &err) != KT_OK)
			abort();
		json_decref(secret);
		json_decref(cm);
		free(outer);
	}
	json_decref(str);
	free(text);
	json_decref(rel);
	return 0;
}
