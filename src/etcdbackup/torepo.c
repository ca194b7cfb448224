/*
 * torepo.c - the cycle's repository stage: with --repo, every new local
 * backup also goes into the deduplicating, encrypted repository
 * (src/archive/), as a snapshot tagged "etcd" with the node as host, so
 * many backups of one cluster cost little more than one.  The local files
 * stay as they are.  A failure is logged and reported, never fatal to the
 * cycle: the file is still saved locally and exported.
 *
 * Unless cfg->repo_no_delta, the backup is stored as a delta
 * (docs/repository-format.md, "Delta-encoded files") against the newest
 * snapshot tagged etcd of the same node, with the node's previous local
 * backup offered as the base's bytes (used only if its SHA-256 matches).
 */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "etcdbackup.h"
#include "etcdbackup_int.h"

/* The newest snapshot tagged etcd of node into id ("" when none). */
static void newest_etcd_snapshot(kt_archive *a, const char *node, char id[65])
{
	id[0] = '\0';
	kt_archive_snap *v;
	size_t n;
	kt_error err;
	if (kt_archive_snapshots(a, &v, &n, &err)) {
		kt_log(KT_LOG_WARN, "cannot list the repository's snapshots for a delta base: %s",
		       err.msg);
		return;
	}
	for (size_t i = n; i-- > 0 && !id[0];) {
		if (strcmp(v[i].hostname, node))
			continue;
		for (size_t j = 0; j < v[i].n_tags; j++)
			if (!strcmp(v[i].tags[j], "etcd")) {
				memcpy(id, v[i].id, 65);
				break;
			}
	}
	kt_archive_snaps_free(v, n);
}

/* The node's newest local backup other than the new one, into path ("" when
 * none): likely the bytes of the delta base. */
static void previous_local(const kt_backup_config *cfg, const char *node, const char *file,
                           char *path, size_t cap)
{
	path[0] = '\0';
	kt_backup_entry *e;
	size_t n;
	kt_error err;
	if (!cfg->dir || kt_etcdbackup_list(cfg->dir, &e, &n, &err))
		return;
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	for (size_t i = n; i-- > 0 && !path[0];)
		if (e[i].node && !strcmp(e[i].node, node) && strcmp(e[i].file, base))
			snprintf(path, cap, "%s/%s", cfg->dir, e[i].file);
	kt_backup_entries_free(e, n);
}

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
		char parent[65] = "", prev[4096] = "";
		if (!cfg->repo_no_delta) {
			newest_etcd_snapshot(a, res->node, parent);
			if (parent[0])
				previous_local(cfg, res->node, res->file, prev, sizeof(prev));
		}
		/* force: each backup is a new file, so a parent (looked up by
		 * paths) never applies; the delta parent is what matters. */
		kt_archive_backup_opts bo = { .hostname = res->node, .tags = tags, .force = 1,
		                              .cancel = cfg->etcd.cancel,
		                              .delta_parent = parent[0] ? parent : NULL,
		                              .delta_base_path = prev[0] ? prev : NULL };
		c = kt_archive_backup(a, paths, 1, &bo, &br, &err);
		if (!c)
			rr->delta_depth = br.delta_depth;
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
		         "delta_depth=%u duration=%.2fs outcome=ok", res->node, base, br.snapshot_id,
		         (unsigned long long)br.bytes_new, br.delta_depth,
		         (double)rr->duration_ms / 1000.0);
		f = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:s}", "event", "repo", "node",
		              res->node, "file", base, "snapshot", br.snapshot_id, "added",
		              (json_int_t)br.bytes_new, "delta_depth", (json_int_t)br.delta_depth,
		              "duration",
		              (double)rr->duration_ms / 1000.0, "outcome", "ok");
		kt_log(KT_LOG_INFO, "%s", text);
	}
	kt_backup_log_append(cfg, iso, f, text);
	json_decref(f);
}
