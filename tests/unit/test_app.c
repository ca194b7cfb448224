/*
 * test_app.c - the pure rules of application backup (src/app): which
 * resources and objects are captured, how a restore sanitizes and maps an
 * object, and the restore tiers; docs/app-backup.md is what they check.
 */
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	RUN(test_skip_resources);
	RUN(test_skip_objects);
	RUN(test_sanitize_common_and_idempotent);
	RUN(test_sanitize_per_kind);
	RUN(test_tiers);
	return unit_done();
}
