/*
 * policy.c - Policy custom resources (kontinuity.io/v1alpha1,
 * deploy/crds/kontinuity.io/policies.yaml): read one, say when it is next
 * due, and run it - a restore point of each namespace into the profile's
 * repository, then tiered retention of this cluster's restore points of
 * those namespaces (docs/policies.md).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "archive/archive.h"

static const char *jstr(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

kt_code kt_policy_from_object(kt_policy *out, json_t *obj, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *name = jstr(obj, "metadata", "name");
	json_t *spec = json_object_get(obj, "spec");
	json_t *nss = json_object_get(spec, "namespaces");
	const char *profile = jstr(spec, "profile", NULL);
	const char *nsel = jstr(spec, "namespaceSelector", NULL);
	if (!name || !((json_is_array(nss) && json_array_size(nss)) || (nsel && *nsel)) ||
	    !profile)
		return kt_error_set(err, KT_EUSAGE, "policy '%s': spec.profile and spec.namespaces or "
		                    "spec.namespaceSelector are required", name ? name : "?");
	snprintf(out->name, sizeof(out->name), "%s", name);
	const char *ns = jstr(obj, "metadata", "namespace");
	snprintf(out->namespace, sizeof(out->namespace), "%s", ns ? ns : "");
	const char *uid = jstr(obj, "metadata", "uid");
	snprintf(out->uid, sizeof(out->uid), "%s", uid ? uid : "");
	snprintf(out->profile, sizeof(out->profile), "%s", profile);
	out->namespaces = kt_xcalloc(json_array_size(nss) + 1, sizeof(char *));
	if (nsel && *nsel)
		out->namespace_selector = kt_xstrdup(nsel);
	size_t i;
	json_t *v;
	json_array_foreach(nss, i, v) {
		const char *n = json_string_value(v);
		if (!n || !kt_kube_valid_label(n)) {
			kt_policy_release(out);
			return kt_error_set(err, KT_EUSAGE, "policy '%s': '%s' is not a namespace name",
			                    name, n ? n : "?");
		}
		out->namespaces[out->n_namespaces++] = kt_xstrdup(n);
	}
	const char *sel = jstr(spec, "selector", NULL);
	if (sel && *sel)
		out->selector = kt_xstrdup(sel);
	const char *sched = jstr(spec, "schedule", NULL);
	snprintf(out->schedule, sizeof(out->schedule), "%s", sched ? sched : "");
	json_t *vs = json_object_get(spec, "volumeSnapshots");
	out->volume_snapshots = !json_is_false(vs);
	const char *vd = jstr(spec, "volumeData", NULL);
	if (vd && strcmp(vd, "copy") && strcmp(vd, "snapshot-only")) {
		kt_policy_release(out);
		return kt_error_set(err, KT_EUSAGE, "policy '%s': volumeData is copy or snapshot-only, "
		                    "not '%s'", name, vd);
	}
	out->volume_data = out->volume_snapshots && (!vd || !strcmp(vd, "copy"));
	const char *img = jstr(spec, "moverImage", NULL);
	snprintf(out->mover_image, sizeof(out->mover_image), "%s", img ? img : "");
	json_t *ret = json_object_get(spec, "retention");
	unsigned *keep[] = { &out->keep_last, &out->keep_hourly, &out->keep_daily,
		             &out->keep_weekly, &out->keep_monthly, &out->keep_yearly };
	static const char *const tiers[] = { "last", "hourly", "daily", "weekly", "monthly",
		                             "yearly" };
	for (size_t k = 0; k < 6; k++) {
		json_int_t n = json_integer_value(json_object_get(ret, tiers[k]));
		*keep[k] = n > 0 && n < 1000000 ? (unsigned)n : 0;
	}
	const char *last = jstr(json_object_get(obj, "status"), "lastRun", "time");
	snprintf(out->last_run, sizeof(out->last_run), "%s", last ? last : "");
	const char *created = jstr(obj, "metadata", "creationTimestamp");
	snprintf(out->created, sizeof(out->created), "%s", created ? created : "");
	json_int_t runs = json_integer_value(json_object_get(json_object_get(obj, "status"),
	                                                     "runs"));
	out->runs = runs > 0 ? (unsigned)runs : 0;
	/* The schedule must be understood now, not at the first run. */
	int64_t next;
	kt_code rc = kt_policy_next(out, 0, &next, err);
	if (rc)
		kt_policy_release(out);
	return rc;
}

void kt_policy_release(kt_policy *p)
{
	for (size_t i = 0; i < p->n_namespaces; i++)
		free(p->namespaces[i]);
	free(p->namespaces);
	free(p->selector);
	free(p->namespace_selector);
	p->namespaces = NULL;
	p->selector = NULL;
	p->namespace_selector = NULL;
	p->n_namespaces = 0;
}

kt_code kt_policy_next(const kt_policy *p, int64_t after, int64_t *next, kt_error *err)
{
	const char *s = p->schedule[0] ? p->schedule : "@hourly";
	if (!strncmp(s, "@every ", 7)) {
		int64_t ms;
		if (kt_parse_duration_ms(s + 7, &ms, err) || ms < 1000)
			return kt_error_set(err, KT_EUSAGE, "policy '%s': schedule '%s': @every needs a "
			                    "duration of at least 1s (30s, 15m, 6h)", p->name, s);
		*next = after + (ms + 999) / 1000;
		return KT_OK;
	}
	kt_cron cron;   /* kt_cron_parse knows @hourly, @daily, ... too */
	kt_code rc = kt_cron_parse(&cron, s, err);
	if (!rc)
		rc = kt_cron_next(&cron, after < 0 ? 0 : after, next, err);
	if (rc)
		kt_error_wrap(err, "policy '%s': schedule '%s'", p->name, p->schedule);
	return rc;
}

/* forget's callback: the ids of the restore points it removes. */
static void note_going(void *ctx, const kt_archive_snap *s, const char *kept)
{
	if (!kept)
		json_array_append_new(ctx, json_string(s->id));
}

/* policy_namespaces' list callback: each matching namespace's name. */
static kt_code on_namespace(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	const char *n = jstr(json_object_get(obj, "metadata"), "name", NULL);
	if (n)
		json_array_append_new(ctx, json_string(n));
	return KT_OK;
}

static int has(json_t *v, const char *s)
{
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x)
		if (!strcmp(json_string_value(x), s))
			return 1;
	return 0;
}

/* The namespaces of this run, each once: those named, those whose labels
 * match spec.namespaceSelector now, and last the policy's own namespace
 * (kontinuity's catalog: policies, profiles and their Secrets), so a new
 * install recovers them from the profile with `app import`. */
static kt_code policy_namespaces(kt_kube *c, const kt_policy *p, json_t *out, kt_error *err)
{
	for (size_t i = 0; i < p->n_namespaces; i++)
		if (!has(out, p->namespaces[i]) && strcmp(p->namespaces[i], p->namespace))
			json_array_append_new(out, json_string(p->namespaces[i]));
	if (p->namespace_selector) {
		json_t *found = json_array();
		kt_kube_target t = { .version = "v1", .resource = "namespaces" };
		kt_kube_list_opts lo = { .label_selector = p->namespace_selector };
		kt_kube_list_result lr;
		kt_code rc = kt_kube_list(c, &t, &lo, on_namespace, found, &lr, err);
		size_t i;
		json_t *x;
		json_array_foreach(rc ? NULL : found, i, x)
			if (!has(out, json_string_value(x)) && strcmp(json_string_value(x), p->namespace))
				json_array_append(out, x);
		json_decref(found);
		if (rc)
			return kt_error_wrap(err, "policy '%s': namespaces matching '%s'", p->name,
			                     p->namespace_selector);
	}
	if (p->namespace[0])
		json_array_append_new(out, json_string(p->namespace));
	return KT_OK;
}

kt_code kt_policy_run(kt_kube *c, kt_archive *a, const kt_policy *p, const kt_app_mover *mover,
                      kt_policy_run_result *r, kt_error *err)
{
	memset(r, 0, sizeof(*r));
	kt_time_iso(r->time, sizeof(r->time));
	r->restore_points = json_array();
	char *cluster = NULL;
	kt_code rc = kt_kube_namespace_uid(c, "kube-system", &cluster, err);
	if (rc)
		return rc;
	unsigned failed = 0, partial = 0;
	size_t used = 0;
	json_t *nss = json_array();
	if ((rc = policy_namespaces(c, p, nss, err))) {
		json_decref(nss);
		free(cluster);
		return rc;
	}
	size_t n_runs = json_array_size(nss);
	for (size_t i = 0; i < n_runs && !rc; i++) {
		const char *ns = json_string_value(json_array_get(nss, i));
		int catalog = !strcmp(ns, p->namespace);
		kt_app_backup_opts bo = { .namespace = ns, .selector = catalog ? NULL : p->selector,
		                          .cluster = cluster,
		                          .no_volume_snapshots = catalog || !p->volume_snapshots,
		                          .mover = catalog ? NULL : mover };
		kt_app_backup_result br;
		kt_error e;
		kt_error_clear(&e);
		if ((rc = kt_archive_lock(a, 0, err)))
			break;
		kt_code b = kt_app_backup(c, a, &bo, &br, &e);
		kt_archive_unlock(a);
		if (b == KT_ECANCELED) {
			rc = kt_error_set(err, b, "interrupted");
			break;
		}
		if (b) {
			failed++;
			used += (size_t)snprintf(r->message + used, sizeof(r->message) - used,
			                         "%s%s: %.300s", used ? "; " : "", ns, e.msg);
			if (used >= sizeof(r->message))
				used = sizeof(r->message) - 1;
			continue;
		}
		json_array_append_new(r->restore_points, json_string(br.id));
		if (br.st.failed) {
			partial++;
			used += (size_t)snprintf(r->message + used, sizeof(r->message) - used,
			                         "%s%s: %llu not captured", used ? "; " : "", ns,
			                         (unsigned long long)br.st.failed);
			if (used >= sizeof(r->message))
				used = sizeof(r->message) - 1;
		}
	}
	/* Retention: this cluster's restore points of each namespace. */
	int any_rule = p->keep_last || p->keep_hourly || p->keep_daily || p->keep_weekly ||
	               p->keep_monthly || p->keep_yearly;
	for (size_t i = 0; !rc && any_rule && i < n_runs; i++) {
		char tag[300];
		snprintf(tag, sizeof(tag), "ns=%s", json_string_value(json_array_get(nss, i)));
		kt_archive_policy pol = { .last = p->keep_last, .hourly = p->keep_hourly,
		                          .daily = p->keep_daily, .weekly = p->keep_weekly,
		                          .monthly = p->keep_monthly, .yearly = p->keep_yearly,
		                          .host = cluster, .tag = tag };
		unsigned removed = 0;
		json_t *going = json_array(), *vols = json_array();
		if (!(rc = kt_archive_lock(a, 0, err))) {
			/* Which restore points go (a dry run), their volume snapshots, then
			 * the real forget: the manifests cannot be read after it. */
			rc = kt_archive_forget(a, &pol, 1, note_going, going, &removed, err);
			size_t k;
			json_t *id;
			json_t *data = json_array();
			json_array_foreach(rc ? NULL : going, k, id) {
				kt_error e;
				json_t *v = kt_app_restore_point_volumes(a, json_string_value(id), &e);
				if (v)
					json_array_extend(vols, v);
				kt_app_volume_data(v, data);
				json_decref(v);
			}
			if (!rc)
				rc = kt_archive_forget(a, &pol, 0, NULL, NULL, &removed, err);
			/* The volume data copies go with their restore points (each is a
			 * snapshot of its own, kept by no rule of the restore points'). */
			json_array_foreach(rc ? NULL : data, k, id) {
				kt_error e;
				kt_code d = kt_archive_forget_snapshot(a, json_string_value(id), &e);
				if (d && d != KT_ENOTFOUND)
					kt_log(KT_LOG_WARN, "policy %s: volume data snapshot %.8s stays: %s",
					       p->name, json_string_value(id), e.msg);
			}
			json_decref(data);
			kt_archive_unlock(a);
		}
		if (!rc) {
			unsigned failed_vols = 0;
			kt_app_delete_volume_snapshots(c, vols, &failed_vols);
			r->snapshots_deleted += (unsigned)json_array_size(vols) - failed_vols;
		}
		json_decref(going);
		json_decref(vols);
		r->removed += removed;
	}
	if (!rc && r->removed) {
		kt_archive_prune_result pr;
		kt_error e;
		if (kt_archive_prune(a, 0, &pr, &e))   /* another run may hold a lock: next time */
			kt_log(KT_LOG_WARN, "policy %s: prune deferred: %s", p->name, e.msg);
	}
	free(cluster);
	json_decref(nss);
	r->result = failed == n_runs ? "failed" : failed || partial ? "partial" : "ok";
	if (!r->message[0])
		snprintf(r->message, sizeof(r->message), "%zu restore points, %u removed by retention "
		         "(%u volume snapshots given back)", json_array_size(r->restore_points),
		         r->removed, r->snapshots_deleted);
	return rc;
}
