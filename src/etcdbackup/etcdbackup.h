/*
 * etcdbackup.h - the control-plane backup engine.
 *
 * Owns: saving a snapshot safely (stream -> .part -> fsync -> check ->
 * rename), one backup cycle of a control-plane node (name, save, log line,
 * index, local retention), the node's identity (hostname, cloud instance id)
 * and the index of what the backup directory holds.
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
	const char *export_config;   /* YAML file of backup_* keys, or NULL */
	const char *secret_namespace;/* "kube-system" */
	const char *secret_name;     /* "zadara-backup-export" */
	const char *cluster_name;    /* bucket folder <cluster-id>-<cluster-name> */
	const char *cluster_id;      /* NULL: the kube-system namespace UID */
	unsigned keep_remote;        /* objects of this node to keep (>= 1) */
	const char *metrics_file;    /* node-exporter textfile to rewrite each cycle, or NULL */
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

typedef struct kt_backup_result {
	char file[4096];             /* full path of the new backup ("" if none) */
	char node[256];
	char instance_id[KT_INSTANCE_ID_MAX + 1];
	const char *instance_source;
	kt_save_result save;
	unsigned n_deleted;          /* removed by retention */
	kt_export_result export;     /* the export stage (runs even when the save failed) */
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

#endif /* KT_ETCDBACKUP_H */
