/*
 * test_app.c - the pure rules of application backup (src/app): which
 * resources and objects are captured, how a restore sanitizes and maps an
 * object, and the restore tiers; docs/app-backup.md is what they check.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "app/app.h"
#include "unit.h"

static json_t *obj(const char *text)
{
	json_error_t e;
	json_t *o = json_loads(text, 0, &e);
	if (!o) {
		fprintf(stderr, "bad test JSON: %s\n", e.text);
		abort();
	}
	return o;
}

static const char *at(json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *p = buf, *dot; v && p; p = dot ? dot + 1 : NULL) {
		dot = strchr(p, '.');
		if (dot)
			*dot = '\0';
		v = json_is_array(v) ? json_array_get(v, (size_t)strtoul(p, NULL, 10))
		                     : json_object_get(v, p);
	}
	return v ? (json_string_value(v) ? json_string_value(v) : "<non-string>") : NULL;
}

static void test_skip_resources(void)
{
	const char *all = "create delete deletecollection get list patch update watch";
	CHECK(kt_app_skip_resource("", "events", all) != NULL);
	CHECK(kt_app_skip_resource("events.k8s.io", "events", all) != NULL);
	CHECK(kt_app_skip_resource("discovery.k8s.io", "endpointslices", all) != NULL);
	CHECK(kt_app_skip_resource("", "endpoints", all) != NULL);
	CHECK(kt_app_skip_resource("coordination.k8s.io", "leases", all) != NULL);
	CHECK(kt_app_skip_resource("apps", "controllerrevisions", all) != NULL);
	CHECK(kt_app_skip_resource("snapshot.storage.k8s.io", "volumesnapshots", all) != NULL);
	CHECK_CONTAINS(kt_app_skip_resource("authorization.k8s.io", "localsubjectaccessreviews",
	                                    "create"), "read-only or create-only");
	CHECK(kt_app_skip_resource("metrics.k8s.io", "pods", "get list") != NULL);
	CHECK(kt_app_skip_resource("", "secrets", all) == NULL);
	CHECK(kt_app_skip_resource("apps", "statefulsets", all) == NULL);
	CHECK(kt_app_skip_resource("example.com", "widgets", all) == NULL);
	/* a word must match whole: "lists" is not "list" */
	CHECK(kt_app_skip_resource("x", "y", "creates get lists") != NULL);
}

static void test_skip_objects(void)
{
	json_t *owned = obj("{\"metadata\":{\"name\":\"p\",\"ownerReferences\":[{\"kind\":"
	                    "\"ReplicaSet\",\"controller\":true}]}}");
	json_t *lone = obj("{\"metadata\":{\"name\":\"p\"}}");
	json_t *rs = obj("{\"metadata\":{\"name\":\"r\",\"ownerReferences\":[{\"kind\":"
	                 "\"Deployment\",\"controller\":true}]}}");
	json_t *nonctl = obj("{\"metadata\":{\"name\":\"r\",\"ownerReferences\":[{\"kind\":"
	                     "\"Deployment\"}]}}");
	json_t *job = obj("{\"metadata\":{\"name\":\"j\",\"ownerReferences\":[{\"kind\":"
	                  "\"CronJob\",\"controller\":true}]}}");
	json_t *tok = obj("{\"type\":\"kubernetes.io/service-account-token\",\"metadata\":"
	                  "{\"name\":\"t\"}}");
	json_t *helm = obj("{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"name\":"
	                   "\"sh.helm.release.v1.pg.v1\"}}");
	json_t *rootca = obj("{\"metadata\":{\"name\":\"kube-root-ca.crt\"}}");
	CHECK_CONTAINS(kt_app_skip_object("", "pods", owned), "controller");
	CHECK(kt_app_skip_object("", "pods", lone) == NULL);
	CHECK(kt_app_skip_object("apps", "replicasets", rs) != NULL);
	CHECK(kt_app_skip_object("apps", "replicasets", nonctl) == NULL);
	CHECK(kt_app_skip_object("batch", "jobs", job) != NULL);
	CHECK(kt_app_skip_object("", "secrets", tok) != NULL);
	CHECK(kt_app_skip_object("", "secrets", helm) == NULL);
	CHECK(kt_app_skip_object("", "configmaps", rootca) != NULL);
	CHECK(kt_app_skip_object("", "secrets", rootca) == NULL);
	json_t *mover = obj("{\"metadata\":{\"name\":\"kt-mover-1-0\",\"labels\":"
	                    "{\"kontinuity.io/mover-run\":\"1\"}}}");
	CHECK_CONTAINS(kt_app_skip_object("", "persistentvolumeclaims", mover), "mover");
	CHECK_CONTAINS(kt_app_skip_object("batch", "jobs", mover), "mover");
	json_t *all[] = { owned, lone, rs, nonctl, job, tok, helm, rootca, mover };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		json_decref(all[i]);
}

static const char *snap_of(void *ctx, const char *pvc)
{
	(void)ctx;
	return !strcmp(pvc, "data-pg-0") ? "rp1-data-pg-0" : NULL;
}

static void test_sanitize_common_and_idempotent(void)
{
	json_t *o = obj("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
	                "\"c\",\"namespace\":\"pg\",\"uid\":\"u\",\"resourceVersion\":\"9\","
	                "\"generation\":2,\"creationTimestamp\":\"t\",\"managedFields\":[],"
	                "\"ownerReferences\":[{\"kind\":\"X\"}],\"labels\":{\"a\":\"b\"},"
	                "\"annotations\":{\"deployment.kubernetes.io/revision\":\"3\","
	                "\"pv.kubernetes.io/bind-completed\":\"yes\",\"keep\":\"me\","
	                "\"meta.helm.sh/release-namespace\":\"pg\"}},\"data\":{\"k\":\"v\"},"
	                "\"status\":{}}");
	kt_error err;
	kt_app_map m = { .from_ns = "pg", .to_ns = "pg-copy" };
	CHECK(kt_app_sanitize(o, &m, &err) == KT_OK);
	char *once = json_dumps(o, JSON_SORT_KEYS);
	CHECK(kt_app_sanitize(o, &m, &err) == KT_OK);
	char *twice = json_dumps(o, JSON_SORT_KEYS);
	CHECK_STR(once, twice);
	CHECK_STR(once, "{\"apiVersion\": \"v1\", \"data\": {\"k\": \"v\"}, \"kind\": "
	          "\"ConfigMap\", \"metadata\": {\"annotations\": {\"keep\": \"me\", "
	          "\"meta.helm.sh/release-namespace\": \"pg-copy\"}, \"labels\": {\"a\": \"b\"}, "
	          "\"name\": \"c\", \"namespace\": \"pg-copy\"}}");
	free(once);
	free(twice);
	json_decref(o);
	json_t *bad = obj("{\"kind\":\"ConfigMap\",\"metadata\":{}}");
	CHECK(kt_app_sanitize(bad, NULL, &err) == KT_EUSAGE);
	json_decref(bad);
}

static void test_sanitize_per_kind(void)
{
	kt_error err;
	json_t *svc = obj("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\","
	                  "\"namespace\":\"pg\"},\"spec\":{\"type\":\"NodePort\",\"clusterIP\":"
	                  "\"10.0.0.7\",\"clusterIPs\":[\"10.0.0.7\"],\"ports\":[{\"port\":5432,"
	                  "\"nodePort\":30432}]}}");
	CHECK(kt_app_sanitize(svc, NULL, &err) == KT_OK);
	CHECK(at(svc, "spec.clusterIP") == NULL && at(svc, "spec.clusterIPs") == NULL);
	CHECK(json_object_get(json_array_get(json_object_get(json_object_get(svc, "spec"),
	                      "ports"), 0), "nodePort") == NULL);
	json_decref(svc);
	svc = obj("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"h\"},"
	          "\"spec\":{\"clusterIP\":\"None\",\"ports\":[{\"port\":1,\"nodePort\":30001}]}}");
	kt_app_map keep = { .keep_node_ports = 1 };
	CHECK(kt_app_sanitize(svc, &keep, &err) == KT_OK);
	CHECK_STR(at(svc, "spec.clusterIP"), "None");        /* headless stays headless */
	CHECK_STR(at(svc, "spec.clusterIPs.0"), "None");
	CHECK(json_integer_value(json_object_get(json_array_get(json_object_get(
	      json_object_get(svc, "spec"), "ports"), 0), "nodePort")) == 30001);
	json_decref(svc);

	json_t *pvc = obj("{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":"
	                  "{\"name\":\"data-pg-0\",\"namespace\":\"pg\",\"annotations\":{"
	                  "\"volume.kubernetes.io/selected-node\":\"n1\"}},\"spec\":{\"volumeName\":"
	                  "\"pv-1\",\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}}}");
	kt_app_map m = { .snapshot_of = snap_of };
	CHECK(kt_app_sanitize(pvc, &m, &err) == KT_OK);
	CHECK(at(pvc, "spec.volumeName") == NULL && at(pvc, "metadata.annotations") == NULL);
	CHECK_STR(at(pvc, "spec.dataSource.name"), "rp1-data-pg-0");
	CHECK_STR(at(pvc, "spec.dataSourceRef.kind"), "VolumeSnapshot");
	CHECK_STR(at(pvc, "spec.dataSource.apiGroup"), "snapshot.storage.k8s.io");
	json_decref(pvc);

	json_t *job = obj("{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":"
	                  "\"j\"},\"spec\":{\"selector\":{\"matchLabels\":{\"controller-uid\":"
	                  "\"u\"}},\"template\":{\"metadata\":{\"labels\":{\"controller-uid\":\"u\","
	                  "\"batch.kubernetes.io/job-name\":\"j\",\"app\":\"x\"}}}}}");
	CHECK(kt_app_sanitize(job, NULL, &err) == KT_OK);
	CHECK(at(job, "spec.selector") == NULL);
	CHECK(at(job, "spec.template.metadata.labels.controller-uid") == NULL);
	CHECK_STR(at(job, "spec.template.metadata.labels.app"), "x");
	json_decref(job);

	json_t *sa = obj("{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":"
	                 "\"pg\"},\"secrets\":[{\"name\":\"pg-token-abcde\"},{\"name\":\"other\"}]}");
	CHECK(kt_app_sanitize(sa, NULL, &err) == KT_OK);
	CHECK(json_array_size(json_object_get(sa, "secrets")) == 1);
	CHECK_STR(at(sa, "secrets.0.name"), "other");
	json_decref(sa);

	json_t *rb = obj("{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\","
	                 "\"metadata\":{\"name\":\"b\",\"namespace\":\"pg\"},\"subjects\":[{\"kind\":"
	                 "\"ServiceAccount\",\"name\":\"pg\",\"namespace\":\"pg\"},{\"kind\":"
	                 "\"ServiceAccount\",\"name\":\"mon\",\"namespace\":\"monitoring\"}]}");
	kt_app_map mv = { .from_ns = "pg", .to_ns = "pg-copy" };
	CHECK(kt_app_sanitize(rb, &mv, &err) == KT_OK);
	CHECK_STR(at(rb, "subjects.0.namespace"), "pg-copy");
	CHECK_STR(at(rb, "subjects.1.namespace"), "monitoring");
	CHECK_STR(at(rb, "metadata.namespace"), "pg-copy");
	json_decref(rb);

	json_t *nsobj = obj("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{"
	                    "\"name\":\"pg\",\"uid\":\"u\"},\"spec\":{\"finalizers\":"
	                    "[\"kubernetes\"]},\"status\":{\"phase\":\"Active\"}}");
	CHECK(kt_app_sanitize(nsobj, &mv, &err) == KT_OK);
	CHECK_STR(at(nsobj, "metadata.name"), "pg-copy");
	CHECK(at(nsobj, "metadata.namespace") == NULL && at(nsobj, "status") == NULL);
	json_decref(nsobj);

	json_t *pod = obj("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},"
	                  "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}}");
	CHECK(kt_app_sanitize(pod, NULL, &err) == KT_OK);
	CHECK(at(pod, "spec.nodeName") == NULL && at(pod, "status") == NULL);
	json_decref(pod);
}

static void test_tiers(void)
{
	CHECK(kt_app_tier("apiextensions.k8s.io", "CustomResourceDefinition") == 0);
	CHECK(kt_app_tier("", "Namespace") == 1);
	CHECK(kt_app_tier("", "ServiceAccount") < kt_app_tier("", "Secret"));
	CHECK(kt_app_tier("", "Secret") < kt_app_tier("", "PersistentVolumeClaim"));
	CHECK(kt_app_tier("", "PersistentVolumeClaim") < kt_app_tier("", "Service"));
	CHECK(kt_app_tier("", "Service") < kt_app_tier("apps", "StatefulSet"));
	CHECK(kt_app_tier("apps", "StatefulSet") < kt_app_tier("networking.k8s.io", "Ingress"));
	CHECK(kt_app_tier("example.com", "Widget") == KT_APP_TIERS - 1);
	CHECK(kt_app_tier("example.com", "Secret") == KT_APP_TIERS - 1); /* group matters */
	CHECK(kt_app_tier(NULL, "Service") == 6);
}

static int ready(const char *kind, const char *json, char *why)
{
	json_t *o = obj(json);
	int r = kt_app_ready_state(kind, o, why, 256);
	json_decref(o);
	return r;
}

static void test_ready_state(void)
{
	char why[256];
	CHECK(ready("PersistentVolumeClaim", "{\"status\":{\"phase\":\"Bound\"}}", why) == 1);
	CHECK(ready("PersistentVolumeClaim", "{\"status\":{\"phase\":\"Pending\"}}", why) == 0);
	CHECK(strstr(why, "Pending") != NULL);
	CHECK(ready("PersistentVolumeClaim", "{\"status\":{\"phase\":\"Lost\"}}", why) == -1);
	/* No status from a controller yet: not ready, and said so. */
	CHECK(ready("StatefulSet", "{\"metadata\":{\"generation\":1},\"spec\":{\"replicas\":2}}",
	            why) == 0);
	CHECK(strstr(why, "0 of 2 replicas ready") && strstr(why, "no status"));
	/* A status of an older generation says nothing about the new spec. */
	CHECK(ready("StatefulSet", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":1},"
	            "\"status\":{\"observedGeneration\":2,\"readyReplicas\":1,"
	            "\"updatedReplicas\":1}}", why) == 0);
	CHECK(ready("StatefulSet", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":1},"
	            "\"status\":{\"observedGeneration\":3,\"readyReplicas\":1,"
	            "\"updatedReplicas\":1}}", why) == 1);
	/* Deployments count available replicas; replicas defaults to 1; 0 is ready. */
	CHECK(ready("Deployment", "{\"metadata\":{\"generation\":1},\"status\":{"
	            "\"observedGeneration\":1,\"readyReplicas\":1,\"updatedReplicas\":1}}", why) == 0);
	CHECK(ready("Deployment", "{\"metadata\":{\"generation\":1},\"spec\":{\"replicas\":0},"
	            "\"status\":{\"observedGeneration\":1}}", why) == 1);
	CHECK(ready("DaemonSet", "{\"metadata\":{\"generation\":1},\"status\":{"
	            "\"observedGeneration\":1,\"desiredNumberScheduled\":3,\"numberReady\":2,"
	            "\"updatedNumberScheduled\":3}}", why) == 0);
	CHECK(strstr(why, "2 of 3 pods ready") != NULL);
	CHECK(ready("Job", "{\"status\":{\"conditions\":[{\"type\":\"Complete\","
	            "\"status\":\"True\"}]}}", why) == 1);
	CHECK(ready("Job", "{\"status\":{\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\","
	            "\"message\":\"BackoffLimitExceeded\"}]}}", why) == -1);
	CHECK(strstr(why, "BackoffLimitExceeded") != NULL);
	CHECK(ready("ConfigMap", "{}", why) == 1);   /* no readiness to wait for */
}

/* A release as Helm 3 stores it: base64(gzip(JSON)) (made with Python's gzip,
 * another encoder than zlib's, on purpose), and the Secret's data.release
 * holding that text base64'd once more. */
#define HELM_TEXT "H4sIAAAAAAACAy2OsQ6DMAxEfyVyV1LEmrVzp0qdsljBoKiJY5GAQIh/b6Ad793p9HZgjAQGZIQG" \
	"PA8JzA65YJlzpT1JSBv1cDTgEg9+POu1NtuJIrIfKJeatdaWb+qV5smRUTK2haIELJRbF+8bxmAZxb9p" \
	"yj6xUUtn+eO5N+pxHT9RLFeH5TcA0zWXWxZ0f8HjC+KlhvCuAAAA"
#define HELM_SECRET_DATA "SDRzSUFBQUFBQUFDQXkyT3NRNkRNQXhFZnlWeVYxTEVtclZ6cDBxZHNsakJvS2lKWTVH" \
	"QVFJaC9iNkFkNzkzcDlIWmdqQVFHWklRR1BBOEp6QTY1WUpsenBUMUpTQnYxY0RUZ0VnOStQT3UxTnR1" \
	"SklySWZLSmVhdGRhV2IrcVY1c21SVVRLMmhhSUVMSlJiRis4YnhtQVp4YjlweWo2eFVVdG4rZU81Titw" \
	"eEhUOVJMRmVINVRjQTB6V1hXeFowZjhIakMrS2xodkN1QUFBQQ=="

static json_t *helm_secret(const char *ns, const char *data)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"helm.sh/release.v1\","
	         "\"metadata\":{\"name\":\"sh.helm.release.v1.pg.v1\",\"namespace\":\"%s\","
	         "\"labels\":{\"owner\":\"helm\",\"name\":\"pg\",\"status\":\"deployed\","
	         "\"version\":\"1\"}},\"data\":{\"release\":\"%s\"}}", ns, data);
	return obj(text);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Test-side base64, independent of helm.c's: decode (unpadded tail ok). */
static char *unb64(const char *v, size_t *len)
{
	size_t n = strlen(v);
	char *out = malloc(n + 1);
	uint32_t acc = 0;
	int bits = 0;
	*len = 0;
	for (size_t i = 0; i < n && v[i] != '='; i++) {
		acc = acc << 6 | (uint32_t)(strchr(b64, v[i]) - b64);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[(*len)++] = (char)(acc >> bits & 0xff);
		}
	}
	return out;
}

static char *tob64(const unsigned char *p, size_t n)
{
	char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*q++ = b64[w >> 18 & 63];
		*q++ = b64[w >> 12 & 63];
		*q++ = i + 1 < n ? b64[w >> 6 & 63] : '=';
		*q++ = i + 2 < n ? b64[w & 63] : '=';
	}
	*q = '\0';
	return o;
}

/* The release inside a Secret's data.release, decoded both layers. */
static json_t *inner_release(json_t *secret)
{
	size_t len;
	char *helm = unb64(at(secret, "data.release"), &len);
	json_t *rel = NULL;
	kt_error err;
	CHECK(kt_app_helm_decode(helm, len, &rel, &err) == KT_OK);
	free(helm);
	return rel;
}

static void test_helm_release_codec(void)
{
	kt_error err;
	json_t *rel = NULL;
	CHECK(kt_app_helm_decode(HELM_TEXT, strlen(HELM_TEXT), &rel, &err) == KT_OK);
	CHECK_STR(at(rel, "namespace"), "pg");
	CHECK_STR(at(rel, "info.status"), "deployed");
	CHECK_CONTAINS(at(rel, "manifest"), "kind: ConfigMap");
	/* encode then decode gives the same release, and Helm's framing */
	char *enc = NULL;
	size_t n = 0;
	CHECK(kt_app_helm_encode(rel, &enc, &n, &err) == KT_OK);
	CHECK(n == strlen(enc) && !strncmp(enc, "H4sI", 4)); /* gzip magic, base64'd */
	json_t *back = NULL;
	CHECK(kt_app_helm_decode(enc, n, &back, &err) == KT_OK);
	CHECK(json_equal(rel, back));
	free(enc);
	json_decref(back);
	json_decref(rel);
	/* plain base64(JSON), which Helm reads too */
	const char *plain = "eyJuYW1lIjoicGciLCJuYW1lc3BhY2UiOiJwZyJ9"; /* {"name":"pg","namespace":"pg"} */
	CHECK(kt_app_helm_decode(plain, strlen(plain), &rel, &err) == KT_OK);
	CHECK_STR(at(rel, "name"), "pg");
	json_decref(rel);
	/* what is not a release: each error names what is wrong */
	rel = NULL;
	CHECK(kt_app_helm_decode("H4s*", 4, &rel, &err) == KT_ECORRUPT && rel == NULL);
	CHECK_CONTAINS(err.msg, "not base64");
	CHECK(kt_app_helm_decode("H4sIAAAA", 8, &rel, &err) == KT_ECORRUPT); /* truncated gzip */
	CHECK_CONTAINS(err.msg, "gzip");
	CHECK(kt_app_helm_decode("WzFd", 4, &rel, &err) == KT_ECORRUPT);     /* [1] */
	CHECK_CONTAINS(err.msg, "not a JSON object");
	CHECK(kt_app_helm_decode("H4sI", 4, &rel, &err) == KT_ECORRUPT);
	CHECK(rel == NULL);
}

static void test_helm_release_bomb_is_bounded(void)
{
	/* A gzip bomb: KT_APP_HELM_MAX_JSON + 1 MiB of JSON whitespace before
	 * "{}" packs into ~70 KB; unpacking stops at the bound, KT_ELIMIT. */
	size_t big = (size_t)KT_APP_HELM_MAX_JSON + (1u << 20);
	char *doc = malloc(big);
	memset(doc, ' ', big - 2);
	memcpy(doc + big - 2, "{}", 2);
	uLong cap = compressBound((uLong)big) + 64;
	unsigned char *gz = malloc(cap);
	z_stream z;
	memset(&z, 0, sizeof(z));
	CHECK(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	z.next_in = (unsigned char *)doc;
	z.avail_in = (uInt)big;
	z.next_out = gz;
	z.avail_out = (uInt)cap;
	CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
	char *text = tob64(gz, cap - z.avail_out);
	deflateEnd(&z);
	free(gz);
	free(doc);
	kt_error err;
	json_t *rel = NULL;
	CHECK(kt_app_helm_decode(text, strlen(text), &rel, &err) == KT_ELIMIT && rel == NULL);
	CHECK_CONTAINS(err.msg, "larger than");
	free(text);
	/* and an encoded record past its own bound is refused unread */
	CHECK(kt_app_helm_decode("AAAA", (size_t)KT_APP_HELM_MAX_ENCODED + 4, &rel, &err) ==
	      KT_ELIMIT);
}

static void test_helm_release_mapped_to_another_namespace(void)
{
	kt_error err;
	json_t *s = helm_secret("pg", HELM_SECRET_DATA);
	CHECK(kt_app_helm_is_release(s));
	kt_app_map m = { .from_ns = "pg", .to_ns = "pg-copy" };
	CHECK(kt_app_sanitize(s, &m, &err) == KT_OK);
	CHECK_STR(at(s, "metadata.namespace"), "pg-copy");
	CHECK_STR(at(s, "metadata.labels.owner"), "helm");     /* labels stay: helm finds it */
	json_t *rel = inner_release(s);
	CHECK_STR(at(rel, "namespace"), "pg-copy");
	CHECK_STR(at(rel, "name"), "pg");
	CHECK_STR(at(rel, "config.x"), "y");
	CHECK_CONTAINS(at(rel, "manifest"), "kind: ConfigMap");
	json_decref(rel);
	/* idempotent: a second pass changes nothing */
	char *once = json_dumps(s, JSON_SORT_KEYS);
	CHECK(kt_app_sanitize(s, &m, &err) == KT_OK);
	char *twice = json_dumps(s, JSON_SORT_KEYS);
	CHECK_STR(once, twice);
	free(once);
	free(twice);
	json_decref(s);

	/* in place: not decoded, not re-encoded (byte for byte as backed up) */
	s = helm_secret("pg", HELM_SECRET_DATA);
	kt_app_map same = { .from_ns = "pg" };
	CHECK(kt_app_sanitize(s, &same, &err) == KT_OK);
	CHECK_STR(at(s, "data.release"), HELM_SECRET_DATA);
	json_decref(s);

	/* a release of another namespace, or a plain Secret: untouched */
	int changed = 1;
	s = helm_secret("pg", HELM_SECRET_DATA);
	CHECK(kt_app_helm_map_release(s, "other", "x", &changed, &err) == KT_OK && !changed);
	CHECK_STR(at(s, "data.release"), HELM_SECRET_DATA);
	json_object_set_new(s, "type", json_string("Opaque"));
	CHECK(!kt_app_helm_is_release(s));
	CHECK(kt_app_helm_map_release(s, "pg", "x", &changed, &err) == KT_OK && !changed);
	json_decref(s);

	/* a broken record: an error from the mapper, and sanitize restores it as
	 * it was rather than failing the restore */
	s = helm_secret("pg", "bm90IGd6aXA=");   /* "not gzip" */
	CHECK(kt_app_helm_map_release(s, "pg", "x", &changed, &err) == KT_ECORRUPT && !changed);
	CHECK(kt_app_sanitize(s, &m, &err) == KT_OK);
	CHECK_STR(at(s, "data.release"), "bm90IGd6aXA=");
	CHECK_STR(at(s, "metadata.namespace"), "pg-copy");
	json_decref(s);

	/* HELM_DRIVER=configmap: a ConfigMap, one base64 layer */
	char text[1024];
	snprintf(text, sizeof(text), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
	         "{\"name\":\"pg.v1\",\"namespace\":\"pg\",\"labels\":{\"owner\":\"helm\"}},"
	         "\"data\":{\"release\":\"%s\"}}", HELM_TEXT);
	json_t *cm = obj(text);
	CHECK(kt_app_helm_map_release(cm, "pg", "pg-copy", &changed, &err) == KT_OK && changed);
	const char *v = at(cm, "data.release");
	CHECK(kt_app_helm_decode(v, strlen(v), &rel, &err) == KT_OK);
	CHECK_STR(at(rel, "namespace"), "pg-copy");
	json_decref(rel);
	json_decref(cm);
}

int main(void)
{
	RUN(test_skip_resources);
	RUN(test_skip_objects);
	RUN(test_sanitize_common_and_idempotent);
	RUN(test_sanitize_per_kind);
	RUN(test_tiers);
	RUN(test_ready_state);
	RUN(test_helm_release_codec);
	RUN(test_helm_release_bomb_is_bounded);
	RUN(test_helm_release_mapped_to_another_namespace);
	return unit_done();
}
