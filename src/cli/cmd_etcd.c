/*
 * cmd_etcd.c - the `etcd` command group: snapshot save, status, verify.
 *
 * save is kt_etcdbackup_save (src/etcdbackup/save.c) with a progress bar;
 * the etcd connection flags here are shared with `etcd backup`.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "etcd/etcd.h"
#include "etcdbackup/etcdbackup.h"
#include "snapshot/snapshot.h"

/* ------------------------------------------------------------------ */
/* etcd connection flags, shared by save, backup and agent */

void kt_cli_etcd_flags_init(kt_cli_etcd_flags *f, const char *endpoint, const char *cacert,
                            const char *cert, const char *key)
{
	memset(f, 0, sizeof(*f));
	f->endpoint = endpoint;
	f->conn.cacert = cacert;
	f->conn.cert = cert;
	f->conn.key = key;
}

kt_opt *kt_cli_etcd_opts(kt_cli_etcd_flags *f, kt_opt *o)
{
	const kt_opt list[] = {
		{ "endpoint", 0, "URL", "etcd client URL", &f->endpoint, NULL },
		{ "cacert", 0, "FILE", "CA bundle that signed the server certificate", &f->conn.cacert, NULL },
		{ "cert", 0, "FILE", "client certificate (PEM) for client-cert-auth", &f->conn.cert, NULL },
		{ "key", 0, "FILE", "client private key (PEM)", &f->conn.key, NULL },
		{ "user", 0, "NAME:PASSWORD", "etcd user when auth is enabled (needs the root role); "
		  "or set KONTINUITY_ETCD_USER, which other users cannot read in ps", &f->conn.user, NULL },
		{ "timeout", 0, "DURATION", "give up after this long, e.g. 10m (default: no limit)",
		  &f->timeout, NULL },
		{ "connect-timeout", 0, "DURATION", "time allowed to connect (default 10s)",
		  &f->connect_timeout, NULL },
	};
	memcpy(o, list, sizeof(list));
	return o + sizeof(list) / sizeof(list[0]);
}

void kt_cli_export_flags_init(kt_cli_export_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->kube.kubeconfig = "/etc/kubernetes/admin.conf";
	f->cluster_name = "kubernetes";
	f->export_secret = "kube-system/zadara-backup-export";
}

kt_opt *kt_cli_export_opts(kt_cli_export_flags *f, kt_opt *o)
{
	o = kt_cli_kube_opts(&f->kube, o, "kubeconfig to read the export Secret and cluster id "
	                     "(default /etc/kubernetes/admin.conf; empty: none)");
	const kt_opt list[] = {
		{ "export-secret", 0, "NS/NAME", "Secret holding the export settings (default "
		  "kube-system/zadara-backup-export)", &f->export_secret, NULL },
		{ "export-config", 0, "FILE", "YAML map of backup_* export keys, instead of the "
		  "Secret (BACKUP_* environment variables work too)", &f->export_config, NULL },
		{ "cluster-name", 0, "NAME", "bucket folder is <cluster-id>-<cluster-name> (default "
		  "kubernetes)", &f->cluster_name, NULL },
		{ "cluster-id", 0, "ID", "cluster id (default: the kube-system namespace UID)",
		  &f->cluster_id, NULL },
	};
	memcpy(o, list, sizeof(list));
	return o + sizeof(list) / sizeof(list[0]);
}

int kt_cli_export_finish(kt_cli_export_flags *f, kt_backup_config *cfg, const char *path_cmd)
{
	const char *slash = strchr(f->export_secret, '/');
	if (!slash || slash == f->export_secret || !slash[1] ||
	    (size_t)(slash - f->export_secret) >= sizeof(f->secret_ns) ||
	    strlen(slash + 1) >= sizeof(f->secret_name))
		return kt_cli_usage(path_cmd, "--export-secret must be NAMESPACE/NAME");
	snprintf(f->secret_ns, sizeof(f->secret_ns), "%.*s", (int)(slash - f->export_secret),
	         f->export_secret);
	snprintf(f->secret_name, sizeof(f->secret_name), "%s", slash + 1);
	cfg->kubeconfig = f->kube.kubeconfig;
	cfg->kube_context = f->kube.context;
	cfg->export_config = f->export_config;
	cfg->secret_namespace = f->secret_ns;
	cfg->secret_name = f->secret_name;
	cfg->cluster_name = f->cluster_name;
	cfg->cluster_id = f->cluster_id;
	return 0;
}

int kt_cli_etcd_finish(kt_cli_etcd_flags *f, const char *path_cmd)
{
	const char *endpoint = f->endpoint;
	if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8))
		return kt_cli_usage(path_cmd, "endpoint '%s' must start with http:// or https://", endpoint);
	const char *authority = strstr(endpoint, "://") + 3;
	if (memchr(authority, '@', strcspn(authority, "/")))
		return kt_cli_usage(path_cmd, "the endpoint must not carry credentials; "
		                    "give them with --user NAME:PASSWORD");
	if ((f->conn.cert != NULL) != (f->conn.key != NULL))
		return kt_cli_usage(path_cmd, "--cert and --key go together");
	if (!f->conn.user && getenv("KONTINUITY_ETCD_USER") && *getenv("KONTINUITY_ETCD_USER"))
		f->conn.user = getenv("KONTINUITY_ETCD_USER");  /* keeps the password out of ps */
	if (f->conn.user) {
		const char *colon = strchr(f->conn.user, ':');
		if (!colon || colon == f->conn.user)
			return kt_cli_usage(path_cmd, "--user must be NAME:PASSWORD");
		kt_log_add_secret(colon + 1);
	}
	kt_error err;
	kt_error_clear(&err);
	if (f->timeout && kt_parse_duration_ms(f->timeout, &f->conn.timeout_ms, &err))
		return kt_cli_usage(path_cmd, "--timeout: %s", err.msg);
	if (f->connect_timeout &&
	    kt_parse_duration_ms(f->connect_timeout, &f->conn.connect_timeout_ms, &err))
		return kt_cli_usage(path_cmd, "--connect-timeout: %s", err.msg);
	f->conn.endpoint = endpoint;
	f->conn.cancel = &kt_cli_cancel;
	return 0;
}

/* ------------------------------------------------------------------ */
/* save */

typedef struct progress_ctx {
	kt_progress progress;
	int64_t last_draw_ms;
} progress_ctx;

static void draw_progress(void *ctx, uint64_t done, uint64_t remaining)
{
	progress_ctx *p = ctx;
	p->progress.done = done;
	p->progress.remaining = remaining;
	int64_t now = kt_now_ms();
	if (now - p->last_draw_ms < 100)
		return;
	p->last_draw_ms = now;
	char line[160];
	kt_progress_format(&p->progress, line, sizeof(line));
	fprintf(stderr, "\r\033[Ksaving snapshot %s", line);
	fflush(stderr);
}

static const char save_help[] =
	"Stream a snapshot of a live etcd member over its gRPC API (no etcdctl needed)\n"
	"into FILE.  The bytes go to FILE.part (mode 0600) and are hashed as they\n"
	"arrive; then the file is flushed to disk, its SHA-256 trailer and every\n"
	"bbolt page are checked, and only then is it renamed to FILE.  An existing\n"
	"FILE is never overwritten; a failed or interrupted save leaves nothing.\n"
	"The file holds exactly the bytes etcd streamed, as `etcdctl snapshot save`\n"
	"writes them, so `etcdutl snapshot restore` takes it as it is.\n\n"
	"http:// endpoints use cleartext HTTP/2; https:// endpoints use TLS with\n"
	"certificate verification always on.\n\n"
	"Examples:\n"
	"  kontinuity etcd snapshot save snap.db\n"
	"  kontinuity etcd snapshot save /backup/etcd.db --endpoint https://127.0.0.1:2379 \\\n"
	"      --cacert /etc/kubernetes/pki/etcd/ca.crt \\\n"
	"      --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt \\\n"
	"      --key /etc/kubernetes/pki/etcd/healthcheck-client.key\n"
	"  KONTINUITY_ETCD_USER=root:secret kontinuity etcd snapshot save snap.db --timeout 10m -o json\n";

int kt_cmd_etcd_snapshot_save(int argc, char **argv, const kt_globals *g0)
{
	const char *path_cmd = "etcd snapshot save";
	kt_globals g = *g0;
	kt_cli_etcd_flags ef;
	kt_cli_etcd_flags_init(&ef, "http://127.0.0.1:2379", NULL, NULL, NULL);
	kt_opt opts[16];
	memset(kt_cli_etcd_opts(&ef, opts), 0, sizeof(kt_opt));
	opts[0].help = "etcd client URL (default http://127.0.0.1:2379)";
	char *pos[1];
	int n_pos, done;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "FILE [flags]", save_help, pos, 1,
	                      &n_pos, &g, &done);
	if (rc || done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path_cmd, "expected the output FILE");
	if ((rc = kt_cli_etcd_finish(&ef, path_cmd)))
		return rc;

	const char *file = pos[0];
	kt_cli_catch_signals();
	kt_error err;
	kt_error_clear(&err);
	progress_ctx pc;
	memset(&pc, 0, sizeof(pc));
	kt_progress_init(&pc.progress);
	int show = isatty(STDERR_FILENO) && g.output == KT_OUT_TABLE;
	kt_log(KT_LOG_INFO, "saving snapshot from %s into '%s'", ef.endpoint, file);
	kt_save_result res;
	kt_code c = kt_etcdbackup_save(&ef.conn, file, show ? draw_progress : NULL, &pc, &res, &err);
	if (show) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
	if (c)
		return kt_cli_fail(&err);

	double secs = (double)res.duration_ms / 1000.0;
	json_t *o = json_pack("{s:o, s:I, s:I, s:s, s:s, s:f, s:b}",
	                      "file", kt_cli_json_text(file), "size", (json_int_t)res.size,
	                      "revision", (json_int_t)res.revision, "sha256", res.sha256,
	                      "version", res.version, "seconds", secs, "verified", 1);
	if (g.output == KT_OUT_TABLE) {
		char human[32];
		printf("Snapshot saved to %s\n  size      %s (%llu bytes)\n  revision  %lld\n"
		       "  sha256    %s\n  verified  yes (SHA-256 trailer and every bbolt page)\n"
		       "  took      %.1fs\n",
		       file, kt_human_bytes(res.size, human), (unsigned long long)res.size,
		       (long long)res.revision, res.sha256, secs);
	} else {
		kt_cli_print(o, g.output, NULL, 0);
	}
	json_decref(o);
	return 0;
}

/* ------------------------------------------------------------------ */
/* status */

/* Commands that take one snapshot FILE and only the global flags. */
static int parse_file_arg(int argc, char **argv, const char *path_cmd, const char *help,
                          kt_globals *g, char **file, int *done)
{
	const kt_opt opts[] = { { NULL, 0, NULL, NULL, NULL, NULL } };
	int n_pos;
	int rc = kt_cli_parse(argc, argv, opts, path_cmd, "FILE [flags]", help, file, 1, &n_pos,
	                      g, done);
	if (rc || *done)
		return rc;
	if (n_pos != 1)
		return kt_cli_usage(path_cmd, "expected the snapshot FILE");
	return 0;
}

static const char status_help[] =
	"Print the hash, revision, total keys, total size and storage version of an\n"
	"etcd snapshot file (or a raw member/snap/db), the same numbers that\n"
	"`etcdutl snapshot status` prints, read by kontinuity's own bbolt walker.\n"
	"The file is checked for consistency first; a corrupt file exits with 3.\n\n"
	"Examples:\n"
	"  kontinuity etcd snapshot status snap.db\n"
	"  kontinuity etcd snapshot status snap.db -o json\n";

static json_t *status_json(const kt_snapshot_stat *st)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:o}", "hash", (json_int_t)st->hash,
	                 "revision", (json_int_t)st->revision, "totalKey", (json_int_t)st->total_key,
	                 "totalSize", (json_int_t)st->total_size,
	                 "version", kt_cli_json_text(st->version));
}

int kt_cmd_etcd_snapshot_status(int argc, char **argv, const kt_globals *g0)
{
	kt_globals g = *g0;
	char *pos[1];
	int done, rc = parse_file_arg(argc, argv, "etcd snapshot status", status_help, &g, pos, &done);
	if (rc || done)
		return rc;
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_stat st;
	memset(&st, 0, sizeof(st));
	if (kt_snapshot_status(pos[0], &st, &err))
		return kt_cli_fail(&err);
	json_t *o = status_json(&st);
	if (g.output == KT_OUT_TABLE) {
		char hash[16], size[32];
		snprintf(hash, sizeof(hash), "%x", st.hash);
		kt_human_bytes(st.total_size, size);
		json_t *ver = json_object_get(o, "version");
		json_t *row = json_pack("{s:s, s:I, s:I, s:s, s:s}", "hash", hash,
		                        "revision", (json_int_t)st.revision,
		                        "totalKey", (json_int_t)st.total_key, "totalSize", size,
		                        "version", st.version[0] ? json_string_value(ver) : "-");
		static const kt_column cols[] = {
			{ "HASH", "hash" }, { "REVISION", "revision" }, { "TOTAL KEYS", "totalKey" },
			{ "TOTAL SIZE", "totalSize" }, { "VERSION", "version" },
		};
		kt_cli_print(row, g.output, cols, 5);
		json_decref(row);
	} else {
		kt_cli_print(o, g.output, NULL, 0);
	}
	json_decref(o);
	return 0;
}

/* ------------------------------------------------------------------ */
/* verify */

static const char verify_help[] =
	"Check an etcd snapshot file thoroughly: the SHA-256 trailer (or say there is\n"
	"none, for a raw db), every bbolt page (meta checksums, page bounds, overflow\n"
	"pages, no cycles, freelist against reachable pages, key order), the etcd\n"
	"buckets (revision keys, consistent_index in meta), then list the Kubernetes\n"
	"objects it holds, counted by resource.  Exits 3 naming the first fault.\n\n"
	"Examples:\n"
	"  kontinuity etcd snapshot verify snap.db\n"
	"  kontinuity etcd snapshot verify /var/lib/etcd/member/snap/db -o yaml\n";

static const char *trailer_name(kt_trailer t)
{
	return t == KT_TRAILER_OK ? "sha256-ok" : t == KT_TRAILER_BAD ? "sha256-mismatch" : "none";
}

static json_t *report_json(const kt_snapshot_report *r, const char *file, const kt_error *err)
{
	json_t *res = json_object();
	for (size_t i = 0; i < r->n_resources; i++) {
		json_t *name = kt_cli_json_text(r->resources[i].resource);
		json_object_set_new(res, json_string_value(name),
		                    json_integer((json_int_t)r->resources[i].count));
		json_decref(name);
	}
	json_t *o = json_pack("{s:o, s:b, s:o, s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:b, s:I, s:I}, "
	                      "s:{s:I, s:I}, s:I, s:o}",
	                      "file", kt_cli_json_text(file), "ok", err->code == KT_OK,
	                      "fault", err->code ? kt_cli_json_text(err->msg) : json_null(),
	                      "trailer", trailer_name(r->trailer),
	                      "fileSize", (json_int_t)r->file_size,
	                      "status", status_json(&r->status),
	                      "bbolt", "pageSize", (json_int_t)r->page_size,
	                      "pages", (json_int_t)r->n_pages, "reachable", (json_int_t)r->n_reachable,
	                      "free", (json_int_t)r->n_free, "freelistSynced", r->has_freelist,
	                      "txid", (json_int_t)r->txid, "buckets", (json_int_t)r->n_buckets,
	                      "etcd", "consistentIndex", (json_int_t)r->consistent_index,
	                      "term", (json_int_t)r->term,
	                      "kubernetesObjects", (json_int_t)r->n_kube_objects,
	                      "resources", res);
	return o;
}

int kt_cmd_etcd_snapshot_verify(int argc, char **argv, const kt_globals *g0)
{
	kt_globals g = *g0;
	char *pos[1];
	int done, rc = parse_file_arg(argc, argv, "etcd snapshot verify", verify_help, &g, pos, &done);
	if (rc || done)
		return rc;
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_report r;
	memset(&r, 0, sizeof(r));
	kt_code c = kt_snapshot_verify(pos[0], &r, &err);
	if (c && c != KT_ECORRUPT) {
		kt_snapshot_report_release(&r);
		return kt_cli_fail(&err);
	}
	if (g.output != KT_OUT_TABLE) {
		json_t *o = report_json(&r, pos[0], &err);
		kt_cli_print(o, g.output, NULL, 0);
		json_decref(o);
		if (c)
			kt_cli_fail(&err);
	} else if (c) {
		kt_cli_fail(&err);
	} else {
		char size[32];
		printf("snapshot '%s': OK\n", pos[0]);
		if (r.trailer == KT_TRAILER_OK)
			printf("  trailer    SHA-256 matches\n");
		else
			printf("  trailer    none (a raw bbolt database, not a streamed snapshot)\n");
		printf("  bbolt      %s, %u-byte pages: %llu pages, %llu reachable, %llu free%s, txid %llu\n",
		       kt_human_bytes(r.status.total_size, size), r.page_size,
		       (unsigned long long)r.n_pages, (unsigned long long)r.n_reachable,
		       (unsigned long long)r.n_free, r.has_freelist ? "" : " (freelist not synced)",
		       (unsigned long long)r.txid);
		printf("  etcd       revision %lld, consistent index %llu, term %llu, %llu keys, "
		       "storage version %s\n",
		       (long long)r.status.revision, (unsigned long long)r.consistent_index,
		       (unsigned long long)r.term, (unsigned long long)r.status.total_key,
		       r.status.version[0] ? r.status.version : "(before 3.6)");
		printf("  hash       %x (as etcdutl snapshot status)\n", r.status.hash);
		printf("\nKubernetes objects: %llu\n", (unsigned long long)r.n_kube_objects);
		if (r.n_resources) {
			json_t *rows = json_array();
			for (size_t i = 0; i < r.n_resources; i++)
				json_array_append_new(rows, json_pack("{s:o, s:I}", "resource",
				                                      kt_cli_json_text(r.resources[i].resource), "count",
				                                      (json_int_t)r.resources[i].count));
			static const kt_column cols[] = { { "RESOURCE", "resource" }, { "COUNT", "count" } };
			kt_cli_print(rows, KT_OUT_TABLE, cols, 2);
			json_decref(rows);
		}
	}
	kt_snapshot_report_release(&r);
	return kt_code_exit(c);
}
