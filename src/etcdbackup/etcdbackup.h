/*
 * etcdbackup.h - the control-plane backup engine.
 *
 * Owns: saving a snapshot safely (stream -> .part -> fsync -> check ->
 * rename), one backup cycle of a control-plane node (name, save, log line,
 * index, local retention), the node's identity (hostname, cloud instance id),
 * the index of what the backup directory holds, and the way back: choosing
 * and checking a restore source, restoring a data directory with etcdutl,
 * the recovery runbook of a static-pod node, and restore drills.
 *
 * Files in the backup directory (docs/etcd-backup.md):
 *   etcd_backup_<hostname>_<instance-id>_<YYYYMMDDTHHMMSSZ>.db   mode 0600
 *   etcd-backup.log        one line per local backup (and later per export)
 *   etcd-backups.json      the index: revision, sha256, verified, exported
 *   .kontinuity.lock       flock'ed by the cycle that runs
 */
#ifndef KT_ETCDBACKUP_H
#define KT_ETCDBACKUP_H

#include "../core/core.h"
#include "../etcd/etcd.h"
#include <signal.h>

/* ---------------- one safe snapshot save ---------------- */

/* Called as bytes arrive (for a progress display); may be NULL. */
typedef void (*kt_save_progress_fn)(void *ctx, uint64_t done, uint64_t remaining);

typedef struct kt_save_result {
	uint64_t size;          /* bytes in the file, trailer included */
	int64_t revision;       /* from the bbolt walk of the saved file */
	char sha256[65];        /* of the whole file, as sha256sum prints it */
	char version[32];       /* storage version ("3.6.0"), "" before 3.6 */
	int64_t duration_ms;
} kt_save_result;

/*
 * Stream a snapshot from conn into path: path.part (0600, flock'ed), trailer
 * checked while streaming, fsync, every page checked, cancel polled, rename
 * without replacing.  Any failure leaves neither path nor path.part, and an
 * existing path is never touched (KT_EEXIST).  res is filled on success.
 */
kt_code kt_etcdbackup_save(const kt_etcd_conn *conn, const char *path,
                           kt_save_progress_fn progress, void *progress_ctx,
                           kt_save_result *res, kt_error *err);

/* ---------------- node identity ---------------- */

#define KT_INSTANCE_ID_MAX 64

/*
 * The node's cloud instance id: explicit (if not NULL/empty), else the
 * EC2-compatible metadata service at imds_url (IMDSv2 token first, then v1;
 * 1 s timeout each), else the first 12 characters of machine_id_path.  Only
 * [A-Za-z0-9-] is accepted.  *source_out says which ("flag", "imds-v2",
 * "imds-v1", "machine-id").
 */
kt_code kt_etcdbackup_instance_id(const char *explicit_id, const char *imds_url,
                                  const char *machine_id_path, char out[KT_INSTANCE_ID_MAX + 1],
                                  const char **source_out, kt_error *err);

/* ---------------- the cycle ---------------- */

typedef struct kt_backup_config {
	kt_etcd_conn etcd;
	const char *dir;             /* backup directory */
	const char *hostname;        /* NULL: gethostname() */
	const char *instance_id;     /* NULL: metadata service, then machine id */
	const char *imds_url;        /* metadata service base URL */
	const char *machine_id_path; /* usually /etc/machine-id */
	unsigned keep;               /* newest local files of this node to keep (>= 1) */
	kt_log_format log_format;    /* of the lines in etcd-backup.log */
	/* Export (see export.c for where the target comes from). */
	const char *kubeconfig;      /* the node's kubeconfig; NULL/"" = no API server */
	const char *kube_context;    /* its context; NULL = current-context */
	const char *export_config;   /* YAML file of backup_* keys, or NULL */
	const char *secret_namespace;/* "kube-system" */
	const char *secret_name;     /* "zadara-backup-export" */
	const char *cluster_name;    /* bucket folder <cluster-id>-<cluster-name> */
	const char *cluster_id;      /* NULL: the kube-system namespace UID */
	unsigned keep_remote;        /* objects of this node to keep (>= 1) */
	const char *metrics_file;    /* node-exporter textfile to rewrite each cycle, or NULL */
	const char *repo_url;        /* also keep each backup in this repository, or NULL */
	const char *repo_password;   /* its passphrase (never logged) */
	struct {
		const char *endpoint, *region, *access_key, *secret_key, *cacert;
	} repo_s3;                   /* for an s3:// repository */
	int repo_no_delta;           /* store every backup as pages, never as a delta */
	unsigned drill_every;        /* drill every Nth successful backup; 0 = never */
	const struct kt_drill_opts *drill;  /* how (etcd, etcdutl paths); needed with drill_every */
} kt_backup_config;

typedef struct kt_export_result {
	int configured;              /* a target was found this cycle */
	char target[640];            /* "s3://bucket/<cluster-id>-<name>/" */
	unsigned n_exported;         /* objects uploaded and confirmed */
	unsigned n_failed;
	unsigned n_remote_deleted;
	kt_code code;                /* KT_OK, or why the export stage failed */
	char error[KT_ERROR_MSG_MAX];
} kt_export_result;

/* The repository stage (torepo.c). */
typedef struct kt_repo_result {
	int attempted;               /* --repo was given and there was a new backup */
	kt_code code;
	char snapshot[65];
	uint64_t added;              /* bytes the repository did not hold yet */
	uint32_t delta_depth;        /* > 0: stored as a delta, chain this deep */
	int64_t duration_ms;
	char error[KT_ERROR_MSG_MAX];
} kt_repo_result;

typedef struct kt_backup_result {
	char file[4096];             /* full path of the new backup ("" if none) */
	char node[256];
	char instance_id[KT_INSTANCE_ID_MAX + 1];
	const char *instance_source;
	kt_save_result save;
	unsigned n_deleted;          /* removed by retention */
	kt_export_result export;     /* the export stage (runs even when the save failed) */
	kt_repo_result repo;         /* the repository stage (with --repo) */
	int drilled;                 /* a restore drill ran on the new backup this cycle */
	int drill_pass;
	int drill_error;             /* it could not run (no etcd binary, no room): not a FAIL */
	int64_t drill_ms;
	char drill_summary[512];     /* the failed check, or "revision R, K keys, N objects" */
} kt_backup_result;

/*
 * One cycle: lock the directory, name, save, append the log line, update the
 * index, apply retention, export what is not exported yet (res->export; an
 * export failure does not fail the cycle: the files stay un-exported for the
 * next one).  A failed save is logged too (outcome "failed") and returned;
 * earlier backups are never touched by a failure.
 */
kt_code kt_etcdbackup_cycle(const kt_backup_config *cfg, kt_backup_result *res, kt_error *err);

/* ---------------- metrics ---------------- */

/* Append the Prometheus text for the backups of node in dir to out. */
void kt_etcdbackup_metrics_text(const char *dir, const char *node, kt_buf *out);
/* Write that text to path atomically (path.tmp + rename), mode 0644. */
kt_code kt_etcdbackup_metrics_file(const char *dir, const char *node, const char *path,
                                   kt_error *err);

/* ---------------- what the directory holds ---------------- */

typedef struct kt_backup_entry {
	char *file;                  /* base name */
	char *node;
	char *instance_id;
	char time[32];               /* "2026-11-27T08:00:00Z" from the name */
	int64_t revision;            /* -1 when the index does not know it */
	uint64_t size;
	int verified;                /* 1 when the index records a verified save */
	int exported;                /* 1 when the index records an export */
} kt_backup_entry;

/* List backup files in dir (all nodes), oldest first.  Free with
 * kt_backup_entries_free.  An empty or missing index is fine. */
kt_code kt_etcdbackup_list(const char *dir, kt_backup_entry **out, size_t *n_out,
                           kt_error *err);
void kt_backup_entries_free(kt_backup_entry *e, size_t n);

/* List the exported backups of every node in the bucket folder of this
 * cluster (target and folder resolved as the export stage does), oldest
 * first; entries' file is "s3://bucket/key", revision -1.  where receives
 * the folder listed.  KT_ENOTFOUND when no export target is configured. */
kt_code kt_etcdbackup_list_remote(const kt_backup_config *cfg, kt_backup_entry **out,
                                  size_t *n_out, char *where, size_t where_len, kt_error *err);

/* ---------------- restore: the source ---------------- */

typedef struct kt_fetched {
	char object[1200];           /* "s3://bucket/key" */
	char path[4096];             /* where it was (or would be) downloaded */
	char sha256[65];             /* from the object's metadata */
	uint64_t size;
	int downloaded;              /* 1: fetched now; 0 with reused: already there */
	int reused;
} kt_fetched;

/*
 * Find an exported backup (name: "latest" = the newest of any node, a base
 * name, a key or "s3://bucket/key") in this cluster's bucket folder and
 * download it to <cfg->dir>/<base name>, checking size and SHA-256 against
 * the object's metadata before it gets its name (else KT_ECORRUPT, nothing
 * kept).  A file already there with the same SHA-256 is reused; a different
 * one is KT_EEXIST.  dry_run: resolve and HEAD only.  Without a cluster id
 * (API server down, no cached id), the folder "*-<cluster-name>" is found by
 * listing the bucket.  KT_ENOTFOUND: no target, no folder, no such object.
 */
kt_code kt_etcdbackup_fetch_remote(const kt_backup_config *cfg, const char *name, int dry_run,
                                   kt_fetched *out, kt_error *err);
/* SHA-256 of a file as hex (streamed). */
kt_code kt_etcdbackup_file_sha256(const char *path, char hex[65], kt_error *err);

typedef struct kt_restore_source {
	char path[4096];             /* the local file to restore from */
	char origin[4200];           /* what it came from: the path or "s3://bucket/key" */
	const char *kind;            /* "file", "latest" (local) or "remote" */
	char sha256[65];
	uint64_t size;
	int64_t revision;            /* from the verification */
	uint64_t total_key;          /* live keys, as etcdutl snapshot status counts them */
	uint64_t n_kube_objects;
	int has_trailer;             /* 0: a raw db (etcdutl needs --skip-hash-check) */
	int verified;                /* 0 only in a dry run of a remote source */
	unsigned n_skipped;          /* "latest": newer backups that failed their checks */
} kt_restore_source;

/*
 * Resolve from ("FILE", "latest", "remote:latest", "remote:NAME") and
 * verify it fully (trailer, every page, the etcd buckets).  "latest" is
 * the newest backup in cfg->dir recorded as verified whose SHA-256 still
 * matches the index and that verifies now; older ones are tried when a
 * newer one fails (out->n_skipped, each logged); when an older verified
 * backup has a higher revision (etcd was re-created after it, e.g. empty
 * after the loss) "latest" refuses with KT_EUSAGE naming both, asking for
 * an explicit FILE.  A FILE listed in the
 * index of its directory must match the recorded SHA-256.  Remote sources
 * are downloaded first (see kt_etcdbackup_fetch_remote; dry_run skips the
 * download and the verification).  Errors: KT_ENOTFOUND, KT_ECORRUPT (wrong
 * checksum, failed verification), the fetch's errors.  Nothing outside
 * cfg->dir is written.
 */
kt_code kt_etcdbackup_resolve_source(const kt_backup_config *cfg, const char *from, int dry_run,
                                     kt_restore_source *out, kt_error *err);

/* ---------------- restore: the member and the data directory ---------------- */

typedef struct kt_etcd_member_flags {
	char name[256];
	char data_dir[4096];
	char initial_cluster[4096];  /* "a=https://10.0.0.5:2380,b=..." */
	char peer_urls[2048];        /* --initial-advertise-peer-urls */
	char token[256];             /* --initial-cluster-token */
	char client_url[1024];       /* first --advertise-client-urls, else listen */
	char cert[1024], key[1024], cacert[1024];   /* --cert-file, --key-file, --trusted-ca-file */
} kt_etcd_member_flags;

/* Read the member flags from an etcd static pod manifest.  Fields the
 * manifest lacks stay "".  KT_ENOTFOUND when the file does not exist. */
kt_code kt_etcdbackup_manifest_member(const char *manifest, kt_etcd_member_flags *out,
                                      kt_error *err);

/* The bump that keeps revisions going forward after a restore: larger than
 * any number of writes between the snapshot and the restore. */
#define KT_RESTORE_DEFAULT_BUMP 1000000000ull

typedef struct kt_restore_opts {
	const char *etcdutl;         /* path, or a name on PATH; NULL = "etcdutl" */
	const char *data_dir;
	const kt_etcd_member_flags *member;  /* "" fields: etcdutl's defaults */
	uint64_t bump_revision;      /* 0 = do not bump */
	int mark_compacted;
	int check_not_running;       /* refuse when an etcd process serves data_dir */
	volatile sig_atomic_t *cancel;
} kt_restore_opts;

typedef struct kt_restore_plan {
	char etcdutl[4096];          /* resolved path */
	char data_dir[4096];         /* the data directory, without a trailing '/' */
	char staging[4200];          /* DIR.restore-<time>: where etcdutl writes */
	char aside[4200];            /* DIR.before-restore-<time> ("" when DIR is absent) */
	int data_dir_exists;
	const char *argv[32];        /* the etcdutl command line (points into the plan) */
	char args[8][4200];
} kt_restore_plan;

/*
 * Every check that can fail before the data directory changes: etcdutl
 * exists and supports --bump-revision (when asked), the parent of the data
 * directory is writable and has room (snapshot size + 64 MiB for the WAL),
 * the data directory is a directory.  Fills plan (names with the current
 * UTC time).  KT_ENOTFOUND (etcdutl), KT_EPERM, KT_ENOSPC, KT_EUSAGE.
 */
kt_code kt_etcdbackup_restore_plan(const kt_restore_opts *o, const kt_restore_source *src,
                                   kt_restore_plan *plan, kt_error *err);

/*
 * Run the plan: etcdutl restores into the staging directory; only when it
 * succeeds is the existing data directory renamed aside (never deleted)
 * and the staging directory renamed into place (mode 0700).  A failure of
 * etcdutl removes the staging directory and leaves the data directory as
 * it was (KT_EREMOTE with etcdutl's last line).
 */
kt_code kt_etcdbackup_restore_run(const kt_restore_opts *o, kt_restore_plan *plan,
                                  kt_error *err);

/* ---------------- recovery of a static-pod node (recover.c) ---------------- */

/* Progress of the runbook: step 1..5 and one line of text. */
typedef void (*kt_recover_step_fn)(void *ctx, int step, const char *text);

typedef struct kt_recover_opts {
	const kt_backup_config *backup;  /* dir and export target, for the source */
	const char *from;                /* as kt_etcdbackup_resolve_source */
	const char *manifest;            /* the etcd static pod manifest */
	const char *stash_dir;           /* where it waits; NULL = parent of its directory */
	const char *etcdutl;
	uint64_t bump_revision;
	int mark_compacted;
	kt_etcd_conn conn;               /* the member's client URL, for health checks */
	int64_t wait_ms;                 /* each wait (stop, start, restart); 0 = 5 min */
	int dry_run;                     /* check everything, change nothing */
	kt_recover_step_fn step;
	void *step_ctx;
	volatile sig_atomic_t *cancel;
} kt_recover_opts;

typedef struct kt_recover_result {
	kt_etcd_member_flags member;     /* from the manifest */
	kt_restore_source src;
	kt_restore_plan plan;
	char stash[4200];                /* where the original manifest is, "" once back */
	int64_t revision;                /* etcd's revision at the end */
	uint64_t cluster_id, member_id;
	char version[32];
	int64_t stopped_ms;              /* from start until etcd was down */
	int64_t duration_ms;
} kt_recover_result;

/*
 * The runbook (state diagram in recover.c): read the manifest, resolve and
 * verify the source, plan the restore; then stop etcd by moving the
 * manifest out, restore, start once with --force-new-cluster, wait for
 * health, put the original manifest back and wait again.  Failures before
 * the restore put the manifest back and change nothing else; later ones
 * say where the manifest and the old data are.  res is filled as far as
 * the run got.
 */
kt_code kt_etcdbackup_recover(const kt_recover_opts *o, kt_recover_result *res, kt_error *err);

/* ---------------- restore drills (drill.c) ---------------- */

typedef struct kt_drill_opts {
	const char *etcd;                /* path or name on PATH; NULL = "etcd" */
	const char *etcdutl;             /* NULL = "etcdutl" */
	const char *work_dir;            /* NULL = $TMPDIR or /tmp */
	unsigned sample;                 /* Kubernetes objects to read; 0 = 20 */
	int64_t start_timeout_ms;        /* 0 = 60 s */
	volatile sig_atomic_t *cancel;
} kt_drill_opts;

typedef struct kt_drill_check {
	char name[32];                   /* "restore", "start", "revision", "keys", ... */
	int ok;
	char detail[480];
} kt_drill_check;

#define KT_DRILL_MAX_CHECKS 12

typedef struct kt_drill_result {
	int pass;                        /* every check ok */
	kt_drill_check checks[KT_DRILL_MAX_CHECKS];
	size_t n_checks;
	int64_t revision_expected, revision_got;
	uint64_t keys_expected, keys_got;
	unsigned n_sampled;              /* objects read and compared */
	unsigned n_resources;            /* resources whose counts were compared */
	char etcd_version[32];
	int64_t duration_ms;
} kt_drill_result;

/*
 * Restore src into a temporary directory, start a throwaway etcd on
 * loopback (random ports), compare its revision and key count with the
 * snapshot's, compare per-resource object counts with the census, read a
 * sample of Kubernetes objects, stop it and remove the directory.  KT_OK
 * when the drill ran (res->pass is the verdict); an error when it could not
 * run (etcd or etcdutl missing, no room, interrupted).
 */
kt_code kt_etcdbackup_drill(const kt_drill_opts *o, const kt_restore_source *src,
                            kt_drill_result *res, kt_error *err);

#endif /* KT_ETCDBACKUP_H */
