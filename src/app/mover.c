/*
 * mover.c - the volume data mover's orchestration (docs/app-backup.md,
 * "Volume data: the mover"): copying a PVC's data into the repository of an
 * export profile, and back into a new PVC, with a Job that runs
 * `kontinuity mover backup|restore` (src/cli/cmd_mover.c) where the volume
 * can be mounted.  Nothing here touches volume bytes.
 *
 * One move, in order:
 *   1. backup: a temporary PVC from the restore point's VolumeSnapshot
 *      (dataSource); restore: the application's PVC, created empty by the
 *      caller.
 *   2. a temporary Secret in the application's namespace with the
 *      repository's location and credentials (the profile's own Secret
 *      lives in the profile's namespace, which a pod cannot reference);
 *   3. a Job mounting the volume at /data (read-only for backup) whose
 *      container gets the Secret's keys through env valueFrom - never in
 *      args, which a pod spec and `kubectl describe` show;
 *   4. wait for the Job's Complete or Failed condition (the reason and
 *      message of the latter are the error);
 *   5. backup: the data snapshot is found in the repository by its tags
 *      ("volume", ns=, pvc=, rp=RUN), not in the Job's log;
 *   6. in every outcome: delete the Job (propagation Background: its pod
 *      too), the temporary Secret and the temporary PVC.
 * Invariant: everything created carries app.kubernetes.io/managed-by=
 * kontinuity and kontinuity.io/mover-run=RUN, so what a killed run leaves
 * behind can be found and deleted by label.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "archive/archive.h"
#include "volsnap/volsnap.h"

#define MOUNT "/data"
#define RUN_LABEL "kontinuity.io/mover-run"

static const kt_kube_target job_t = { .group = "batch", .version = "v1", .resource = "jobs" };
static const kt_kube_target secret_t = { .version = "v1", .resource = "secrets" };
static const kt_kube_target pvc_t = { .version = "v1", .resource = "persistentvolumeclaims" };

static json_t *labels(const char *run)
{
	return json_pack("{s:s, s:s, s:s}", "app.kubernetes.io/managed-by", "kontinuity",
	                 "app.kubernetes.io/component", "volume-mover", RUN_LABEL, run);
}

/* The repository's location and credentials as the mover's environment
 * (the names cmd_mover.c and repo_flags.c read). */
static json_t *secret_object(const kt_app_mover *m, const char *name, const char *run)
{
	const kt_profile *p = m->profile;
	char url[700], days[16];
	snprintf(url, sizeof(url), "s3://%s%s%s", p->bucket, p->prefix[0] ? "/" : "", p->prefix);
	snprintf(days, sizeof(days), "%u", p->immutable_days);
	json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "KONTINUITY_REPO", url,
	                         "AWS_ENDPOINT_URL", p->endpoint, "AWS_DEFAULT_REGION",
	                         p->region[0] ? p->region : "us-east-1", "AWS_ACCESS_KEY_ID",
	                         p->access_key ? p->access_key : "", "AWS_SECRET_ACCESS_KEY",
	                         p->secret_key ? p->secret_key : "", "KONTINUITY_PASSWORD",
	                         p->repo_password ? p->repo_password : "",
	                         "KONTINUITY_S3_PATH_STYLE", p->path_style ? "1" : "0",
	                         "KONTINUITY_S3_LOCK_DAYS", days);
	if (p->ca_pem)
		json_object_set_new(data, "KONTINUITY_S3_CA_PEM", json_string(p->ca_pem));
	return json_pack("{s:s, s:s, s:{s:s, s:o}, s:s, s:o}", "apiVersion", "v1", "kind", "Secret",
	                 "metadata", "name", name, "labels", labels(run), "type", "Opaque",
	                 "stringData", data);
}

static const char *const env_keys[] = {
	"KONTINUITY_REPO", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY", "KONTINUITY_PASSWORD", "KONTINUITY_S3_PATH_STYLE",
	"KONTINUITY_S3_LOCK_DAYS", "KONTINUITY_S3_CA_PEM", NULL,
};

/* The Job (docs/app-backup.md, "The mover's Job"); args: the command after
 * the program name, a NULL-terminated list. */
static json_t *job_object(const kt_app_mover *m, const char *name, const char *run,
                          const char *secret, const char *claim, int read_only,
                          const char *const *args)
{
	json_t *env = json_array();
	for (size_t i = 0; env_keys[i]; i++)
		json_array_append_new(env, json_pack("{s:s, s:{s:{s:s, s:s, s:b}}}", "name",
		                      env_keys[i], "valueFrom", "secretKeyRef", "name", secret, "key",
		                      env_keys[i], "optional", !strcmp(env_keys[i],
		                                                       "KONTINUITY_S3_CA_PEM")));
	json_t *argv = json_array();
	for (size_t i = 0; args[i]; i++)
		json_array_append_new(argv, json_string(args[i]));
	/* Backup reads files of any owner (DAC_READ_SEARCH); restore writes them
	 * with their owners (CHOWN, FOWNER, DAC_OVERRIDE).  Nothing else. */
	json_t *caps = read_only ? json_pack("[s]", "DAC_READ_SEARCH")
	                         : json_pack("[s, s, s]", "CHOWN", "FOWNER", "DAC_OVERRIDE");
	int64_t deadline = (m->timeout_ms ? m->timeout_ms : 3600000) / 1000;
	json_t *container = json_pack(
		"{s:s, s:s, s:s, s:[s], s:o, s:o, s:[{s:s, s:s, s:b}, {s:s, s:s}], "
		"s:{s:b, s:b, s:{s:[s], s:o}, s:{s:s}}}",
		"name", "mover", "image", m->image ? m->image : KT_MOVER_IMAGE, "imagePullPolicy",
		"IfNotPresent", "command", "kontinuity", "args", argv, "env", env, "volumeMounts",
		"name", "data", "mountPath", MOUNT, "readOnly", read_only, "name", "tmp", "mountPath",
		"/tmp", "securityContext", "allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1,
		"capabilities", "drop", "ALL", "add", caps, "seccompProfile", "type",
		"RuntimeDefault");
	return json_pack(
		"{s:s, s:s, s:{s:s, s:o}, s:{s:i, s:I, s:i, s:{s:{s:o}, s:{s:s, s:b, s:[o], "
		"s:[{s:s, s:{s:s, s:b}}, {s:s, s:{}}]}}}}",
		"apiVersion", "batch/v1", "kind", "Job", "metadata", "name", name, "labels",
		labels(run), "spec", "backoffLimit", 1, "activeDeadlineSeconds", (json_int_t)deadline,
		"ttlSecondsAfterFinished", 3600, "template", "metadata", "labels", labels(run), "spec",
		"restartPolicy", "Never", "automountServiceAccountToken", 0, "containers", container,
		"volumes", "name", "data", "persistentVolumeClaim", "claimName", claim, "readOnly",
		read_only, "name", "tmp", "emptyDir");
}

int kt_app_mover_job_state(json_t *job, char *why, size_t cap)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(json_object_get(job, "status"), "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *status = json_string_value(json_object_get(c, "status"));
		if (!type || !status || strcmp(status, "True"))
			continue;
		if (!strcmp(type, "Complete"))
			return 1;
		if (!strcmp(type, "Failed")) {
			const char *reason = json_string_value(json_object_get(c, "reason"));
			const char *msg = json_string_value(json_object_get(c, "message"));
			snprintf(why, cap, "%s%s%s", reason ? reason : "Failed", msg ? ": " : "",
			         msg ? msg : "");
			return 2;
		}
	}
	return 0;
}

static kt_code on_job_event(void *ctx, const char *type, json_t *obj, int *stop, kt_error *err)
{
	(void)ctx, (void)type, (void)obj, (void)err;
	*stop = 1;   /* anything changed: read the Job again */
	return KT_OK;
}

/* Wait until Job ns/name finishes; KT_OK when Complete, KT_EREMOTE with the
 * Failed condition's reason, KT_ETRANSIENT past timeout_ms. */
static kt_code wait_job(kt_kube *c, const kt_app_mover *m, const char *ns, const char *name,
                        const char *what, kt_error *err)
{
	int64_t timeout = (m->timeout_ms ? m->timeout_ms : 3600000) + 60000;
	int64_t start = kt_now_ms(), said = 0;
	char selector[300];
	snprintf(selector, sizeof(selector), "metadata.name=%s", name);
	for (;;) {
		kt_kube_target t = job_t;
		t.namespace = ns;
		t.name = name;
		json_t *job = NULL;
		kt_code rc = kt_kube_get_object(c, &t, &job, err);
		if (rc)
			return kt_error_wrap(err, "mover Job %s/%s", ns, name);
		char why[1024] = "", rv[128];
		int state = kt_app_mover_job_state(job, why, sizeof(why));
		json_t *st = json_object_get(job, "status");
		int active = (int)json_integer_value(json_object_get(st, "active"));
		int failed = (int)json_integer_value(json_object_get(st, "failed"));
		const char *r = json_string_value(json_object_get(json_object_get(job, "metadata"),
		                                                  "resourceVersion"));
		snprintf(rv, sizeof(rv), "%s", r ? r : "");
		json_decref(job);
		if (state == 1)
			return KT_OK;
		if (state == 2)
			return kt_error_set(err, KT_EREMOTE, "the mover Job %s/%s (%s) failed: %s (see "
			                    "'kubectl logs -n %s job/%s' before it is deleted, or run it "
			                    "again with -v)", ns, name, what, why, ns, name);
		int64_t now = kt_now_ms();
		if (now - start > timeout)
			return kt_error_set(err, KT_ETRANSIENT, "the mover Job %s/%s (%s) did not finish "
			                    "in %.0f s (is the image '%s' pullable and the PVC bound?)",
			                    ns, name, what, (double)timeout / 1000.0,
			                    m->image ? m->image : KT_MOVER_IMAGE);
		if (m->progress && now - said >= 10000) {
			char line[700];
			snprintf(line, sizeof(line), "%s: Job %s/%s running %.0f s (%d active, %d failed "
			         "pods)", what, ns, name, (double)(now - start) / 1000.0, active, failed);
			m->progress(m->progress_ctx, line);
			said = now;
		}
		t.name = NULL;
		kt_kube_watch_opts wo = { .resource_version = rv, .field_selector = selector,
		                          .timeout_s = 5 };
		rc = kt_kube_watch(c, &t, &wo, on_job_event, NULL, NULL, err);
		if (rc == KT_ECANCELED)
			return rc;
		/* any other watch error (410 ...): read the Job again */
	}
}

/* Delete what a move created; failures are logged (the labels find them). */
static void cleanup(kt_kube *c, const char *ns, const char *job, const char *secret,
                    const char *pvc)
{
	kt_kube_target t[3] = { job_t, secret_t, pvc_t };
	const char *names[3] = { job, secret, pvc };
	for (int i = 0; i < 3; i++) {
		if (!names[i])
			continue;
		t[i].namespace = ns;
		t[i].name = names[i];
		kt_kube_delete_opts d = { .propagation = "Background" };
		kt_error e;
		kt_code rc = kt_kube_delete(c, &t[i], i == 0 ? &d : NULL, &e);
		if (rc && rc != KT_ENOTFOUND)
			kt_log(KT_LOG_WARN, "cannot delete the mover's %s %s/%s: %s (delete it by label "
			       "app.kubernetes.io/managed-by=kontinuity)", t[i].resource, ns, names[i],
			       e.msg);
	}
}

/* Secret + Job, wait, and the Job deleted; the Secret too. */
static kt_code run_job(kt_kube *c, const kt_app_mover *m, const char *ns, const char *base,
                       const char *run, const char *claim, int read_only,
                       const char *const *args, const char *what, kt_error *err)
{
	char secret[254], job[64];
	snprintf(secret, sizeof(secret), "%s", base);
	snprintf(job, sizeof(job), "%.63s", base);
	kt_kube_target st = secret_t, jt = job_t;
	st.namespace = jt.namespace = ns;
	json_t *so = secret_object(m, secret, run);
	kt_code rc = kt_kube_create(c, &st, so, NULL, err);
	json_decref(so);
	if (rc)
		return kt_error_wrap(err, "creating the mover's Secret %s/%s", ns, secret);
	json_t *jo = job_object(m, job, run, secret, claim, read_only, args);
	rc = kt_kube_create(c, &jt, jo, NULL, err);
	json_decref(jo);
	if (rc)
		kt_error_wrap(err, "creating the mover Job %s/%s", ns, job);
	else
		rc = wait_job(c, m, ns, job, what, err);
	cleanup(c, ns, job, secret, NULL);
	return rc;
}

/* The newest snapshot tagged as run's mover backup of ns/pvc. */
static kt_code find_data(kt_archive *a, const char *ns, const char *pvc, const char *run,
                         char id[65], uint64_t *bytes, uint64_t *files, kt_error *err)
{
	kt_archive_snap *v = NULL;
	size_t n = 0;
	kt_code rc = kt_archive_snapshots(a, &v, &n, err);
	if (rc)
		return rc;
	char t_ns[300], t_pvc[300], t_run[300];
	snprintf(t_ns, sizeof(t_ns), "ns=%s", ns);
	snprintf(t_pvc, sizeof(t_pvc), "pvc=%s", pvc);
	snprintf(t_run, sizeof(t_run), "rp=%s", run);
	id[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int hits = 0;
		for (size_t t = 0; t < v[i].n_tags; t++)
			hits += !strcmp(v[i].tags[t], KT_MOVER_TAG) || !strcmp(v[i].tags[t], t_ns) ||
			        !strcmp(v[i].tags[t], t_pvc) || !strcmp(v[i].tags[t], t_run);
		if (hits == 4) {
			memcpy(id, v[i].id, 65);
			*bytes = v[i].bytes;
			*files = v[i].files;
		}
	}
	kt_archive_snaps_free(v, n);
	if (!id[0])
		return kt_error_set(err, KT_ENOTFOUND, "the mover Job of %s/%s succeeded but the "
		                    "repository holds no snapshot tagged %s, %s, %s (does the Job's "
		                    "image run 'kontinuity mover backup'?)", ns, pvc, t_ns, t_pvc,
		                    t_run);
	return KT_OK;
}

kt_code kt_app_mover_backup(kt_kube *c, kt_archive *a, const kt_app_mover *m,
                            const kt_app_mover_volume *v, kt_app_mover_data *out,
                            kt_error *err)
{
	memset(out, 0, sizeof(*out));
	/* The source PVC gives the temporary one its class, modes and size. */
	kt_kube_target pt = pvc_t;
	pt.namespace = v->namespace;
	pt.name = v->pvc;
	json_t *src = NULL;
	kt_code rc = kt_kube_get_object(c, &pt, &src, err);
	if (rc)
		return kt_error_wrap(err, "reading PVC %s/%s", v->namespace, v->pvc);
	json_t *spec = json_object_get(src, "spec");
	char base[64];
	snprintf(base, sizeof(base), "kt-mover-%s-%u", v->run, v->index);
	json_t *size = json_object_get(json_object_get(json_object_get(spec, "resources"),
	                                               "requests"), "storage");
	json_t *tmp = json_pack("{s:s, s:s, s:{s:s, s:o}, s:{s:O*, s:{s:{s:o*}}, s:{s:s, s:s, "
	                        "s:s}}}", "apiVersion", "v1", "kind", "PersistentVolumeClaim",
	                        "metadata", "name", base, "labels", labels(v->run), "spec",
	                        "accessModes", json_object_get(spec, "accessModes"), "resources",
	                        "requests", "storage", v->restore_size && *v->restore_size
	                        ? json_string(v->restore_size) : json_incref(size), "dataSource",
	                        "apiGroup", KT_VS_GROUP, "kind", "VolumeSnapshot", "name",
	                        v->snapshot);
	const char *cls = json_string_value(json_object_get(spec, "storageClassName"));
	char by_driver[254];
	if (v->storage_class && *v->storage_class)
		cls = v->storage_class;
	else if ((!cls || !*cls) && v->driver && kt_app_class_for_driver(c, v->driver, by_driver))
		cls = by_driver;   /* a static volume: the snapshot's driver provisions */
	if (cls && *cls)
		json_object_set_new(json_object_get(tmp, "spec"), "storageClassName",
		                    json_string(cls));
	if (!json_object_get(json_object_get(tmp, "spec"), "accessModes"))
		json_object_set_new(json_object_get(tmp, "spec"), "accessModes",
		                    json_pack("[s]", "ReadWriteOnce"));
	json_decref(src);
	pt.name = NULL;
	rc = kt_kube_create(c, &pt, tmp, NULL, err);
	json_decref(tmp);
	if (rc)
		return kt_error_wrap(err, "creating the temporary PVC %s/%s from snapshot %s",
		                     v->namespace, base, v->snapshot);
	char what[600];
	snprintf(what, sizeof(what), "volume data of %s/%s", v->namespace, v->pvc);
	const char *args[] = { "mover", "backup", MOUNT, "--namespace", v->namespace, "--pvc",
	                       v->pvc, "--run", v->run, "--host", v->cluster, NULL };
	rc = run_job(c, m, v->namespace, base, v->run, base, 1, args, what, err);
	if (!rc)
		rc = find_data(a, v->namespace, v->pvc, v->run, out->id, &out->bytes, &out->files,
		               err);
	cleanup(c, v->namespace, NULL, NULL, base);
	return rc;
}

kt_code kt_app_mover_restore(kt_kube *c, const kt_app_mover *m, const kt_app_mover_volume *v,
                             const char *data_id, kt_error *err)
{
	char base[64], what[600];
	snprintf(base, sizeof(base), "kt-mover-%s-%u", v->run, v->index);
	snprintf(what, sizeof(what), "restoring the volume data of %s/%s", v->namespace, v->pvc);
	const char *args[] = { "mover", "restore", data_id, MOUNT, NULL };
	return run_job(c, m, v->namespace, base, v->run, v->pvc, 0, args, what, err);
}
