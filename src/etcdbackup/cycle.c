/*
 * cycle.c - one backup cycle of a control-plane node.
 *
 * lock dir -> identity -> name -> kt_etcdbackup_save -> log line -> index
 * -> retention (only after a successful save: a failing etcd never shrinks
 * the set of backups).  Invariants:
 *   1. One cycle at a time per directory (flock on .kontinuity.lock); a
 *      second agent sharing the directory is refused, not interleaved.
 *   2. Retention touches only complete backup files of this node, keeps at
 *      least the newest one (which this cycle just verified), never a .part.
 *   3. Every attempt, good or bad, appends exactly one line to the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"

static void utc_now(char iso[32], char compact[20])
{
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(iso, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(compact, 20, "%Y%m%dT%H%M%SZ", &tm);
}

static kt_code lock_dir(const char *dir, int *fd_out, kt_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, KT_BACKUP_LOCK);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e,
		                    "cannot use backup directory '%s' (lock file)", dir);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return kt_error_set(err, KT_EEXIST, "another kontinuity backup is running in '%s' "
		                    "(it holds %s); one agent per directory", dir, path);
	}
	*fd_out = fd;
	return KT_OK;
}

/* Append one line to <dir>/etcd-backup.log (JSON or "<time> <summary>");
 * summary receives the text form, for stderr. */
static void log_line(const kt_backup_config *cfg, const kt_backup_result *res, const char *iso,
                     const char *name, kt_code outcome, const kt_error *err, kt_buf *summary)
{
	kt_buf_reset(summary);
	double secs = (double)res->save.duration_ms / 1000.0;
	kt_buf clean;
	kt_buf_init(&clean, 1 << 16);
	if (outcome)
		kt_redact(&clean, err->msg);
	kt_buf_addf(summary, NULL, "backup node=%s instance=%s file=%s size=%llu revision=%lld "
	            "sha256=%s duration=%.2fs outcome=%s", res->node, res->instance_id,
	            name ? name : "-", (unsigned long long)res->save.size,
	            (long long)res->save.revision, res->save.sha256[0] ? res->save.sha256 : "-",
	            secs, outcome ? "failed" : "ok");
	if (outcome)
		kt_buf_addf(summary, NULL, " error=\"%s\"", clean.data);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:f, s:s}",
	                      "time", iso, "event", "backup", "node", res->node,
	                      "instance", res->instance_id, "file", name ? name : "",
	                      "size", (json_int_t)res->save.size,
	                      "revision", (json_int_t)res->save.revision,
	                      "sha256", res->save.sha256, "duration", secs,
	                      "outcome", outcome ? "failed" : "ok");
	if (o && outcome)
		json_object_set_new(o, "error", json_string(clean.data));
	kt_buf_release(&clean);
	kt_backup_log_append(cfg, iso, o, summary->data);
	json_decref(o);
}

void kt_backup_log_append(const kt_backup_config *cfg, const char *iso, json_t *fields,
                          const char *text)
{
	kt_buf line;
	kt_buf_init(&line, 1 << 16);
	char *s = cfg->log_format == KT_LOG_JSON && fields
	              ? json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (s)
		kt_buf_adds(&line, s, NULL);
	else
		kt_buf_addf(&line, NULL, "%s %s", iso, text);
	free(s);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", cfg->dir, KT_BACKUP_LOG);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		kt_buf_adds(&line, "\n", NULL);
		if (write(fd, line.data, line.len) != (ssize_t)line.len)
			kt_log(KT_LOG_WARN, "cannot append to '%s': %s", path, strerror(errno));
		close(fd);
	} else {
		kt_log(KT_LOG_WARN, "cannot open '%s': %s", path, strerror(errno));
	}
	kt_buf_release(&line);
}

/* Drop this node's oldest backups until `keep` remain.  Never the file this
 * cycle just saved (whatever the clock says about names), and, while an
 * export target is configured, not a file that has not been exported yet
 * unless the node holds more than twice `keep` (so an outage cannot fill
 * the disk).  Returns how many were removed. */
static unsigned retention(const kt_backup_config *cfg, const char *node, json_t *backups,
                          const char *just_saved, int hold_unexported)
{
	kt_backup_entry *v = NULL;
	size_t n = 0;
	kt_error err;
	if (kt_etcdbackup_list(cfg->dir, &v, &n, &err)) {
		kt_log(KT_LOG_WARN, "retention skipped: %s", err.msg);
		return 0;
	}
	size_t mine = 0;
	for (size_t i = 0; i < n; i++)
		mine += !strcmp(v[i].node, node);
	unsigned keep = cfg->keep ? cfg->keep : 1, deleted = 0;
	/* v is oldest first. */
	for (size_t i = 0; i < n && mine > keep; i++) {
		if (strcmp(v[i].node, node) || (just_saved && !strcmp(v[i].file, just_saved)))
			continue;
		json_t *rec = json_object_get(backups, v[i].file);
		int exported = rec && json_is_true(json_object_get(rec, "exported"));
		if (hold_unexported && !exported && mine <= 2 * (size_t)keep)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", cfg->dir, v[i].file);
		if (unlink(path) == 0) {
			json_object_del(backups, v[i].file);
			deleted++;
			kt_log(KT_LOG_INFO, "retention: removed '%s' (keeping the newest %u)", path, keep);
		} else {
			kt_log(KT_LOG_WARN, "retention: cannot remove '%s': %s", path, strerror(errno));
		}
		mine--;
	}
	kt_backup_entries_free(v, n);
	return deleted;
}

/* Every drill_every-th successful backup gets a restore drill; the count
 * lives in the index so one-shot runs from cron count too. */
static void drill_if_due(const kt_backup_config *cfg, kt_backup_result *res, json_t *idx,
                         const char *iso)
{
	json_t *m = json_object_get(idx, "metrics");
	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(idx, "metrics", m);
	}
	json_int_t since = json_integer_value(json_object_get(m, "sinceDrill")) + 1;
	if ((unsigned)since < cfg->drill_every) {
		json_object_set_new(m, "sinceDrill", json_integer(since));
		return;
	}
	json_object_set_new(m, "sinceDrill", json_integer(0));
	kt_restore_source src;
	kt_drill_result dr;
	kt_error derr;
	kt_code c = kt_etcdbackup_resolve_source(cfg, res->file, 0, &src, &derr);
	if (!c)
		c = kt_etcdbackup_drill(cfg->drill, &src, &dr, &derr);
	if (c == KT_ECANCELED) {   /* not a verdict: try again at the next cycle */
		json_object_set_new(m, "sinceDrill", json_integer(since - 1));
		return;
	}
	res->drilled = 1;
	res->drill_error = c != KT_OK;
	res->drill_pass = !c && dr.pass;
	res->drill_ms = c ? 0 : dr.duration_ms;
	if (c) {
		snprintf(res->drill_summary, sizeof(res->drill_summary), "could not run: %.480s", derr.msg);
	} else if (!dr.pass) {
		for (size_t i = 0; i < dr.n_checks; i++)
			if (!dr.checks[i].ok) {
				snprintf(res->drill_summary, sizeof(res->drill_summary), "%s: %s",
				         dr.checks[i].name, dr.checks[i].detail);
				break;
			}
	} else {
		snprintf(res->drill_summary, sizeof(res->drill_summary), "revision %lld, %llu keys, "
		         "%u resources and %u sampled objects match", (long long)dr.revision_got,
		         (unsigned long long)dr.keys_got, dr.n_resources, dr.n_sampled);
	}
	const char *base = strrchr(res->file, '/');
	base = base ? base + 1 : res->file;
	char text[6000];
	const char *verdict = res->drill_pass ? "PASS" : res->drill_error ? "ERROR" : "FAIL";
	snprintf(text, sizeof(text), "drill node=%s file=%s result=%s duration=%.2fs %s", res->node,
	         base, verdict, (double)res->drill_ms / 1000.0, res->drill_summary);
	json_t *fields = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s}", "event", "drill",
	                           "node", res->node, "file", base,
	                           "result", verdict,
	                           "duration", (double)res->drill_ms / 1000.0,
	                           "detail", res->drill_summary);
	kt_backup_log_append(cfg, iso, fields, text);
	json_decref(fields);
	kt_log(res->drill_pass ? KT_LOG_INFO : KT_LOG_ERROR, "%s", text);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_object_set_new(m, "drills", json_integer(json_integer_value(json_object_get(m,
	                    "drills")) + 1));
	if (!res->drill_pass)
		json_object_set_new(m, "drillFailures", json_integer(json_integer_value(
		                    json_object_get(m, "drillFailures")) + 1));
	json_object_set_new(m, "lastDrill", json_integer(now.tv_sec));
	json_object_set_new(m, "lastDrillPass", json_integer(res->drill_pass));
	json_object_set_new(m, "lastDrillDurationMs", json_integer(res->drill_ms));
	if (res->drill_pass)
		json_object_set_new(m, "lastDrillSuccess", json_integer(now.tv_sec));
}

kt_code kt_etcdbackup_cycle(const kt_backup_config *cfg, kt_backup_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	struct stat st;
	if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			return kt_error_sys(err, kt_code_from_errno(e), e,
			                    "cannot create backup directory '%s'", cfg->dir);
		}
	}
	int lock_fd = -1;
	kt_code c = lock_dir(cfg->dir, &lock_fd, err);
	if (c)
		return c;

	if (cfg->hostname && *cfg->hostname)
		snprintf(res->node, sizeof(res->node), "%s", cfg->hostname);
	else if (gethostname(res->node, sizeof(res->node) - 1) != 0)
		snprintf(res->node, sizeof(res->node), "unknown");
	for (char *p = res->node; *p; p++)   /* keep the name a plain file name */
		if (*p == '/' || *p < 0x21 || *p > 0x7e)
			*p = '-';
	c = kt_etcdbackup_instance_id(cfg->instance_id, cfg->imds_url, cfg->machine_id_path,
	                              res->instance_id, &res->instance_source, err);
	char iso[32], compact[20], name[512];
	utc_now(iso, compact);
	snprintf(name, sizeof(name), "etcd_backup_%s_%s_%s.db", res->node,
	         c ? "unknown" : res->instance_id, compact);
	kt_buf line;
	kt_buf_init(&line, 1 << 16);
	if (c == KT_OK) {
		if ((size_t)snprintf(res->file, sizeof(res->file), "%s/%s", cfg->dir, name) >=
		    sizeof(res->file))
			c = kt_error_set(err, KT_EUSAGE, "backup directory path '%s' is too long", cfg->dir);
	}
	if (c == KT_OK) {
		int64_t start = kt_now_ms();
		c = kt_etcdbackup_save(&cfg->etcd, res->file, NULL, NULL, &res->save, err);
		if (c) {
			res->save.duration_ms = kt_now_ms() - start;
			res->file[0] = '\0';
		}
	}
	log_line(cfg, res, iso, c ? NULL : name, c, err, &line);
	kt_log(c ? KT_LOG_ERROR : KT_LOG_INFO, "%s", line.data);
	kt_buf_release(&line);
	json_t *idx = kt_backup_index_load(cfg->dir);
	json_t *backups = json_object_get(idx, "backups");
	json_int_t last_rev = json_integer_value(json_object_get(json_object_get(idx, "metrics"),
	                                                          "lastRevision"));
	if (c == KT_OK && res->save.revision < last_rev) {
		kt_log(KT_LOG_WARN, "etcd's revision went backwards (%lld, the previous backup had "
		       "%lld): etcd was re-created or restored without a revision bump; `--from "
		       "latest` will not choose this backup on its own", (long long)res->save.revision,
		       (long long)last_rev);
		json_t *f = json_pack("{s:s, s:s, s:I, s:I}", "event", "warning", "node", res->node,
		                      "revision", (json_int_t)res->save.revision, "previousRevision",
		                      (json_int_t)last_rev);
		char text[512];
		snprintf(text, sizeof(text), "warning node=%s revision=%lld previous=%lld etcd's "
		         "revision went backwards: etcd was re-created or restored without a bump",
		         res->node, (long long)res->save.revision, (long long)last_rev);
		kt_backup_log_append(cfg, iso, f, text);
		json_decref(f);
	}
	if (c == KT_OK) {
		json_object_set_new(backups, name,
		                    json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:b, s:b}",
		                              "time", iso, "node", res->node,
		                              "instance", res->instance_id,
		                              "size", (json_int_t)res->save.size,
		                              "revision", (json_int_t)res->save.revision,
		                              "sha256", res->save.sha256,
		                              "version", res->save.version, "verified", 1,
		                              "exported", 0));
	}
	if (c == KT_OK)
		kt_backup_to_repo(cfg, res, iso);
	/* Export even when this save failed: the backlog still goes out. */
	kt_error xerr;
	kt_error_clear(&xerr);
	res->export.code = kt_etcdbackup_export(cfg, res->node, idx, &res->export, &xerr);
	/* Retention after export (the order the design gives): what just went
	 * out may go; what could not go out is held back while a target exists. */
	if (c == KT_OK)
		res->n_deleted = retention(cfg, res->node, backups, name, res->export.configured);
	if (res->export.code) {
		kt_buf clean;
		kt_buf_init(&clean, sizeof(res->export.error) - 1);
		kt_redact(&clean, xerr.msg);
		snprintf(res->export.error, sizeof(res->export.error), "%s", clean.data);
		kt_buf_release(&clean);
		kt_log(KT_LOG_ERROR, "export failed (the backups stay local and go out at the next "
		       "cycle): %s", res->export.error);
	}
	if (c == KT_OK && cfg->drill_every && cfg->drill)
		drill_if_due(cfg, res, idx, iso);
	kt_backup_metrics_record(idx, res, c);
	kt_error ierr;
	if (kt_backup_index_save(cfg->dir, idx, &ierr))
		kt_log(KT_LOG_WARN, "%s (the backup itself is saved)", ierr.msg);
	json_decref(idx);
	if (cfg->metrics_file && *cfg->metrics_file &&
	    kt_etcdbackup_metrics_file(cfg->dir, res->node, cfg->metrics_file, &ierr))
		kt_log(KT_LOG_WARN, "%s", ierr.msg);
	close(lock_fd);
	return c;
}
