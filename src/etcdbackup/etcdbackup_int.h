/*
 * etcdbackup_int.h - shared inside src/etcdbackup only.
 */
#ifndef KT_ETCDBACKUP_INT_H
#define KT_ETCDBACKUP_INT_H

#include <jansson.h>

#include "etcdbackup.h"

#define KT_BACKUP_LOG "etcd-backup.log"
#define KT_BACKUP_INDEX "etcd-backups.json"
#define KT_BACKUP_LOCK ".kontinuity.lock"

/* Split a backup file name; 0 when it is not one.  node/instance (may be
 * NULL) receive malloc'ed strings; time_out gets "YYYY-MM-DDTHH:MM:SSZ". */
int kt_backup_parse_name(const char *name, char **node, char **instance, char time_out[32]);

/* The index as JSON ({"version":1,"backups":{name:{...}}}); never NULL. */
json_t *kt_backup_index_load(const char *dir);
kt_code kt_backup_index_save(const char *dir, json_t *idx, kt_error *err);

/* The export stage (export.c): uploads this node's verified, un-exported
 * backups recorded in idx (marking them), then remote retention. */
kt_code kt_etcdbackup_export(const kt_backup_config *cfg, const char *node, json_t *idx,
                             kt_export_result *res, kt_error *err);

/* Append one line to <dir>/etcd-backup.log: fields as a JSON object with
 * --log-format json, else "<iso> <text>".  Failures are logged, not fatal. */
void kt_backup_log_append(const kt_backup_config *cfg, const char *iso, json_t *fields,
                          const char *text);

/* The repository stage (torepo.c): fills res->repo, logs a line. */
void kt_backup_to_repo(const kt_backup_config *cfg, kt_backup_result *res, const char *iso);

/* Count this cycle into idx["metrics"] (metrics.c). */
void kt_backup_metrics_record(json_t *idx, const kt_backup_result *res, kt_code save_code);

/* Count the etcd processes (argv[0] named etcd) whose --data-dir is
 * data_dir, through /proc; *n_forced of them run with --force-new-cluster
 * (restore.c). */
int kt_etcd_processes(const char *data_dir, int *n_forced);
/* 1 when some process holds the bbolt lock of data_dir's member/snap/db. */
int kt_etcd_db_locked(const char *data_dir);

#endif
