/*
 * cmd_policy.c - `kontinuity policy create|list|run|delete` (Policy custom
 * resources, src/app/policy.c) and `kontinuity controller`, which runs the
 * policies when they are due and records each run in their status.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "archive/archive.h"
#include "cli.h"
#include "kube/kube.h"

static const kt_kube_target policies = { .group = KT_PROFILE_GROUP,
	                                 .version = KT_PROFILE_VERSION, .resource = "policies" };

/* "a,b,c" into a JSON array of strings. */
static json_t *split_list(const char *s)
{
	json_t *v = json_array();
	while (s && *s) {
		size_t n = strcspn(s, ",");
		if (n)
			json_array_append_new(v, json_stringn(s, n));
		s += n + (s[n] == ',');
	}
	return v;
}

int kt_cmd_policy_create(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "policy create";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	memset(&kf, 0, sizeof(kf));
	const char *ns = KT_PROFILE_NAMESPACE, *namespaces = NULL, *profile = NULL;
	const char *schedule = "@hourly", *selector = NULL, *ns_selector = NULL;
	const char *keep[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
	static const char *const tiers[] = { "last", "hourly", "daily", "weekly", "monthly",
		                             "yearly" };
	const char *volume_data = NULL, *mover_image = NULL;
	int no_snap = 0;
	kt_opt opts[28], *o = kt_cli_kube_opts(&kf, opts, NULL);
	*o++ = (kt_opt){ "namespace", 'n', "NS", "namespace of the policy and its profile "
	                 "(default " KT_PROFILE_NAMESPACE ")", &ns, NULL };
	*o++ = (kt_opt){ "namespaces", 0, "NS,NS", "the namespaces to back up", &namespaces,
	                 NULL };
	*o++ = (kt_opt){ "namespace-selector", 0, "LABELS", "also every namespace whose labels "
	                 "match, looked up at each run (team=shop,tier!=dev)", &ns_selector, NULL };
	*o++ = (kt_opt){ "profile", 0, "NAME", "export profile whose repository keeps the restore "
	                 "points (required)", &profile, NULL };
	*o++ = (kt_opt){ "schedule", 0, "CRON", "cron (UTC), @hourly/@daily/..., or @every 30m "
	                 "(default @hourly)", &schedule, NULL };
	*o++ = (kt_opt){ "selector", 'l', "LABELS", "only the objects with these labels",
	                 &selector, NULL };
	*o++ = (kt_opt){ "keep-last", 0, "N", "keep the N newest restore points", &keep[0], NULL };
	*o++ = (kt_opt){ "keep-hourly", 0, "N", "keep the newest of each of N hours", &keep[1],
	                 NULL };
	*o++ = (kt_opt){ "keep-daily", 0, "N", "... of N days", &keep[2], NULL };
	*o++ = (kt_opt){ "keep-weekly", 0, "N", "... of N weeks", &keep[3], NULL };
	*o++ = (kt_opt){ "keep-monthly", 0, "N", "... of N months", &keep[4], NULL };
	*o++ = (kt_opt){ "keep-yearly", 0, "N", "... of N years", &keep[5], NULL };
	*o++ = (kt_opt){ "no-volume-snapshots", 0, NULL, "do not snapshot the PVCs", NULL,
	                 &no_snap };
	*o++ = (kt_opt){ "volume-data", 0, "copy|snapshot-only", "copy each snapshot's data into "
	                 "the profile's repository with a mover Job, so another cluster can restore "
	                 "it (copy, the default), or keep only the CSI snapshots", &volume_data,
	                 NULL };
	*o++ = (kt_opt){ "mover-image", 0, "IMAGE", "image of the mover Jobs (default "
	                 KT_MOVER_IMAGE ")", &mover_image, NULL };
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path,
	                      "NAME --namespaces NS,NS|--namespace-selector L --profile P "
	                      "[--schedule S] [--keep-... N]",
	                      "Create a backup policy: restore points of some namespaces on a "
	                      "schedule, kept\n"
	                      "by tiered retention (hourly, daily, weekly, monthly, yearly counts, "
	                      "as K10\n"
	                      "does), in the repository of an export profile.  The policy is a "
	                      "Policy custom\n"
	                      "resource; 'kontinuity controller' runs it, 'kontinuity policy run' "
	                      "runs it now.\n\n"
	                      "Each run also exports the policy's own namespace (policies, "
	                      "profiles and their\nSecrets), so a new install can recover them.\n\n"
	                      "Examples:\n"
	                      "  kontinuity policy create pg-hourly --namespaces pg --profile "
	                      "offsite \\\n"
	                      "      --keep-hourly 24 --keep-daily 7 --keep-weekly 4\n"
	                      "  kontinuity policy create shop-daily --namespace-selector "
	                      "team=shop \\\n"
	                      "      --schedule @daily --keep-daily 14 --profile offsite\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the policy");
	if ((!namespaces && !ns_selector) || !profile)
		return kt_cli_usage(path, "--profile and --namespaces or --namespace-selector are "
		                    "required");
	json_t *ret = json_object();
	for (size_t i = 0; i < 6; i++) {
		char *end;
		if (!keep[i])
			continue;
		long v = strtol(keep[i], &end, 10);
		if (!*keep[i] || *end || v < 0 || v > 1000000) {
			json_decref(ret);
			return kt_cli_usage(path, "--keep-%s needs a number", tiers[i]);
		}
		json_object_set_new(ret, tiers[i], json_integer(v));
	}
	json_t *pol = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:o, s:s, s:s, s:b, s:o}}",
	                        "apiVersion", KT_PROFILE_GROUP "/" KT_PROFILE_VERSION, "kind",
	                        "Policy", "metadata", "name", pos[0], "namespace", ns, "labels",
	                        "app.kubernetes.io/managed-by", "kontinuity", "spec", "namespaces",
	                        namespaces ? split_list(namespaces) : json_array(), "profile",
	                        profile, "schedule", schedule,
	                        "volumeSnapshots", !no_snap, "retention", ret);
	if (selector)
		json_object_set_new(json_object_get(pol, "spec"), "selector", json_string(selector));
	if (ns_selector)
		json_object_set_new(json_object_get(pol, "spec"), "namespaceSelector",
		                    json_string(ns_selector));
	if (volume_data)
		json_object_set_new(json_object_get(pol, "spec"), "volumeData",
		                    json_string(volume_data));
	if (mover_image)
		json_object_set_new(json_object_get(pol, "spec"), "moverImage",
		                    json_string(mover_image));
	if (!namespaces)
		json_object_del(json_object_get(pol, "spec"), "namespaces");
	kt_error err;
	kt_policy check;
	if (kt_policy_from_object(&check, pol, &err)) {
		json_decref(pol);
		return kt_cli_usage(path, "%s", err.msg);
	}
	kt_policy_release(&check);
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c))) {
		json_decref(pol);
		return rc;
	}
	kt_kube_target t = policies;
	t.namespace = ns;
	kt_code code = kt_kube_create(c, &t, pol, NULL, &err);
	kt_kube_client_free(c);
	if (code) {
		json_decref(pol);
		return kt_cli_fail(&err);
	}
	if (g.output == KT_OUT_TABLE)
		printf("policy %s/%s created: %s into profile %s\n", ns, pos[0], schedule, profile);
	else
		kt_cli_print(pol, g.output, NULL, 0);
	json_decref(pol);
	return 0;
}

static kt_code on_policy_row(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	json_t *spec = json_object_get(obj, "spec");
	json_t *last = json_object_get(json_object_get(obj, "status"), "lastRun");
	json_t *row = json_pack("{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}",
	                        "namespace", json_object_get(json_object_get(obj, "metadata"),
	                                                     "namespace"),
	                        "name", json_object_get(json_object_get(obj, "metadata"), "name"),
	                        "schedule", json_object_get(spec, "schedule"), "profile",
	                        json_object_get(spec, "profile"), "namespaces",
	                        json_object_get(spec, "namespaces"), "namespaceSelector",
	                        json_object_get(spec, "namespaceSelector"), "lastRun",
	                        json_object_get(last, "time"), "result",
	                        json_object_get(last, "result"), "runs",
	                        json_object_get(json_object_get(obj, "status"), "runs"));
	json_array_append_new(ctx, row);
	return KT_OK;
}

int kt_cmd_policy_list(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "policy list";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	int all = 0;
	kt_opt opts[6], *o = kt_cli_kube_ns_opts(&kf, &ns, KT_PROFILE_NAMESPACE, opts,
	                                         KT_PROFILE_NS_HELP);
	*o++ = (kt_opt){ "all-namespaces", 'A', NULL, "every namespace", NULL, &all };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "[-n NS | -A]",
	                      "List backup policies with their last run.\n", NULL, 0, &n_pos, &g,
	                      &done);
	if (rc || done)
		return rc;
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_kube_target t = policies;
	t.namespace = all ? NULL : ns;
	json_t *rows = json_array();
	kt_error err;
	kt_code code = kt_kube_list(c, &t, NULL, on_policy_row, rows, NULL, &err);
	kt_kube_client_free(c);
	if (code) {
		json_decref(rows);
		return kt_cli_fail(&err);
	}
	static const kt_column cols[] = {
		{ "NAMESPACE", "namespace" }, { "NAME", "name" }, { "SCHEDULE", "schedule" },
		{ "PROFILE", "profile" }, { "NAMESPACES", "namespaces" },
		{ "NS-SELECTOR", "namespaceSelector" }, { "LAST-RUN", "lastRun" },
		{ "RESULT", "result" }, { "RUNS", "runs" },
	};
	kt_cli_print_list(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]), "policies",
	                  all ? NULL : ns);
	json_decref(rows);
	return 0;
}

int kt_cmd_policy_delete(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "policy delete";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	kt_opt opts[5], *o = kt_cli_kube_ns_opts(&kf, &ns, KT_PROFILE_NAMESPACE, opts,
	                                         KT_PROFILE_NS_HELP);
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "NAME [-n NS]",
	                      "Delete a backup policy.  Its restore points stay in the repository "
	                      "(repo forget\nremoves them).\n", pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the policy");
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_kube_target t = policies;
	t.namespace = ns;
	t.name = pos[0];
	kt_error err;
	kt_code code = kt_kube_delete(c, &t, NULL, &err);
	kt_kube_client_free(c);
	if (code)
		return kt_cli_fail(&err);
	printf("deleted policy %s/%s\n", ns, pos[0]);
	return 0;
}

/* Run policy p now: its profile's repository, the run, the status. */
static kt_code run_one(kt_kube *c, const kt_policy *p, kt_policy_run_result *r, kt_error *err)
{
	kt_store *s = NULL;
	kt_archive *a = NULL;
	char ca[64];
	memset(r, 0, sizeof(*r));
	if (kt_cli_profile_repo(c, p->namespace, p->profile, "policy run", &s, &a, ca))
		return kt_error_set(err, KT_EREMOTE, "policy '%s': its profile '%s' cannot be "
		                    "opened (see above)", p->name, p->profile);
	/* Volume data goes through mover Jobs with the profile's keys. */
	kt_profile prof;
	int have_prof = 0;
	kt_app_mover m = { .profile = &prof, .image = p->mover_image[0] ? p->mover_image : NULL };
	kt_code rc = KT_OK;
	if (p->volume_data) {
		rc = kt_profile_get(c, p->namespace, p->profile, &prof, err);
		have_prof = !rc;
	}
	if (!rc)
		rc = kt_policy_run(c, a, p, have_prof ? &m : NULL, r, err);
	if (have_prof)
		kt_profile_release(&prof);
	kt_archive_free(a);
	kt_store_free(s);
	if (ca[0])
		unlink(ca);
	if (rc)
		return rc;
	/* Record the run (best effort: the restore points exist either way). */
	json_t *patch = json_pack("{s:{s:{s:s, s:s, s:O, s:i, s:s}, s:i}}", "status", "lastRun",
	                          "time", r->time, "result", r->result, "restorePoints",
	                          r->restore_points, "removed", (int)r->removed, "message",
	                          r->message, "runs", (int)(p->runs + 1));
	char *body = json_dumps(patch, JSON_COMPACT);
	kt_kube_target t = policies;
	t.namespace = p->namespace;
	t.name = p->name;
	t.subresource = "status";
	kt_error e;
	if (kt_kube_patch(c, &t, KT_KUBE_PATCH_MERGE, body, strlen(body), NULL, NULL, &e))
		kt_log(KT_LOG_WARN, "policy %s: cannot record the run in its status: %s", p->name,
		       e.msg);
	free(body);
	json_decref(patch);
	/* And an Event on the policy, as controllers report what they did. */
	int ok = !strcmp(r->result, "ok");
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%.240s.", p->name);
	json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, "
	                       "s:s, s:s, s:s, s:i, s:{s:s}}",
	                       "apiVersion", "v1", "kind", "Event", "metadata", "generateName",
	                       prefix, "namespace", p->namespace, "involvedObject", "apiVersion",
	                       KT_PROFILE_GROUP "/" KT_PROFILE_VERSION, "kind", "Policy", "name",
	                       p->name, "namespace", p->namespace, "uid", p->uid, "reason",
	                       ok ? "BackupSucceeded" : !strcmp(r->result, "partial")
	                                                ? "BackupPartial" : "BackupFailed",
	                       "message", r->message, "type", ok ? "Normal" : "Warning",
	                       "firstTimestamp", r->time, "lastTimestamp", r->time, "count", 1,
	                       "source", "component", "kontinuity-controller");
	kt_kube_target et = { .version = "v1", .resource = "events", .namespace = p->namespace };
	if (kt_kube_create(c, &et, ev, NULL, &e))
		kt_log(KT_LOG_WARN, "policy %s: cannot record an Event: %s", p->name, e.msg);
	json_decref(ev);
	kt_log(KT_LOG_INFO, "policy %s/%s run: %s (%s)", p->namespace, p->name, r->result,
	       r->message);
	return KT_OK;
}

int kt_cmd_policy_run(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "policy run";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	const char *ns;
	kt_opt opts[5], *o = kt_cli_kube_ns_opts(&kf, &ns, KT_PROFILE_NAMESPACE, opts,
	                                         KT_PROFILE_NS_HELP);
	memset(o, 0, sizeof(*o));
	char *pos[1];
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "NAME [-n NS]",
	                      "Run a backup policy now: a restore point of each of its namespaces, "
	                      "then its\nretention.  The run is recorded in the policy's status.\n",
	                      pos, 1, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path, "name the policy");
	kt_cli_catch_signals();
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_kube_target t = policies;
	t.namespace = ns;
	t.name = pos[0];
	json_t *obj = NULL;
	kt_error err;
	kt_policy p;
	kt_policy_run_result r = { 0 };
	kt_code code = kt_kube_get_object(c, &t, &obj, &err);
	if (!code && !(code = kt_policy_from_object(&p, obj, &err))) {
		code = run_one(c, &p, &r, &err);
		kt_policy_release(&p);
	}
	json_decref(obj);
	kt_kube_client_free(c);
	if (code) {
		json_decref(r.restore_points);
		return kt_cli_fail(&err);
	}
	json_t *row = json_pack("{s:s, s:s, s:O, s:i, s:s}", "time", r.time, "result", r.result,
	                        "restorePoints", r.restore_points, "removed", (int)r.removed,
	                        "message", r.message);
	json_decref(r.restore_points);
	static const kt_column cols[] = {
		{ "TIME", "time" }, { "RESULT", "result" }, { "RESTORE-POINTS", "restorePoints" },
		{ "REMOVED", "removed" }, { "MESSAGE", "message" },
	};
	kt_cli_print(row, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	int failed = strcmp(json_string_value(json_object_get(row, "result")), "ok") != 0;
	json_decref(row);
	return failed ? 1 : 0;
}

/* ---- controller ------------------------------------------------------- */

static int64_t parse_iso(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !*s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

typedef struct ctl {
	kt_kube *c;
	int64_t now, soonest;   /* soonest: the next due time among all policies */
	unsigned ran, failed;
} ctl;

static kt_code on_policy_due(void *ctx, json_t *obj, kt_error *err)
{
	(void)err;
	ctl *k = ctx;
	kt_policy p;
	kt_error e;
	if (kt_policy_from_object(&p, obj, &e)) {
		kt_log(KT_LOG_WARN, "skipping a policy: %s", e.msg);
		return KT_OK;
	}
	int64_t base = parse_iso(p.last_run[0] ? p.last_run : p.created), next = 0;
	if (base < 0)
		base = k->now;
	if (!p.last_run[0] && kt_policy_next(&p, base - 1, &next, &e) == KT_OK)
		next = base;   /* never ran: due at once */
	else if (kt_policy_next(&p, base, &next, &e))
		next = INT64_MAX;
	if (next <= k->now) {
		kt_policy_run_result r;
		if (run_one(k->c, &p, &r, &e)) {
			kt_log(KT_LOG_ERROR, "policy %s/%s: %s", p.namespace, p.name, e.msg);
			k->failed++;
		}
		json_decref(r.restore_points);
		k->ran++;
		kt_policy_next(&p, k->now, &next, &e);
	}
	if (next < k->soonest)
		k->soonest = next;
	kt_policy_release(&p);
	return kt_cli_cancel ? kt_error_set(err, KT_ECANCELED, "stopping") : KT_OK;
}

int kt_cmd_controller(int argc, char **argv, const kt_globals *g0)
{
	const char *path = "controller";
	kt_globals g = *g0;
	kt_cli_kube_flags kf;
	memset(&kf, 0, sizeof(kf));
	const char *ns = NULL, *interval = "1m";
	int once = 0;
	kt_opt opts[7], *o = kt_cli_kube_opts(&kf, opts, NULL);
	*o++ = (kt_opt){ "namespace", 'n', "NS", "only the policies of this namespace (default: "
	                 "every namespace)", &ns, NULL };
	*o++ = (kt_opt){ "interval", 0, "DURATION", "look for new and changed policies at least "
	                 "this often (default 1m)", &interval, NULL };
	*o++ = (kt_opt){ "once", 0, NULL, "run what is due now, then exit", NULL, &once };
	memset(o, 0, sizeof(*o));
	int n_pos = 0, done = 0;
	int rc = kt_cli_parse(argc, argv, opts, path, "[-n NS] [--once]",
	                      "Run backup policies when their schedule says: each run makes a "
	                      "restore point of\n"
	                      "every namespace of the policy in its profile's repository, applies "
	                      "its retention\n"
	                      "and records the result in the policy's status.  A policy that never "
	                      "ran runs at\nonce.  Stops cleanly on SIGTERM.\n",
	                      NULL, 0, &n_pos, &g, &done);
	if (rc || done)
		return rc;
	int64_t interval_ms;
	kt_error err;
	if (kt_parse_duration_ms(interval, &interval_ms, &err) || interval_ms < 1000)
		return kt_cli_usage(path, "--interval needs a duration of 1s or more");
	kt_cli_catch_signals_agent();
	if (!kt_log_enabled(KT_LOG_INFO))   /* a daemon: its runs are its output */
		kt_log_setup(stderr, g.log_format, KT_LOG_INFO);
	kt_kube *c = NULL;
	if ((rc = kt_cli_kube_connect(&kf, &c)))
		return rc;
	kt_log(KT_LOG_INFO, "controller started (%s policies)", ns ? ns : "all");
	unsigned failed = 0;
	while (!kt_cli_cancel) {
		ctl k = { .c = c, .now = (int64_t)time(NULL), .soonest = INT64_MAX };
		kt_kube_target t = policies;
		t.namespace = ns;
		kt_code code = kt_kube_list(c, &t, NULL, on_policy_due, &k, NULL, &err);
		if (code && code != KT_ECANCELED)
			kt_log(KT_LOG_ERROR, "cannot list policies: %s", err.msg);
		failed += k.failed;
		if (once)
			break;
		int64_t wait_ms = interval_ms;
		if (k.soonest != INT64_MAX) {
			int64_t until = (k.soonest - (int64_t)time(NULL)) * 1000;
			if (until < wait_ms)
				wait_ms = until < 200 ? 200 : until;
		}
		for (int64_t slept = 0; slept < wait_ms && !kt_cli_cancel; slept += 100) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	kt_log(KT_LOG_INFO, "controller stopped");
	kt_kube_client_free(c);
	return failed ? 1 : 0;
}
