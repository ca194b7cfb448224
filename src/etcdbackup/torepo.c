/*
 * torepo.c - the cycle's repository stage: with --repo, every new local
 * backup also goes into the deduplicating, encrypted repository
 * (src/archive/), as a snapshot tagged "etcd" with the node as host, so
 * many backups of one cluster cost little more than one.  The local files
 * stay as they are.  A failure is logged and reported, never fatal to the
 * cycle: the file is still saved locally and exported.
 */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "etcdbackup.h"
#include "etcdbackup_int.h"

void kt_backup_to_repo(const kt_backup_config *cfg, kt_backup_result *res, const char *iso)
{
	kt_repo_result *rr = &res->repo;
	memset(rr, 0, sizeof(*rr));
	if (!cfg->repo_url || !*cfg->repo_url || !res->file[0])
		return;
	rr->attempted = 1;
	int64_t start = kt_now_ms();
	kt_error err;
	kt_error_clear(&err);
	kt_store_opts so = { .endpoint = cfg->repo_s3.endpoint, .region = cfg->repo_s3.region,
	                     .access_key = cfg->repo_s3.access_key,
	                     .secret_key = cfg->repo_s3.secret_key, .cacert = cfg->repo_s3.cacert,
	                     .cancel = cfg->etcd.cancel };
	kt_store *s = NULL;
	kt_archive *a = NULL;
	kt_code c = KT_OK;
	if (!cfg->repo_password || !*cfg->repo_password)
		c = kt_error_set(&err, KT_EUSAGE, "no repository passphrase (--repo-password-file or "
		                 "KONTINUITY_PASSWORD)");
	if (!c && !(c = kt_store_open(cfg->repo_url, &so, &s, &err)))
		s = kt_store_retry_wrap(s, 5, 200);
	if (!c)
		c = kt_archive_open(s, cfg->repo_password, strlen(cfg->repo_password), &a, &err);
	if (!c)
		c = kt_archive_lock(a, 0, &err);
	kt_archive_backup_result br;
	if (!c) {
		const char *paths[] = { res->file };
		const char *tags[] = { "etcd", NULL };
		kt_archive_backup_opts bo = { .hostname = res->node, .tags = tags,
		                              .cancel = cfg->etcd.cancel };
		c = kt_archive_backup(a, paths, 1, &bo, &br, &err);
	}
	kt_archive_free(a);
	kt_store_free(s);
	rr->code = c;
	rr->duration_ms = kt_now_ms() - start;
	const char *base = strrchr(res->file, '/');
	base = base ? base + 1 : res->file;
	char text[5000];
	json_t *f;
	if (c) {
		kt_buf clean;
		kt_buf_init(&clean, sizeof(rr->error) - 1);
		kt_redact(&clean, err.msg);
		snprintf(rr->error, sizeof(rr->error), "%s", clean.data);
		kt_buf_release(&clean);
		snprintf(text, sizeof(text), "repo node=%s file=%s outcome=failed error=%s", res->node,
		         base, rr->error);
		f = json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "repo", "node", res->node, "file",
		              base, "outcome", "failed", "error", rr->error);
		kt_log(KT_LOG_ERROR, "repository stage failed (the backup is saved locally): %s",
		       rr->error);
	} else {
		snprintf(rr->snapshot, sizeof(rr->snapshot), "%s", br.snapshot_id);
		rr->added = br.bytes_new;
		snprintf(text, sizeof(text), "repo node=%s file=%s snapshot=%.8s added=%llu "
		         "duration=%.2fs outcome=ok", res->node, base, br.snapshot_id,
		         (unsigned long long)br.bytes_new, (double)rr->duration_ms / 1000.0);
		f = json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:s}", "event", "repo", "node",
		              res->node, "file", base, "snapshot", br.snapshot_id, "added",
		              (json_int_t)br.bytes_new, "duration",
		              (double)rr->duration_ms / 1000.0, "outcome", "ok");
		kt_log(KT_LOG_INFO, "%s", text);
	}
	kt_backup_log_append(cfg, iso, f, text);
	json_decref(f);
}
