/*
 * cli.h - the front end: the command table, option parsing and output.
 *
 * Only code under src/cli/ talks to the user: it prints, reads the
 * terminal and chooses the exit status (0 ok, 1 failure, 2 usage error,
 * 3 verification failed; see kt_code_exit).  Each command group lives in
 * cmd_<group>.c and exposes its table entries through cli.h.
 */
#ifndef KT_CLI_H
#define KT_CLI_H

#include <jansson.h>
#include <signal.h>

#include "core/core.h"
#include "app/app.h"

typedef enum kt_out_format { KT_OUT_TABLE = 0, KT_OUT_JSON, KT_OUT_YAML } kt_out_format;

/* Options every command understands. */
typedef struct kt_globals {
	kt_out_format output;
	int verbose;
	kt_log_format log_format;
} kt_globals;

/* One flag of a command.  Exactly one of str/count is set. */
typedef struct kt_opt {
	const char *name;       /* long name without "--" */
	char shortname;         /* 0 for none */
	const char *argname;    /* NULL for a switch */
	const char *help;
	const char **str;       /* receives the argument */
	int *count;             /* incremented per occurrence */
} kt_opt;

typedef int (*kt_cmd_fn)(int argc, char **argv, const kt_globals *g);

/* One row of the dispatch table: "etcd snapshot save". */
typedef struct kt_command {
	const char *path;
	const char *summary;
	kt_cmd_fn fn;
} kt_command;

/* Set by SIGINT/SIGTERM once kt_cli_catch_signals ran; long operations poll
 * it.  Commands that do not poll it leave the default (die on the signal). */
extern volatile sig_atomic_t kt_cli_cancel;
void kt_cli_catch_signals(void);
/* For daemons: SIGINT/SIGTERM set kt_cli_cancel (no reset), SIGHUP sets
 * kt_cli_reload. */
extern volatile sig_atomic_t kt_cli_reload;
void kt_cli_catch_signals_agent(void);

/* A JSON string for text from outside (file names, keys): invalid UTF-8 and
 * control bytes become \xNN, so output never breaks or drives the terminal. */
json_t *kt_cli_json_text(const char *s);

/*
 * Parse argv (argv[0] is the first word after the command path) against
 * opts plus the global flags.  Positional arguments are collected into
 * pos[0..*n_pos) (at most max_pos).  On --help prints help and returns 0
 * with *done set; on error prints one line to stderr and returns 2.
 */
int kt_cli_parse(int argc, char **argv, const kt_opt *opts, const char *path,
                 const char *usage, const char *help, char **pos, int max_pos,
                 int *n_pos, kt_globals *g, int *done);

/*
 * Commands with --config FILE: build the argument list as the file's
 * settings ("flag: value", see kt_config_parse) followed by argv, so the
 * command line wins.  Unknown settings are usage errors naming the file.
 * *argv_out (free it) points into argv and into cfg (release it after
 * parsing is done with the values).  Returns 0, or 2 after printing.
 */
int kt_cli_with_config(int argc, char **argv, const kt_opt *opts, const char *path_cmd,
                       int *argc_out, char ***argv_out, kt_config *cfg);

/* Print a failure as "kontinuity: <msg>" (redacted) and return its exit code. */
int kt_cli_fail(const kt_error *err);
/* Print a usage problem and return 2. */
int kt_cli_usage(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Output: a table column maps a JSON key of each row to a header. */
typedef struct kt_column {
	const char *header;
	const char *key;
} kt_column;

/* Print rows (a JSON array of objects, or one object) in the chosen
 * format; table uses columns.  Takes no reference. */
void kt_cli_print(json_t *data, kt_out_format fmt, const kt_column *columns, size_t n_columns);
/* A listing: rows as kt_cli_print does, or, for an empty table, "no WHAT"
 * (plus " in namespace NS" when ns is not NULL) on stderr. */
void kt_cli_print_list(json_t *rows, kt_out_format fmt, const kt_column *columns,
                       size_t n_columns, const char *what, const char *ns);
/* Print any JSON value as YAML. */
void kt_cli_print_yaml(json_t *data);
/* A long listing printed as its rows come, 1,024 at a time (memory stays
 * bounded): json one array, yaml one sequence, a table with the header
 * once and widths that grow as later rows need.  add takes row's
 * reference; end prints what is left when print (else drops it). */
typedef struct kt_cli_stream {
	kt_out_format fmt;
	const kt_column *cols;
	size_t n_cols;
	json_t *rows;
	size_t *width;
	int started;
} kt_cli_stream;
void kt_cli_stream_init(kt_cli_stream *st, kt_out_format fmt, const kt_column *columns,
                        size_t n_columns);
void kt_cli_stream_add(kt_cli_stream *st, json_t *row);
void kt_cli_stream_end(kt_cli_stream *st, int print);

/* The etcd connection flags shared by save, backup and agent. */
#include "etcd/etcd.h"
typedef struct kt_cli_etcd_flags {
	kt_etcd_conn conn;
	const char *endpoint;
	const char *timeout;
	const char *connect_timeout;
} kt_cli_etcd_flags;
void kt_cli_etcd_flags_init(kt_cli_etcd_flags *f, const char *endpoint, const char *cacert,
                            const char *cert, const char *key);
/* Append the etcd flags to o (7 entries); returns the next free slot. */
kt_opt *kt_cli_etcd_opts(kt_cli_etcd_flags *f, kt_opt *o);
/* Validate after parsing and fill f->conn; returns 0 or 2 (usage printed). */
int kt_cli_etcd_finish(kt_cli_etcd_flags *f, const char *path_cmd);

/* --kubeconfig FILE and --context NAME: the one way every command that
 * talks to the Kubernetes API names its cluster (kube_flags.c).  kubeconfig
 * NULL or "" means kubectl's lookup: $KUBECONFIG (merged), then
 * ~/.kube/config, then the in-cluster service account. */
typedef struct kt_cli_kube_flags {
	const char *kubeconfig, *context;
} kt_cli_kube_flags;
/* Append the 2 flags to o; kubeconfig_help NULL = the generic text.
 * Returns the next free slot. */
kt_opt *kt_cli_kube_opts(kt_cli_kube_flags *f, kt_opt *o, const char *kubeconfig_help);
/* The kube flags and -n NS (*ns starts as dflt, which may be NULL); returns
 * the next free slot. */
kt_opt *kt_cli_kube_ns_opts(kt_cli_kube_flags *f, const char **ns, const char *dflt, kt_opt *o,
                            const char *ns_help);
/* Find and parse the config the flags name; 0, or an exit status after
 * printing the error (which names the file and field). */
struct kt_kube_config;
int kt_cli_kube_config(const kt_cli_kube_flags *f, struct kt_kube_config *out);

/* Where exported backups are found (--kubeconfig, --context, --export-secret,
 * --export-config, --cluster-name, --cluster-id), shared by backup, agent,
 * backups list, restore, recover and drill. */
typedef struct kt_cli_export_flags {
	kt_cli_kube_flags kube;
	const char *export_secret, *export_config, *cluster_name, *cluster_id;
	char secret_ns[254], secret_name[254];
} kt_cli_export_flags;
void kt_cli_export_flags_init(kt_cli_export_flags *f);
/* Append the 6 export flags to o; returns the next free slot. */
kt_opt *kt_cli_export_opts(kt_cli_export_flags *f, kt_opt *o);
/* Validate after parsing and fill the export fields of cfg; 0 or 2. */
struct kt_backup_config;
int kt_cli_export_finish(kt_cli_export_flags *f, struct kt_backup_config *cfg,
                         const char *path_cmd);

/* The etcd group. */
int kt_cmd_etcd_snapshot_save(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_snapshot_status(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_snapshot_verify(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_backup(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_backups_list(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_agent(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_restore(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_recover(int argc, char **argv, const kt_globals *g);
int kt_cmd_etcd_drill(int argc, char **argv, const kt_globals *g);

/* The flags of every command that opens a repository (repo_flags.c). */
struct kt_store;
struct kt_archive;
typedef struct kt_cli_repo_flags {
	const char *repo, *password_file, *endpoint, *region, *cacert;
	kt_opt *end;
} kt_cli_repo_flags;
/* Append the 5 repository flags to o (defaults from the environment). */
kt_opt *kt_cli_repo_opts(kt_cli_repo_flags *f, kt_opt *o);
extern const char kt_cli_repo_help_tail[];
/* The passphrase into buf (NUL-terminated); 0 or an exit code (printed). */
int kt_cli_repo_password(const kt_cli_repo_flags *f, const char *path_cmd, int confirm,
                         char *buf, size_t cap);
/* The store --repo names (create: make the directory or bucket). */
int kt_cli_repo_store(const kt_cli_repo_flags *f, const char *path_cmd, int create,
                      struct kt_store **out);
/* Store, passphrase and archive; 0 or the exit status after printing. */
int kt_cli_repo_open(const kt_cli_repo_flags *f, const char *path_cmd, struct kt_store **s,
                     struct kt_archive **a);

/* The repo group (cmd_repo.c). */
int kt_cmd_repo_init(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_backup(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_restore(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_snapshots(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_ls(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_check(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_stats(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_forget(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_prune(int argc, char **argv, const kt_globals *g);
int kt_cmd_repo_unlock(int argc, char **argv, const kt_globals *g);

/* kt_cli_kube_config, then a client (cancelled by Ctrl-C); 0, or the exit
 * status after printing the error (cmd_snapshot.c). */
struct kt_kube;
int kt_cli_kube_connect(const kt_cli_kube_flags *f, struct kt_kube **out);

/* The snapshot group and doctor (cmd_snapshot.c). */
int kt_cmd_snapshot_create(int argc, char **argv, const kt_globals *g);
int kt_cmd_snapshot_list(int argc, char **argv, const kt_globals *g);
int kt_cmd_snapshot_delete(int argc, char **argv, const kt_globals *g);
int kt_cmd_snapshot_restore(int argc, char **argv, const kt_globals *g);
int kt_cmd_doctor(int argc, char **argv, const kt_globals *g);

/* Where restore points go (target.c): --repo, or --profile (+ its
 * namespace); ca_path is the profile's CA bundle as a temporary file. */
typedef struct kt_cli_target {
	kt_cli_repo_flags rf;
	const char *profile, *profile_ns;
	char ca_path[64];            /* the profile's CA bundle as a temporary file, or "" */
} kt_cli_target;
/* Add --repo, --password-file ..., --profile, --profile-namespace. */
kt_opt *kt_cli_target_opts(kt_cli_target *t, kt_opt *o);
/* Open the target's repository (c is needed for --profile; a profile's
 * repository is created on first use); 0 or the exit status after printing. */
int kt_cli_target_open(kt_cli_target *t, struct kt_kube *c, const char *path,
                       struct kt_store **s, struct kt_archive **a);
/* The API server (when need_kube or a profile asks for it; else *c is
 * NULL), then the target's repository; 0 or the exit status. */
int kt_cli_target_connect(const kt_cli_kube_flags *kf, kt_cli_target *t, const char *path,
                          int need_kube, struct kt_kube **c, struct kt_store **s,
                          struct kt_archive **a);
/* Close what kt_cli_target_open opened and remove the CA file. */
void kt_cli_target_close(kt_cli_target *t, struct kt_store *s, struct kt_archive *a);
/* Print the restore points of a (of namespace ns, or all) as
 * `restorepoint list` does; 0 or the exit status (cmd_restorepoint.c). */
int kt_cli_list_restore_points(struct kt_archive *a, const char *ns, const kt_globals *g);

/* The repository in the bucket of profile ns/name (made on first use,
 * target.c); the
 * profile's CA bundle, if any, goes to a temporary file named in ca_path
 * (unlink it after freeing the store).  0, or the exit status after
 * printing the error. */
int kt_cli_profile_repo(struct kt_kube *c, const char *ns, const char *profile,
                        const char *path, struct kt_store **s, struct kt_archive **a,
                        char ca_path[64]);

/* Application backup and restore (cmd_app.c). */
int kt_cmd_app_backup(int argc, char **argv, const kt_globals *g);
int kt_cmd_app_restore(int argc, char **argv, const kt_globals *g);
int kt_cmd_app_import(int argc, char **argv, const kt_globals *g);
/* Restore points (cmd_restorepoint.c). */
int kt_cmd_restorepoint_list(int argc, char **argv, const kt_globals *g);
int kt_cmd_restorepoint_show(int argc, char **argv, const kt_globals *g);
int kt_cmd_restorepoint_delete(int argc, char **argv, const kt_globals *g);

/* The volume mover (cmd_mover.c). */
int kt_cmd_mover_backup(int argc, char **argv, const kt_globals *g);
int kt_cmd_mover_restore(int argc, char **argv, const kt_globals *g);

/* --volume-data, --mover-image, --mover-timeout (and on restores
 * --storage-class) of app backup/restore/import, and the mover they give. */
typedef struct kt_cli_mover_flags {
	const char *volume_data, *image, *timeout, *storage_class;
	kt_profile profile;          /* with its keys once loaded */
	kt_app_mover m;              /* points at profile */
	int loaded;
} kt_cli_mover_flags;
kt_opt *kt_cli_mover_opts(kt_cli_mover_flags *f, kt_opt *o, int restore);
/* Check the flags; *copy: 1 to use the mover (dflt when --volume-data is
 * absent; copy needs a profile).  0 or an exit code (printed). */
int kt_cli_mover_check(kt_cli_mover_flags *f, const char *profile, const char *path, int dflt,
                       int *copy);
/* The profile with its keys, for the mover's Secret; 0 or an exit code. */
int kt_cli_mover_load(kt_cli_mover_flags *f, struct kt_kube *c, const char *ns,
                      const char *profile);
void kt_cli_mover_release(kt_cli_mover_flags *f);

/* Policies and the controller (cmd_policy.c). */
int kt_cmd_policy_create(int argc, char **argv, const kt_globals *g);
int kt_cmd_policy_list(int argc, char **argv, const kt_globals *g);
int kt_cmd_policy_run(int argc, char **argv, const kt_globals *g);
int kt_cmd_policy_delete(int argc, char **argv, const kt_globals *g);
int kt_cmd_controller(int argc, char **argv, const kt_globals *g);

/* The profile group (cmd_profile.c). */
int kt_cmd_profile_create(int argc, char **argv, const kt_globals *g);
int kt_cmd_profile_list(int argc, char **argv, const kt_globals *g);
int kt_cmd_profile_check(int argc, char **argv, const kt_globals *g);

#endif /* KT_CLI_H */
