/*
 * cmd_backup.c - `etcd backup` (one cycle of the control-plane backup) and
 * `etcd backups list`.  The cycle itself is kt_etcdbackup_cycle
 * (src/etcdbackup/cycle.c); this file maps flags to its config and prints.
 */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "etcdbackup/etcdbackup.h"
#include "server/server.h"

#define DEFAULT_DIR "/etc/kubernetes/zadara"
#define DEFAULT_IMDS "http://169.254.169.254"

static const char backup_help[] =
	"Take one backup of this control-plane node's etcd, as the agent does every\n"
	"cycle (for cron or a systemd timer): stream a snapshot, verify it, save it\n"
	"in --dir as etcd_backup_<hostname>_<instance-id>_<UTC time>.db (mode 0600),\n"
	"append a line to <dir>/etcd-backup.log and stderr, record it in\n"
	"<dir>/etcd-backups.json, then keep only the newest --keep files of this node.\n"
	"A failed cycle is logged and exits 1; earlier backups are never touched.\n"
	"The instance id comes from --instance-id, else the EC2-compatible metadata\n"
	"service (IMDSv2, then v1; 1 s timeout), else /etc/machine-id.\n"
	"Defaults follow the kubeadm layout.\n\n"
	"Examples:\n"
	"  kontinuity etcd backup\n"
	"  kontinuity etcd backup --dir /var/backups/etcd --keep 24 --log-format json\n"
	"  kontinuity etcd backup --endpoint http://127.0.0.1:2379 --instance-id i-0abc --dir /tmp/b\n";

/* Flags of `etcd backup` and `etcd agent` (the agent adds its schedule). */
typedef struct backup_flags {
	kt_cli_etcd_flags ef;
	const char *dir, *keep_s, *hostname, *instance_id, *imds, *machine_id, *config;
	const char *interval, *schedule;
	kt_cli_export_flags xf;
	const char *keep_remote_s, *metrics_file, *metrics_addr, *drill_every_s, *etcd_bin, *etcdutl;
	kt_drill_opts drill;
	const char *repo, *repo_password_file;
	char repo_pass[1024];
	int no_client_cert, no_initial, repo_no_delta;
	kt_opt opts[44];
} backup_flags;

static void backup_flags_init(backup_flags *f, int agent)
{
	memset(f, 0, sizeof(*f));
	kt_cli_etcd_flags_init(&f->ef, "https://127.0.0.1:2379", "/etc/kubernetes/pki/etcd/ca.crt",
	                       "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
	                       "/etc/kubernetes/pki/etcd/healthcheck-client.key");
	f->dir = DEFAULT_DIR;
	f->keep_s = "100";
	f->imds = DEFAULT_IMDS;
	f->machine_id = "/etc/machine-id";
	f->interval = "2h";
	kt_cli_export_flags_init(&f->xf);
	f->keep_remote_s = "100";
	kt_opt *o = kt_cli_etcd_opts(&f->ef, f->opts);
	f->opts[0].help = "etcd client URL (default https://127.0.0.1:2379)";
	f->opts[1].help = "CA bundle (default /etc/kubernetes/pki/etcd/ca.crt)";
	f->opts[2].help = "client certificate (default .../pki/etcd/healthcheck-client.crt)";
	f->opts[3].help = "client key (default .../pki/etcd/healthcheck-client.key)";
	const kt_opt more[] = {
		{ "no-client-cert", 0, NULL, "do not send the default client certificate", NULL,
		  &f->no_client_cert },
		{ "dir", 0, "DIR", "backup directory (default " DEFAULT_DIR ")", &f->dir, NULL },
		{ "keep", 0, "N", "local backups of this node to keep (default 100, at least 1)",
		  &f->keep_s, NULL },
		{ "hostname", 0, "NAME", "node name in file names (default: this host's name)",
		  &f->hostname, NULL },
		{ "instance-id", 0, "ID", "cloud instance id (default: metadata service, machine id)",
		  &f->instance_id, NULL },
		{ "imds-url", 0, "URL", "metadata service address (default " DEFAULT_IMDS "; "
		  "empty to skip it)", &f->imds, NULL },
		{ "machine-id-file", 0, "FILE", "fallback identity (default /etc/machine-id)",
		  &f->machine_id, NULL },
		{ "config", 0, "FILE", "YAML file of 'flag: value' settings; flags given on the "
		  "command line win", &f->config, NULL },
		{ "keep-remote", 0, "N", "exported backups of this node to keep (default 100)",
		  &f->keep_remote_s, NULL },
		{ "metrics-file", 0, "FILE", "write Prometheus metrics for node exporter's textfile "
		  "collector after each cycle", &f->metrics_file, NULL },
	};
	memcpy(o, more, sizeof(more));
	o += sizeof(more) / sizeof(more[0]);
	o = kt_cli_export_opts(&f->xf, o);
	const kt_opt drill[] = {
		{ "drill-every", 0, "N", "after every Nth successful backup, prove it restores: "
		  "`etcd drill` on it, logged and in the metrics (default 0: never)",
		  &f->drill_every_s, NULL },
		{ "etcd", 0, "PATH", "etcd binary for drills (default: etcd on PATH)", &f->etcd_bin,
		  NULL },
		{ "etcdutl", 0, "PATH", "etcdutl binary for drills (default: etcdutl on PATH)",
		  &f->etcdutl, NULL },
		{ "repo", 0, "URL", "also keep every backup in this deduplicating, encrypted "
		  "repository (a directory or s3://BUCKET/PREFIX; see `kontinuity repo init`)",
		  &f->repo, NULL },
		{ "repo-password-file", 0, "FILE", "the repository's passphrase (else "
		  "KONTINUITY_PASSWORD)", &f->repo_password_file, NULL },
		{ "repo-no-delta", 0, NULL, "store each backup in the repository whole (as pages) "
		  "instead of as a delta against the previous one", NULL, &f->repo_no_delta },
	};
	memcpy(o, drill, sizeof(drill));
	o += sizeof(drill) / sizeof(drill[0]);
	if (agent) {
		const kt_opt sched[] = {
			{ "interval", 0, "DURATION", "time between cycles (default 2h)", &f->interval,
			  NULL },
			{ "schedule", 0, "CRON", "run cycles at the times of a 5-field cron expression in "
			  "UTC instead of every --interval, e.g. '0 */2 * * *'", &f->schedule, NULL },
			{ "no-initial-backup", 0, NULL, "wait for the first interval or scheduled time "
			  "before the first cycle", NULL, &f->no_initial },
			{ "metrics-addr", 0, "HOST:PORT", "serve Prometheus metrics on "
			  "http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)", &f->metrics_addr, NULL },
		};
		memcpy(o, sched, sizeof(sched));
		o += sizeof(sched) / sizeof(sched[0]);
	}
	memset(o, 0, sizeof(*o));
}

/* Parse (config file, then argv) into f and cfg.  Returns 0, or an exit
 * code after printing; *done is set for --help. */
static int backup_parse(backup_flags *f, int agent, int argc, char **argv, const char *path_cmd,
                        const char *help, kt_globals *g, kt_config *conf,
                        kt_backup_config *cfg, int *done)
{
	backup_flags_init(f, agent);
	int n;
	char **v;
	int rc = kt_cli_with_config(argc, argv, f->opts, path_cmd, &n, &v, conf);
	if (rc)
		return rc;
	char *pos[1];
	int n_pos;
	rc = kt_cli_parse(n, v, f->opts, path_cmd, "[flags]", help, pos, 0, &n_pos, g, done);
	free(v);
	if (rc || *done)
		return rc;
	if (f->no_client_cert)
		f->ef.conn.cert = f->ef.conn.key = NULL;
	if (!strncmp(f->ef.endpoint, "http://", 7))
		f->ef.conn.cacert = f->ef.conn.cert = f->ef.conn.key = NULL;   /* no TLS: no certs */
	if ((rc = kt_cli_etcd_finish(&f->ef, path_cmd)))
		return rc;
	char *end;
	unsigned long keep = strtoul(f->keep_s, &end, 10);
	if (*end || keep < 1 || keep > 1000000)
		return kt_cli_usage(path_cmd, "--keep must be a number of files, at least 1 (got '%s')",
		                    f->keep_s);
	unsigned long keep_remote = strtoul(f->keep_remote_s, &end, 10);
	if (*end || keep_remote < 1 || keep_remote > 1000000)
		return kt_cli_usage(path_cmd, "--keep-remote must be a number of objects, at least 1 "
		                    "(got '%s')", f->keep_remote_s);
	memset(cfg, 0, sizeof(*cfg));
	if ((rc = kt_cli_export_finish(&f->xf, cfg, path_cmd)))
		return rc;
	unsigned long drill_every = 0;
	if (f->drill_every_s) {
		drill_every = strtoul(f->drill_every_s, &end, 10);
		if (*end || !*f->drill_every_s || drill_every > 1000000)
			return kt_cli_usage(path_cmd, "--drill-every must be a number of backups (got "
			                    "'%s')", f->drill_every_s);
	}
	f->drill = (kt_drill_opts){ .etcd = f->etcd_bin, .etcdutl = f->etcdutl,
	                            .cancel = &kt_cli_cancel };
	cfg->drill_every = (unsigned)drill_every;
	cfg->drill = &f->drill;
	if (f->repo && *f->repo) {
		f->repo_pass[0] = '\0';
		if (f->repo_password_file) {
			FILE *pf = fopen(f->repo_password_file, "r");
			if (!pf)
				return kt_cli_usage(path_cmd, "cannot read --repo-password-file '%s'",
				                    f->repo_password_file);
			if (!fgets(f->repo_pass, sizeof(f->repo_pass), pf))
				f->repo_pass[0] = '\0';
			fclose(pf);
			f->repo_pass[strcspn(f->repo_pass, "\r\n")] = '\0';
		} else if (getenv("KONTINUITY_PASSWORD")) {
			snprintf(f->repo_pass, sizeof(f->repo_pass), "%s", getenv("KONTINUITY_PASSWORD"));
		}
		if (!f->repo_pass[0])
			return kt_cli_usage(path_cmd, "--repo needs a passphrase: --repo-password-file "
			                    "FILE or KONTINUITY_PASSWORD");
		kt_log_add_secret(f->repo_pass);
		cfg->repo_url = f->repo;
		cfg->repo_password = f->repo_pass;
		cfg->repo_no_delta = f->repo_no_delta;
		cfg->repo_s3.endpoint = getenv("AWS_ENDPOINT_URL_S3") ? getenv("AWS_ENDPOINT_URL_S3")
		                                                       : getenv("AWS_ENDPOINT_URL");
		cfg->repo_s3.region = getenv("AWS_DEFAULT_REGION");
		cfg->repo_s3.access_key = getenv("AWS_ACCESS_KEY_ID");
		cfg->repo_s3.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
		if (cfg->repo_s3.secret_key)
			kt_log_add_secret(cfg->repo_s3.secret_key);
	}
	cfg->keep_remote = (unsigned)keep_remote;
	cfg->metrics_file = f->metrics_file;
	cfg->etcd = f->ef.conn;
	cfg->dir = f->dir;
	cfg->hostname = f->hostname;
	cfg->instance_id = f->instance_id;
	cfg->imds_url = f->imds;
	cfg->machine_id_path = f->machine_id;
	cfg->keep = (unsigned)keep;
	cfg->log_format = g->log_format;
	/* The cycle's own line goes to stderr whatever -v says. */
	if (!kt_log_enabled(KT_LOG_INFO))
		kt_log_setup(stderr, g->log_format, KT_LOG_INFO);
	return 0;
}

int kt_cmd_etcd_backup(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd backup";
	kt_globals g = *g0;
	backup_flags f;
	kt_config conf;
	kt_backup_config cfg;
	int done;
	int rc = backup_parse(&f, 0, argc, argv, path_cmd, backup_help, &g, &conf, &cfg, &done);
	if (rc || done) {
		kt_config_release(&conf);
		return rc;
	}
	kt_cli_catch_signals();
	kt_error err;
	kt_error_clear(&err);
	kt_backup_result res;
	kt_code c = kt_etcdbackup_cycle(&cfg, &res, &err);
	if (c) {
		kt_config_release(&conf);
		return kt_cli_fail(&err);
	}
	const kt_export_result *x = &res.export;
	if (g.output != KT_OUT_TABLE) {
		json_t *j = json_pack("{s:o, s:s, s:s, s:s, s:I, s:I, s:s, s:f, s:i, "
		                      "s:{s:b, s:s, s:i, s:i, s:i, s:s?}}",
		                      "file", kt_cli_json_text(res.file), "node", res.node,
		                      "instance", res.instance_id, "instanceSource",
		                      res.instance_source, "size", (json_int_t)res.save.size,
		                      "revision", (json_int_t)res.save.revision,
		                      "sha256", res.save.sha256,
		                      "seconds", (double)res.save.duration_ms / 1000.0,
		                      "deleted", (int)res.n_deleted,
		                      "export", "configured", x->configured, "target", x->target,
		                      "exported", (int)x->n_exported, "failed", (int)x->n_failed,
		                      "remoteDeleted", (int)x->n_remote_deleted,
		                      "error", x->code ? x->error : NULL);
		if (res.repo.attempted)
			json_object_set_new(j, "repo", json_pack("{s:s?, s:I, s:I, s:s?}", "snapshot",
			                    res.repo.code ? NULL : res.repo.snapshot, "added",
			                    (json_int_t)res.repo.added, "deltaDepth",
			                    (json_int_t)res.repo.delta_depth,
			                    "error", res.repo.code ? res.repo.error : NULL));
		if (res.drilled)
			json_object_set_new(j, "drill", json_pack("{s:s, s:f, s:s}", "result",
			                    res.drill_pass ? "PASS" : res.drill_error ? "ERROR" : "FAIL",
			                    "seconds",
			                    (double)res.drill_ms / 1000.0, "detail", res.drill_summary));
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	} else {
		printf("backup saved: %s (revision %lld)%s\n", res.file, (long long)res.save.revision,
		       res.n_deleted ? "; retention removed older files" : "");
		if (x->configured && !x->code)
			printf("exported %u backup%s to %s\n", x->n_exported,
			       x->n_exported == 1 ? "" : "s", x->target);
		if (res.repo.attempted && !res.repo.code) {
			char b[32];
			printf("kept in the repository as snapshot %.8s (%s new)\n", res.repo.snapshot,
			       kt_human_bytes(res.repo.added, b));
		}
		if (res.drilled)
			printf("restore drill %s in %.1fs: %s\n", res.drill_pass ? "PASS"
			       : res.drill_error ? "ERROR" : "FAIL",
			       (double)res.drill_ms / 1000.0, res.drill_summary);
	}
	if (x->code) {
		fprintf(stderr, "kontinuity: saved locally, but the export failed (it will be "
		        "retried at the next cycle): %s\n", x->error);
		kt_config_release(&conf);
		return 1;
	}
	kt_config_release(&conf);
	if (res.repo.attempted && res.repo.code) {
		fprintf(stderr, "kontinuity: saved locally, but keeping it in the repository failed: "
		        "%s\n", res.repo.error);
		return 1;
	}
	if (res.drilled && !res.drill_pass) {
		fprintf(stderr, "kontinuity: the backup was saved, but its restore drill %s: %s\n",
		        res.drill_error ? "could not run" : "failed", res.drill_summary);
		return res.drill_error ? 1 : 3;
	}
	return 0;
}

static const char agent_help[] =
	"Run the control-plane backup agent: one cycle at start (unless\n"
	"--no-initial-backup), then one every --interval (default 2h) or at the\n"
	"times of --schedule (cron, UTC; docs/schedule.md), each cycle\n"
	"exactly what `kontinuity etcd backup` does.  A failed cycle is logged and\n"
	"retried at the next one; the agent keeps running.\n"
	"SIGTERM or SIGINT ends it (a save in progress is abandoned and leaves no\n"
	".part); SIGHUP re-reads --config before the next cycle.\n\n"
	"Examples:\n"
	"  kontinuity etcd agent --config /etc/kontinuity/agent.yaml\n"
	"  kontinuity etcd agent --interval 30m --keep 48 --log-format json\n"
	"  kontinuity etcd agent --schedule '0 */12 * * *' --metrics-addr 127.0.0.1:9464\n";


/* The metrics come from the index, which a cycle replaces by rename: a
 * request reads the old or the new one, never half, without a lock. */
typedef struct metrics_ctx {
	char dir[4096];
	char node[256];
} metrics_ctx;

static void render_metrics(void *ctx, kt_buf *out)
{
	metrics_ctx *m = ctx;
	kt_etcdbackup_metrics_text(m->dir, m->node, out);
}

/* One parsed agent configuration (heap: its option table points into it). */
typedef struct agent_conf {
	backup_flags f;
	kt_config conf;
	kt_backup_config cfg;
	kt_globals g;
	int64_t interval_ms;
	int use_cron;
	kt_cron cron;
	metrics_ctx mctx;
} agent_conf;

static void agent_conf_free(agent_conf *a)
{
	if (!a)
		return;
	kt_config_release(&a->conf);
	free(a);
}

/* Parse the command line (and --config) into a new agent_conf.  Returns 0
 * with *out set, or an exit code (message printed); *done for --help. */
static int agent_parse(int argc, char **argv, const kt_globals *g0, agent_conf **out, int *done)
{
	const char *path_cmd = "etcd agent";
	agent_conf *a = kt_xcalloc(1, sizeof(*a));
	a->g = *g0;
	int rc = backup_parse(&a->f, 1, argc, argv, path_cmd, agent_help, &a->g, &a->conf, &a->cfg,
	                      done);
	kt_error err;
	kt_error_clear(&err);
	if (!rc && !*done && (kt_parse_duration_ms(a->f.interval, &a->interval_ms, &err) ||
	                      a->interval_ms < 1000))
		rc = kt_cli_usage(path_cmd, "--interval must be a duration of at least 1s (got '%s')",
		                  a->f.interval);
	a->use_cron = !rc && !*done && a->f.schedule && *a->f.schedule;
	int64_t first;
	if (a->use_cron && (kt_cron_parse(&a->cron, a->f.schedule, &err) ||
	                    kt_cron_next(&a->cron, time(NULL), &first, &err)))
		rc = kt_cli_usage(path_cmd, "--schedule: %s", err.msg);
	if (rc || *done) {
		agent_conf_free(a);
		return rc;
	}
	snprintf(a->mctx.dir, sizeof(a->mctx.dir), "%s", a->cfg.dir);
	if (a->f.hostname && *a->f.hostname)
		snprintf(a->mctx.node, sizeof(a->mctx.node), "%s", a->f.hostname);
	else if (gethostname(a->mctx.node, sizeof(a->mctx.node) - 1) != 0)
		snprintf(a->mctx.node, sizeof(a->mctx.node), "unknown");
	*out = a;
	return 0;
}

/* When the next cycle is due: monotonic ms for an interval, UTC seconds for
 * a schedule. */
static int64_t agent_next(const agent_conf *a, int first)
{
	kt_error err;
	int64_t t;
	if (a->use_cron)
		return first && !a->f.no_initial ? time(NULL)
		       : kt_cron_next(&a->cron, time(NULL), &t, &err) ? INT64_MAX : t;
	return first && !a->f.no_initial ? kt_now_ms() : kt_now_ms() + a->interval_ms;
}

int kt_cmd_etcd_agent(int argc, char **argv, const kt_globals *g0)
{
	kt_cli_catch_signals_agent();
	agent_conf *a = NULL;
	int done = 0;
	int rc = agent_parse(argc, argv, g0, &a, &done);
	if (rc || done)
		return rc;
	kt_error err;
	kt_metrics_server *ms = NULL;
	if (a->f.metrics_addr && *a->f.metrics_addr &&
	    kt_metrics_server_start(&ms, a->f.metrics_addr, render_metrics, &a->mctx, &err)) {
		agent_conf_free(a);
		return kt_cli_fail(&err);
	}
	int64_t next = agent_next(a, 1);
	for (;;) {
		if (a->use_cron)
			kt_log(KT_LOG_INFO, "agent: backing up %s into '%s' on schedule '%s' (UTC), "
			       "keeping %u", a->f.ef.endpoint, a->cfg.dir, a->cron.expr, a->cfg.keep);
		else
			kt_log(KT_LOG_INFO, "agent: backing up %s into '%s' every %s, keeping %u",
			       a->f.ef.endpoint, a->cfg.dir, a->f.interval, a->cfg.keep);
		kt_cli_reload = 0;
		while (!kt_cli_cancel && !kt_cli_reload) {
			int64_t now = a->use_cron ? (int64_t)time(NULL) : kt_now_ms();
			if (now < next) {
				struct timespec ts = { 0, 100 * 1000 * 1000 };
				nanosleep(&ts, NULL);
				continue;
			}
			next = agent_next(a, 0);
			kt_backup_result res;
			kt_error_clear(&err);
			kt_code c = kt_etcdbackup_cycle(&a->cfg, &res, &err);
			if (c && c != KT_ECANCELED)
				kt_log(KT_LOG_ERROR, "agent: cycle failed (retried at the next cycle): %s",
				       err.msg);
		}
		if (kt_cli_cancel)
			break;
		/* SIGHUP: a configuration that does not parse is reported and the
		 * running one kept; the daemon never dies of a typo. */
		kt_log(KT_LOG_INFO, "agent: SIGHUP, reloading configuration");
		agent_conf *n = NULL;
		if (agent_parse(argc, argv, g0, &n, &done) || done) {
			kt_log(KT_LOG_ERROR, "agent: the new configuration is invalid (see above); "
			       "keeping the running one");
			agent_conf_free(n);
			continue;
		}
		int timing_changed = n->use_cron != a->use_cron || n->interval_ms != a->interval_ms ||
		                     strcmp(n->cron.expr, a->cron.expr);
		int addr_changed = strcmp(n->f.metrics_addr ? n->f.metrics_addr : "",
		                          a->f.metrics_addr ? a->f.metrics_addr : "");
		if (addr_changed) {
			kt_metrics_server_stop(ms);
			ms = NULL;
			if (n->f.metrics_addr && *n->f.metrics_addr &&
			    kt_metrics_server_start(&ms, n->f.metrics_addr, render_metrics, &n->mctx, &err))
				kt_log(KT_LOG_ERROR, "agent: %s; serving no metrics", err.msg);
		} else if (ms) {
			/* Same address: keep the server, point it at the new settings. */
			kt_metrics_server_stop(ms);
			ms = NULL;
			if (kt_metrics_server_start(&ms, n->f.metrics_addr, render_metrics, &n->mctx, &err))
				kt_log(KT_LOG_ERROR, "agent: %s; serving no metrics", err.msg);
		}
		agent_conf_free(a);
		a = n;
		if (timing_changed)
			next = agent_next(a, 0);   /* keep the running timer otherwise */
	}
	kt_metrics_server_stop(ms);
	agent_conf_free(a);
	kt_log(KT_LOG_INFO, "agent: stopping on signal");
	return 0;
}

static const char list_help[] =
	"List the etcd backups in the backup directory, of every node that writes\n"
	"there, oldest first: node, instance, time, revision, size, verified, exported.\n"
	"Revision and the verified/exported marks come from <dir>/etcd-backups.json.\n"
	"With --remote, lists the exported objects in the bucket folder of this\n"
	"cluster instead (the export target is found as `etcd backup` finds it).\n\n"
	"Examples:\n"
	"  kontinuity etcd backups list\n"
	"  kontinuity etcd backups list --remote --export-config /etc/kontinuity/export.yaml\n"
	"  kontinuity etcd backups list --dir /var/backups/etcd -o json\n";

int kt_cmd_etcd_backups_list(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd backups list";
	kt_globals g = *g0;
	backup_flags f;
	backup_flags_init(&f, 0);
	int remote = 0;
	kt_opt *o = f.opts;
	while (o->name)
		o++;
	o[0] = (kt_opt){ "remote", 0, NULL, "list the exported backups in object storage instead",
	                 NULL, &remote };
	memset(&o[1], 0, sizeof(kt_opt));
	int n_args;
	char **args;
	kt_config conf;
	int rc = kt_cli_with_config(argc, argv, f.opts, path_cmd, &n_args, &args, &conf);
	if (rc)
		return rc;
	char *pos[1];
	int n_pos, done;
	rc = kt_cli_parse(n_args, args, f.opts, path_cmd, "[flags]", list_help, pos, 0, &n_pos, &g,
	                  &done);
	free(args);
	if (rc || done) {
		kt_config_release(&conf);
		return rc;
	}
	const char *dir = f.dir;
	kt_error err;
	kt_error_clear(&err);
	kt_backup_entry *v;
	size_t n;
	kt_code c;
	char where[700] = "";
	if (remote) {
		kt_backup_config cfg = { .dir = dir };
		if ((rc = kt_cli_export_finish(&f.xf, &cfg, path_cmd))) {
			kt_config_release(&conf);
			return rc;
		}
		c = kt_etcdbackup_list_remote(&cfg, &v, &n, where, sizeof(where), &err);
	} else {
		c = kt_etcdbackup_list(dir, &v, &n, &err);
	}
	if (c) {
		kt_config_release(&conf);
		return kt_cli_fail(&err);
	}
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_pack("{s:o, s:o, s:s, s:o, s:I, s:b, s:b, s:o}",
		                        "node", kt_cli_json_text(v[i].node),
		                        "instance", kt_cli_json_text(v[i].instance_id),
		                        "time", v[i].time,
		                        "revision", v[i].revision >= 0 ? json_integer(v[i].revision)
		                                                       : json_null(),
		                        "size", (json_int_t)v[i].size, "verified", v[i].verified,
		                        "exported", v[i].exported,
		                        "file", kt_cli_json_text(v[i].file));
		if (row)
			json_array_append_new(rows, row);
	}
	kt_backup_entries_free(v, n);
	static const kt_column cols[] = {
		{ "NODE", "node" }, { "INSTANCE", "instance" }, { "TIME", "time" },
		{ "REVISION", "revision" }, { "SIZE", "size" }, { "VERIFIED", "verified" },
		{ "EXPORTED", "exported" },
	};
	if (g.output == KT_OUT_TABLE && json_array_size(rows) == 0)
		printf("no backups in '%s'\n", remote ? where : dir);
	else
		kt_cli_print(rows, g.output, cols, sizeof(cols) / sizeof(cols[0]));
	json_decref(rows);
	kt_config_release(&conf);   /* dir may point into it */
	return 0;
}
