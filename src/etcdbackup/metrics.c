/*
 * metrics.c - Prometheus text for the backup agent.
 *
 * The numbers live in the index (etcd-backups.json, key "metrics") so they
 * survive restarts and one-shot `etcd backup` runs from cron count too.
 * kt_etcdbackup_metrics_text renders them in the Prometheus text format
 * (version 0.0.4); the cycle writes them to --metrics-file for node
 * exporter's textfile collector (temp file + rename: the collector never
 * reads half a file), and the agent serves the same text on --metrics-addr.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"

static json_t *metrics_obj(json_t *idx)
{
	json_t *m = json_object_get(idx, "metrics");
	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(idx, "metrics", m);
	}
	return m;
}

static void bump(json_t *m, const char *key, int64_t by)
{
	json_object_set_new(m, key, json_integer(json_integer_value(json_object_get(m, key)) + by));
}

void kt_backup_metrics_record(json_t *idx, const kt_backup_result *res, kt_code save_code)
{
	json_t *m = metrics_obj(idx);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	bump(m, "cycles", 1);
	if (save_code) {
		bump(m, "failuresSave", 1);
	} else {
		json_object_set_new(m, "lastSuccess", json_integer(now.tv_sec));
		json_object_set_new(m, "lastDurationMs", json_integer(res->save.duration_ms));
		json_object_set_new(m, "lastSize", json_integer((json_int_t)res->save.size));
		json_object_set_new(m, "lastRevision", json_integer(res->save.revision));
	}
	if (res->export.code)
		bump(m, "failuresExport", 1);
	bump(m, "exported", res->export.n_exported);
	if (res->export.configured && !res->export.code)
		json_object_set_new(m, "lastExport", json_integer(now.tv_sec));
}

static void metric(kt_buf *out, const char *name, const char *type, const char *help,
                   const char *labels, double value)
{
	kt_buf_addf(out, NULL, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help, name, type,
	            name, labels, value);
}

void kt_etcdbackup_metrics_text(const char *dir, const char *node, kt_buf *out)
{
	json_t *idx = kt_backup_index_load(dir);
	json_t *m = metrics_obj(idx);
	char labels[512];
	snprintf(labels, sizeof(labels), "node=\"%s\"", node);
	for (char *p = labels; *p; p++)
		if (*p == '\\' || *p == '\n' || (*p == '"' && p > labels + 5 && p[1]))
			*p = '_';
#define V(k) ((double)json_integer_value(json_object_get(m, k)))
	metric(out, "kontinuity_etcd_backup_last_success_timestamp_seconds", "gauge",
	       "Unix time of the last successful local backup.", labels, V("lastSuccess"));
	metric(out, "kontinuity_etcd_backup_last_duration_seconds", "gauge",
	       "Duration of the last successful save.", labels, V("lastDurationMs") / 1000.0);
	metric(out, "kontinuity_etcd_backup_last_size_bytes", "gauge",
	       "Size of the last successful backup file.", labels, V("lastSize"));
	metric(out, "kontinuity_etcd_backup_last_revision", "gauge",
	       "etcd revision in the last successful backup.", labels, V("lastRevision"));
	metric(out, "kontinuity_etcd_backup_last_export_timestamp_seconds", "gauge",
	       "Unix time of the last export stage that succeeded.", labels, V("lastExport"));
	metric(out, "kontinuity_etcd_backup_cycles_total", "counter",
	       "Backup cycles run.", labels, V("cycles"));
	metric(out, "kontinuity_etcd_backup_exported_total", "counter",
	       "Backups uploaded and confirmed.", labels, V("exported"));
	metric(out, "kontinuity_etcd_drill_last_timestamp_seconds", "gauge",
	       "Unix time of the last restore drill.", labels, V("lastDrill"));
	metric(out, "kontinuity_etcd_drill_last_success_timestamp_seconds", "gauge",
	       "Unix time of the last restore drill that passed.", labels, V("lastDrillSuccess"));
	metric(out, "kontinuity_etcd_drill_last_result", "gauge",
	       "1 when the last restore drill passed, 0 when it failed or none ran.", labels,
	       V("lastDrillPass"));
	metric(out, "kontinuity_etcd_drill_last_duration_seconds", "gauge",
	       "Duration of the last restore drill.", labels, V("lastDrillDurationMs") / 1000.0);
	metric(out, "kontinuity_etcd_drills_total", "counter", "Restore drills run.", labels,
	       V("drills"));
	metric(out, "kontinuity_etcd_drill_failures_total", "counter",
	       "Restore drills that failed or could not run.", labels, V("drillFailures"));
	kt_buf_addf(out, NULL, "# HELP kontinuity_etcd_backup_failures_total Failed cycles by "
	            "stage.\n# TYPE kontinuity_etcd_backup_failures_total counter\n"
	            "kontinuity_etcd_backup_failures_total{%s,stage=\"save\"} %.17g\n"
	            "kontinuity_etcd_backup_failures_total{%s,stage=\"export\"} %.17g\n",
	            labels, V("failuresSave"), labels, V("failuresExport"));
#undef V
	json_decref(idx);
}

kt_code kt_etcdbackup_metrics_file(const char *dir, const char *node, const char *path,
                                   kt_error *err)
{
	kt_buf text;
	kt_buf_init(&text, 1 << 20);
	kt_etcdbackup_metrics_text(dir, node, &text);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	kt_code c = KT_OK;
	FILE *f = fopen(tmp, "w");
	if (!f || fwrite(text.data, 1, text.len, f) != text.len || fclose(f) != 0) {
		int e = errno;
		c = kt_error_sys(err, kt_code_from_errno(e), e, "cannot write metrics file '%s'", tmp);
		unlink(tmp);
	} else if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		c = kt_error_sys(err, kt_code_from_errno(e), e, "cannot replace metrics file '%s'", path);
		unlink(tmp);
	}
	kt_buf_release(&text);
	return c;
}
