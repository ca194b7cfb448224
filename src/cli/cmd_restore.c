/*
 * cmd_restore.c - the way back: `etcd restore` (a data directory from a
 * backup), `etcd recover` (the static-pod node runbook) and `etcd drill`
 * (prove a backup restores).  The work is in src/etcdbackup/restore.c,
 * recover.c and drill.c; this file maps flags and prints.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "etcdbackup/etcdbackup.h"

#define DEFAULT_DIR "/etc/kubernetes/zadara"
#define DEFAULT_MANIFEST "/etc/kubernetes/manifests/etcd.yaml"

/* Flags shared by the three commands: where the source comes from. */
typedef struct source_flags {
	const char *dir, *etcdutl;
	kt_cli_export_flags xf;
} source_flags;

static kt_opt *source_opts(source_flags *f, kt_opt *o)
{
	f->dir = DEFAULT_DIR;
	kt_cli_export_flags_init(&f->xf);
	const kt_opt list[] = {
		{ "dir", 0, "DIR", "backup directory for 'latest' and downloads (default " DEFAULT_DIR
		  ")", &f->dir, NULL },
		{ "etcdutl", 0, "PATH", "etcdutl binary (default: etcdutl on PATH)", &f->etcdutl,
		  NULL },
	};
	memcpy(o, list, sizeof(list));
	return kt_cli_export_opts(&f->xf, o + sizeof(list) / sizeof(list[0]));
}

static const char source_help[] =
	"SOURCE is one of:\n"
	"  FILE           a snapshot file (etcdctl/etcdutl/kontinuity save, or a raw member/snap/db)\n"
	"  latest         the newest backup in --dir that verified when saved and still does\n"
	"                 (older ones are tried when a newer one fails its checks)\n"
	"  remote:latest  the newest exported backup of this cluster, from the export target\n"
	"  remote:NAME    an exported backup by file name or key (`etcd backups list --remote`)\n"
	"Remote sources are downloaded into --dir and must match the SHA-256 stored with them.\n"
	"With the cluster down, give the target with --export-config (or BACKUP_* variables)\n"
	"and, if several clusters share the bucket, --cluster-id.\n";

/* Revision bump flags of restore and recover. */
typedef struct bump_flags {
	const char *bump_s;
	int no_bump;
	uint64_t bump;
} bump_flags;

static kt_opt *bump_opts(bump_flags *b, kt_opt *o)
{
	const kt_opt list[] = {
		{ "bump-revision", 0, "N", "raise the restored revision by N and mark it compacted "
		  "(default 1000000000)", &b->bump_s, NULL },
		{ "no-bump-revision", 0, NULL, "restore the revision as it was (watchers may then see "
		  "revisions go backwards)", NULL, &b->no_bump },
	};
	memcpy(o, list, sizeof(list));
	return o + sizeof(list) / sizeof(list[0]);
}

static int bump_finish(bump_flags *b, const char *path_cmd)
{
	b->bump = KT_RESTORE_DEFAULT_BUMP;
	if (b->bump_s) {
		char *end;
		unsigned long long v = strtoull(b->bump_s, &end, 10);
		if (*end || !*b->bump_s || v == 0 || v > (1ull << 62))
			return kt_cli_usage(path_cmd, "--bump-revision must be a positive number (got '%s')",
			                    b->bump_s);
		b->bump = v;
	}
	if (b->no_bump) {
		if (b->bump_s)
			return kt_cli_usage(path_cmd, "--bump-revision and --no-bump-revision contradict "
			                    "each other");
		b->bump = 0;
	}
	return 0;
}

#define BUMP_HELP \
	"Revisions: etcd clients (the API server's watch cache, controllers, kubelets)\n" \
	"remember the last revision they saw.  A restored snapshot is older, so without\n" \
	"care its revisions would go backwards and watchers would miss or replay changes.\n" \
	"By default the revision is raised by 1000000000 (--bump-revision) and marked\n" \
	"compacted, so every watcher is told its revision is gone and re-lists.  Needs\n" \
	"etcdutl 3.6+; --no-bump-revision restores the revision as it was.\n"

static void print_source(const kt_restore_source *s)
{
	if (s->n_skipped)
		printf("skipped %u newer backup%s that failed their checks (see the log above)\n",
		       s->n_skipped, s->n_skipped == 1 ? "" : "s");
	if (s->verified)
		printf("source %s: revision %lld, %llu keys, %llu Kubernetes objects, sha256 %.12s..., "
		       "verified\n", s->origin, (long long)s->revision, (unsigned long long)s->total_key,
		       (unsigned long long)s->n_kube_objects, s->sha256);
}

static json_t *source_json(const kt_restore_source *s)
{
	return json_pack("{s:o, s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:i}",
	                 "origin", kt_cli_json_text(s->origin), "file", kt_cli_json_text(s->path),
	                 "kind", s->kind ? s->kind : "", "sha256", s->sha256,
	                 "size", (json_int_t)s->size, "revision", (json_int_t)s->revision,
	                 "keys", (json_int_t)s->total_key,
	                 "kubeObjects", (json_int_t)s->n_kube_objects, "verified", s->verified,
	                 "skipped", (int)s->n_skipped);
}

/* ------------------------------------------------------------------ */
/* etcd restore */

static const char restore_help[] =
	"Restore an etcd data directory from a backup, with the member flags of this\n"
	"node's etcd static pod manifest so the member keeps its name and peer URLs.\n"
	"The source is verified first (checksum, every page); etcdutl then restores into\n"
	"DIR.restore-<time> next to the data directory, and only when that succeeded is\n"
	"an existing data directory moved aside to DIR.before-restore-<time> (never\n"
	"deleted) and the restored one moved into place.  etcd must not be running on\n"
	"the data directory (see `kontinuity etcd recover` for the whole runbook).\n\n"
	BUMP_HELP "\n"
	"Flags given here win over the manifest's (--manifest, default\n"
	DEFAULT_MANIFEST ", used when it exists).\n\n";

static const char restore_examples[] =
	"Examples:\n"
	"  kontinuity etcd restore --from latest\n"
	"  kontinuity etcd restore --from /backups/etcd_backup_cp1_i-0abc_20261127T080000Z.db \\\n"
	"      --data-dir /var/lib/etcd\n"
	"  kontinuity etcd restore --from remote:latest --export-config /root/export.yaml \\\n"
	"      --data-dir /var/lib/etcd --name cp1 --initial-cluster cp1=https://10.0.0.5:2380 \\\n"
	"      --initial-advertise-peer-urls https://10.0.0.5:2380\n";

int kt_cmd_etcd_restore(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd restore";
	kt_globals g = *g0;
	source_flags sf;
	bump_flags bf = { 0 };
	const char *from = NULL, *data_dir = NULL, *manifest = NULL, *name = NULL, *icluster = NULL,
	           *peer = NULL, *token = NULL;
	int dry_run = 0;
	kt_opt opts[32];
	const kt_opt own[] = {
		{ "from", 0, "SOURCE", "what to restore (see SOURCE above; required)", &from, NULL },
		{ "data-dir", 0, "DIR", "etcd data directory (default: the manifest's --data-dir)",
		  &data_dir, NULL },
		{ "manifest", 0, "FILE", "etcd static pod manifest to take member flags from (\"\": "
		  "none)", &manifest, NULL },
		{ "name", 0, "NAME", "member name (default: the manifest's)", &name, NULL },
		{ "initial-cluster", 0, "NAME=URL,...", "cluster members (default: the manifest's)",
		  &icluster, NULL },
		{ "initial-advertise-peer-urls", 0, "URLS", "this member's peer URLs (default: the "
		  "manifest's)", &peer, NULL },
		{ "initial-cluster-token", 0, "TOKEN", "cluster token (default: the manifest's)",
		  &token, NULL },
		{ "dry-run", 0, NULL, "check the source and the data directory, print the etcdutl "
		  "command, change nothing", NULL, &dry_run },
	};
	memcpy(opts, own, sizeof(own));
	kt_opt *o = bump_opts(&bf, opts + sizeof(own) / sizeof(own[0]));
	o = source_opts(&sf, o);
	memset(o, 0, sizeof(*o));
	char help[4096];
	snprintf(help, sizeof(help), "%s%s\n%s", restore_help, source_help, restore_examples);
	char *pos[1];
	int n_pos, done;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "--from SOURCE [flags]", help, pos, 0,
	                      &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (!from || !*from)
		return kt_cli_usage(path_cmd, "--from SOURCE is required (a file, latest or "
		                    "remote:latest)");
	if ((rc = bump_finish(&bf, path_cmd)))
		return rc;
	kt_backup_config cfg = { .dir = sf.dir };
	if ((rc = kt_cli_export_finish(&sf.xf, &cfg, path_cmd)))
		return rc;
	kt_cli_catch_signals();
	cfg.etcd.cancel = &kt_cli_cancel;
	kt_error err;
	kt_error_clear(&err);

	kt_etcd_member_flags m;
	memset(&m, 0, sizeof(m));
	const char *mpath = manifest ? manifest : DEFAULT_MANIFEST;
	struct stat st;
	if (manifest ? *manifest != '\0' : stat(mpath, &st) == 0) {
		kt_code c = kt_etcdbackup_manifest_member(mpath, &m, &err);
		if (c)
			return kt_cli_fail(&err);
	}
#define OVERRIDE(field, val) do { if ((val) && (size_t)snprintf(m.field, sizeof(m.field), "%s", \
		val) >= sizeof(m.field)) return kt_cli_usage(path_cmd, "'%.40s...' is too long", val); \
	} while (0)
	OVERRIDE(name, name);
	OVERRIDE(data_dir, data_dir);
	OVERRIDE(initial_cluster, icluster);
	OVERRIDE(peer_urls, peer);
	OVERRIDE(token, token);
#undef OVERRIDE
	if (!m.data_dir[0])
		return kt_cli_usage(path_cmd, "--data-dir is required (no manifest%s%s to take it "
		                    "from)", manifest && !*manifest ? "" : " at ",
		                    manifest && !*manifest ? "" : mpath);

	kt_restore_source src;
	kt_code c = kt_etcdbackup_resolve_source(&cfg, from, dry_run, &src, &err);
	if (c)
		return kt_cli_fail(&err);
	kt_restore_opts ro = { .etcdutl = sf.etcdutl, .data_dir = m.data_dir, .member = &m,
	                       .bump_revision = bf.bump, .mark_compacted = bf.bump != 0,
	                       .check_not_running = 1, .cancel = &kt_cli_cancel };
	kt_restore_plan plan;
	if ((c = kt_etcdbackup_restore_plan(&ro, &src, &plan, &err)))
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE)
		print_source(&src);
	if (dry_run) {
		if (g.output == KT_OUT_TABLE) {
			printf("dry run: nothing changed.  Would run:\n ");
			for (size_t i = 0; plan.argv[i]; i++)
				printf(" %s", plan.argv[i]);
			printf("\nthen move %s into place as %s%s%s\n", plan.staging, plan.data_dir,
			       plan.aside[0] ? ", keeping the current one as " : "", plan.aside);
		}
	} else if ((c = kt_etcdbackup_restore_run(&ro, &plan, &err))) {
		return kt_cli_fail(&err);
	}
	if (g.output != KT_OUT_TABLE) {
		json_t *args = json_array();
		for (size_t i = 0; plan.argv[i]; i++)
			json_array_append_new(args, kt_cli_json_text(plan.argv[i]));
		json_t *j = json_pack("{s:o, s:o, s:o, s:o, s:I, s:b, s:o}", "source", source_json(&src),
		                      "dataDir", kt_cli_json_text(plan.data_dir),
		                      "movedAside", plan.aside[0] ? kt_cli_json_text(plan.aside)
		                                                  : json_null(),
		                      "member", kt_cli_json_text(m.name),
		                      "bumpRevision", (json_int_t)bf.bump, "dryRun", dry_run,
		                      "etcdutl", args);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	} else if (!dry_run) {
		printf("restored %s into %s%s%s\n", src.origin, plan.data_dir,
		       m.name[0] ? " as member " : "", m.name);
		if (bf.bump)
			printf("revisions continue above %lld (bumped by %llu and marked compacted)\n",
			       (long long)(src.revision + (int64_t)bf.bump), (unsigned long long)bf.bump);
		if (plan.aside[0])
			printf("the previous data directory is kept as %s\n", plan.aside);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* etcd recover */

static const char recover_help[] =
	"Recover the control plane on this kubeadm-style node (etcd runs as a static\n"
	"pod from --manifest) after quorum loss or a lost database, step by step:\n"
	"  1. check: read the manifest, verify the source, check etcdutl and room on disk\n"
	"  2. stop etcd: move the manifest out of the kubelet's directory (to --stash-dir)\n"
	"     and wait until no etcd process serves the data directory\n"
	"  3. restore the data directory (the old one is kept as DIR.before-restore-<time>)\n"
	"  4. start etcd once with --force-new-cluster; wait until it is healthy\n"
	"  5. put the original manifest back; wait until etcd runs healthy without it\n"
	"Then it prints how to add the other control-plane members back, one at a time.\n"
	"A failure before step 3 puts the manifest back and changes nothing.  --dry-run\n"
	"runs the checks and prints every step without changing anything.\n\n"
	BUMP_HELP "\n";

static const char recover_examples[] =
	"Examples:\n"
	"  kontinuity etcd recover --dry-run\n"
	"  kontinuity etcd recover                      # from the newest local backup\n"
	"  kontinuity etcd recover --from remote:latest --export-config /root/export.yaml\n";

typedef struct step_ctx {
	int last;
	int quiet;
} step_ctx;

static void on_step(void *ctx, int step, const char *text)
{
	step_ctx *s = ctx;
	if (s->quiet)
		return;
	if (step != s->last)
		printf("[%d/5] %s\n", step, text);
	else
		printf("      %s\n", text);
	fflush(stdout);
	s->last = step;
}

/* How to bring the other members back: one `member add` and one restart
 * with --initial-cluster-state=existing each, one member at a time. */
static void print_rejoin(const kt_recover_result *r, const char *endpoint)
{
	const char *ic = r->member.initial_cluster;
	int first = 1;
	char grown[4096];
	snprintf(grown, sizeof(grown), "%s=%s", r->member.name, r->member.peer_urls);
	while (*ic) {
		size_t n = strcspn(ic, ",");
		const char *eq = memchr(ic, '=', n);
		size_t self_len = strlen(r->member.name);
		int self = eq && (size_t)(eq - ic) == self_len && !strncmp(ic, r->member.name, self_len);
		if (eq && !self) {
			int nl = (int)(eq - ic);
			int ul = (int)(n - (size_t)nl - 1);
			if (first)
				printf("\nThe cluster has one member now.  Add the others back one at a time "
				       "(each must be healthy before the next):\n");
			first = 0;
			size_t gl = strlen(grown);
			snprintf(grown + gl, sizeof(grown) - gl, ",%.*s=%.*s", nl, ic, ul, eq + 1);
			printf("\n  %.*s:\n"
			       "    here:     etcdctl --endpoints=%s member add %.*s --peer-urls=%.*s\n"
			       "    on %.*s: move %s out of the manifests directory, move its data "
			       "directory aside,\n"
			       "              set --initial-cluster=%s and --initial-cluster-state=existing"
			       " in it, move it back\n"
			       "    check:    etcdctl --endpoints=%s endpoint health --cluster\n",
			       nl, ic, endpoint, nl, ic, ul, eq + 1, nl, ic, DEFAULT_MANIFEST, grown,
			       endpoint);
		}
		ic += n + (ic[n] == ',');
	}
	if (!first)
		printf("\n(etcdctl needs --cacert/--cert/--key on TLS clusters, as in the manifest.)\n");
}

int kt_cmd_etcd_recover(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd recover";
	kt_globals g = *g0;
	source_flags sf;
	bump_flags bf = { 0 };
	kt_cli_etcd_flags ef;
	const char *from = "latest", *manifest = DEFAULT_MANIFEST, *stash = NULL,
	           *wait_s = "5m";
	int dry_run = 0, no_client_cert = 0;
	kt_opt opts[40];
	kt_cli_etcd_flags_init(&ef, NULL, "/etc/kubernetes/pki/etcd/ca.crt",
	                       "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
	                       "/etc/kubernetes/pki/etcd/healthcheck-client.key");
	const kt_opt own[] = {
		{ "from", 0, "SOURCE", "what to restore (default latest; see SOURCE above)", &from, NULL },
		{ "manifest", 0, "FILE", "etcd static pod manifest (default " DEFAULT_MANIFEST ")",
		  &manifest, NULL },
		{ "stash-dir", 0, "DIR", "where the manifest waits while etcd is stopped (default: "
		  "the parent of its directory)", &stash, NULL },
		{ "wait-timeout", 0, "DURATION", "how long each wait for etcd may take (default 5m)",
		  &wait_s, NULL },
		{ "dry-run", 0, NULL, "check everything and print the steps; change nothing", NULL,
		  &dry_run },
		{ "no-client-cert", 0, NULL, "do not send the default client certificate", NULL,
		  &no_client_cert },
	};
	memcpy(opts, own, sizeof(own));
	kt_opt *o = bump_opts(&bf, opts + sizeof(own) / sizeof(own[0]));
	o = source_opts(&sf, o);
	kt_opt *eo = o;
	o = kt_cli_etcd_opts(&ef, o);
	eo[0].help = "etcd client URL for health checks (default: the manifest's client URL)";
	memset(o, 0, sizeof(*o));
	char help[6144];
	snprintf(help, sizeof(help), "%s%s\n%s", recover_help, source_help, recover_examples);
	char *pos[1];
	int n_pos, done;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "[flags]", help, pos, 0, &n_pos, &g,
	                      &done);
	if (rc || done)
		return rc;
	if ((rc = bump_finish(&bf, path_cmd)))
		return rc;
	kt_error err;
	kt_error_clear(&err);
	int64_t wait_ms;
	if (kt_parse_duration_ms(wait_s, &wait_ms, &err) || wait_ms < 1000)
		return kt_cli_usage(path_cmd, "--wait-timeout must be a duration of at least 1s (got "
		                    "'%s')", wait_s);
	/* The health endpoint: the flag, else the manifest's client URL. */
	kt_etcd_member_flags m;
	kt_code c = kt_etcdbackup_manifest_member(manifest, &m, &err);
	if (c)
		return kt_cli_fail(&err);
	if (!ef.endpoint)
		ef.endpoint = m.client_url[0] ? m.client_url : "https://127.0.0.1:2379";
	if (no_client_cert)
		ef.conn.cert = ef.conn.key = NULL;
	if (!strncmp(ef.endpoint, "http://", 7))
		ef.conn.cacert = ef.conn.cert = ef.conn.key = NULL;
	if ((rc = kt_cli_etcd_finish(&ef, path_cmd)))
		return rc;
	kt_backup_config cfg = { .dir = sf.dir, .etcd = ef.conn };
	cfg.etcd.connect_timeout_ms = 2000;
	cfg.etcd.timeout_ms = 5000;
	if ((rc = kt_cli_export_finish(&sf.xf, &cfg, path_cmd)))
		return rc;
	/* A runbook must not die half-way: SIGHUP (the SSH session dropped) is
	 * ignored, and every SIGINT/SIGTERM only asks for a clean stop. */
	kt_cli_catch_signals_agent();
	cfg.etcd.cancel = &kt_cli_cancel;
	step_ctx sc = { 0, g.output != KT_OUT_TABLE };
	kt_recover_opts ro = { .backup = &cfg, .from = from, .manifest = manifest,
	                       .stash_dir = stash, .etcdutl = sf.etcdutl, .bump_revision = bf.bump,
	                       .mark_compacted = bf.bump != 0, .conn = ef.conn, .wait_ms = wait_ms,
	                       .dry_run = dry_run, .step = on_step, .step_ctx = &sc,
	                       .cancel = &kt_cli_cancel };
	kt_recover_result *res = kt_xcalloc(1, sizeof(*res));
	c = kt_etcdbackup_recover(&ro, res, &err);
	if (g.output != KT_OUT_TABLE) {
		json_t *j = json_pack("{s:b, s:b, s:o, s:o, s:o, s:I, s:f, s:f}", "ok", c == KT_OK,
		                      "dryRun", dry_run, "member", kt_cli_json_text(res->member.name),
		                      "dataDir", kt_cli_json_text(res->member.data_dir),
		                      "source", source_json(&res->src),
		                      "revision", (json_int_t)res->revision,
		                      "seconds", (double)res->duration_ms / 1000.0,
		                      "stoppedAfterSeconds", (double)res->stopped_ms / 1000.0);
		if (res->plan.aside[0])
			json_object_set_new(j, "movedAside", kt_cli_json_text(res->plan.aside));
		if (c) {
			kt_buf clean;
			kt_buf_init(&clean, sizeof(err.msg) * 2);
			kt_redact(&clean, err.msg);
			json_object_set_new(j, "error", json_string(clean.data));
			kt_buf_release(&clean);
		}
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	}
	if (c) {
		free(res);
		return kt_cli_fail(&err);
	}
	if (g.output == KT_OUT_TABLE) {
		if (dry_run)
			printf("dry run: every check passed; nothing was changed\n");
		else
			printf("recovered in %.1fs: etcd serves revision %lld from %s\n",
			       (double)res->duration_ms / 1000.0, (long long)res->revision,
			       res->src.origin);
		print_rejoin(res, ef.endpoint);
	}
	free(res);
	return 0;
}

/* ------------------------------------------------------------------ */
/* etcd drill */

static const char drill_help[] =
	"Prove that a backup restores: restore it into a temporary directory, start a\n"
	"throwaway etcd on loopback, check that its revision and key count equal the\n"
	"snapshot's, that every Kubernetes resource has as many objects as the\n"
	"snapshot's census, and read a sample of objects back; then stop it and remove\n"
	"the directory.  Prints PASS or FAIL and the time taken; exit status 0 for\n"
	"PASS, 3 for FAIL, 1 when the drill could not run.  The agent runs one every\n"
	"--drill-every backups.\n\n";

static const char drill_examples[] =
	"Examples:\n"
	"  kontinuity etcd drill latest\n"
	"  kontinuity etcd drill /etc/kubernetes/zadara/etcd_backup_cp1_i-0abc_20261127T080000Z.db\n"
	"  kontinuity etcd drill remote:latest --export-config /root/export.yaml -o json\n";

int kt_cmd_etcd_drill(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd drill";
	kt_globals g = *g0;
	source_flags sf;
	const char *etcd = NULL, *work = NULL, *sample_s = "20", *timeout_s = "60s";
	kt_opt opts[24];
	const kt_opt own[] = {
		{ "etcd", 0, "PATH", "etcd binary (default: etcd on PATH)", &etcd, NULL },
		{ "work-dir", 0, "DIR", "where the temporary data directory goes (default $TMPDIR "
		  "or /tmp)", &work, NULL },
		{ "sample", 0, "N", "Kubernetes objects to read back (default 20)", &sample_s, NULL },
		{ "start-timeout", 0, "DURATION", "how long etcd may take to start (default 60s)",
		  &timeout_s, NULL },
	};
	memcpy(opts, own, sizeof(own));
	kt_opt *o = source_opts(&sf, opts + sizeof(own) / sizeof(own[0]));
	memset(o, 0, sizeof(*o));
	char help[4096];
	snprintf(help, sizeof(help), "%s%s\n%s", drill_help, source_help, drill_examples);
	char *pos[2];
	int n_pos, done;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "SOURCE [flags]", help, pos, 1, &n_pos,
	                      &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path_cmd, "give one SOURCE: a file, latest or remote:latest");
	char *end;
	unsigned long sample = strtoul(sample_s, &end, 10);
	if (*end || !*sample_s || sample < 1 || sample > 100000)
		return kt_cli_usage(path_cmd, "--sample must be a number from 1 (got '%s')", sample_s);
	kt_error err;
	kt_error_clear(&err);
	int64_t timeout_ms;
	if (kt_parse_duration_ms(timeout_s, &timeout_ms, &err) || timeout_ms < 1000)
		return kt_cli_usage(path_cmd, "--start-timeout must be at least 1s (got '%s')",
		                    timeout_s);
	kt_backup_config cfg = { .dir = sf.dir };
	if ((rc = kt_cli_export_finish(&sf.xf, &cfg, path_cmd)))
		return rc;
	kt_cli_catch_signals();
	cfg.etcd.cancel = &kt_cli_cancel;
	kt_restore_source src;
	kt_code c = kt_etcdbackup_resolve_source(&cfg, pos[0], 0, &src, &err);
	if (c)
		return kt_cli_fail(&err);
	if (g.output == KT_OUT_TABLE)
		print_source(&src);
	kt_drill_opts d = { .etcd = etcd, .etcdutl = sf.etcdutl, .work_dir = work,
	                    .sample = (unsigned)sample, .start_timeout_ms = timeout_ms,
	                    .cancel = &kt_cli_cancel };
	kt_drill_result r;
	if ((c = kt_etcdbackup_drill(&d, &src, &r, &err)))
		return kt_cli_fail(&err);
	json_t *checks = json_array();
	for (size_t i = 0; i < r.n_checks; i++)
		json_array_append_new(checks, json_pack("{s:s, s:s, s:s}", "check", r.checks[i].name,
		                                        "result", r.checks[i].ok ? "ok" : "FAIL",
		                                        "detail", r.checks[i].detail));
	if (g.output != KT_OUT_TABLE) {
		json_t *j = json_pack("{s:s, s:f, s:o, s:o, s:I, s:I, s:I, s:I, s:i, s:i, s:s}",
		                      "result", r.pass ? "PASS" : "FAIL",
		                      "seconds", (double)r.duration_ms / 1000.0,
		                      "source", source_json(&src), "checks", json_incref(checks),
		                      "revisionExpected", (json_int_t)r.revision_expected,
		                      "revision", (json_int_t)r.revision_got,
		                      "keysExpected", (json_int_t)r.keys_expected,
		                      "keys", (json_int_t)r.keys_got, "resources", (int)r.n_resources,
		                      "sampled", (int)r.n_sampled, "etcdVersion", r.etcd_version);
		kt_cli_print(j, g.output, NULL, 0);
		json_decref(j);
	} else {
		static const kt_column cols[] = {
			{ "CHECK", "check" }, { "RESULT", "result" }, { "DETAIL", "detail" },
		};
		kt_cli_print(checks, g.output, cols, sizeof(cols) / sizeof(cols[0]));
		printf("%s in %.1fs\n", r.pass ? "PASS" : "FAIL", (double)r.duration_ms / 1000.0);
	}
	json_decref(checks);
	return r.pass ? 0 : 3;
}
