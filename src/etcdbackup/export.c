/*
 * export.c - the export stage of a backup cycle: every verified local
 * backup of this node that is not yet in object storage goes out, oldest
 * first, then remote retention.
 *
 * Where to export is re-read every cycle, first found wins:
 *   1. --export-config FILE (a YAML map of the keys below),
 *   2. environment variables BACKUP_ENDPOINT, BACKUP_BUCKET, ... (upper case),
 *   3. the Secret kube-system/zadara-backup-export read with the node's
 *      kubeconfig,
 * with keys backup_access_key_id, backup_secret_access_key, backup_region,
 * backup_endpoint, backup_bucket and optionally backup_ca_bundle (PEM).  No
 * target is not an error: exports start at the first cycle that finds one.
 *
 * Objects: <bucket>/<cluster-id>-<cluster-name>/<backup file name>, with
 * x-amz-meta-{node,instance,revision,sha256}.  After the upload a HEAD
 * must show the same size and sha256 before the index marks the file
 * exported; an upload that fails leaves it un-exported for the next cycle.
 * A backup that could not be exported never blocks the next local backup.
 *
 * The way back (kt_etcdbackup_fetch_remote): list the folder, pick the
 * newest object or the one named, GET it into <dir>/<name>.part while
 * hashing, and keep it only when size and SHA-256 match the object's
 * metadata.  With the cluster down and no cached id, the folder is found by
 * listing the bucket for "*-<cluster-name>/".
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"
#include "kube/kube.h"
#include "s3/s3.h"

static const char *const keys[] = {
	"backup_access_key_id", "backup_secret_access_key", "backup_region",
	"backup_endpoint", "backup_bucket", "backup_ca_bundle",
};
enum { K_ACCESS, K_SECRET, K_REGION, K_ENDPOINT, K_BUCKET, K_CA, N_KEYS };

typedef struct target {
	char *v[N_KEYS];
	char source[160];
} target;

static void target_release(target *t)
{
	for (int i = 0; i < N_KEYS; i++) {
		if (t->v[i])
			memset(t->v[i], 0, strlen(t->v[i]));
		free(t->v[i]);
		t->v[i] = NULL;
	}
}

static int key_index(const char *k)
{
	for (int i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i], k))
			return i;
	return -1;
}

static kt_code target_check(target *t, kt_error *err)
{
	for (int i = K_ACCESS; i <= K_BUCKET; i++)
		if (i != K_REGION && (!t->v[i] || !*t->v[i]))
			return kt_error_set(err, KT_EUSAGE, "export configuration from %s lacks '%s'",
			                    t->source, keys[i]);
	if (t->v[K_SECRET])
		kt_log_add_secret(t->v[K_SECRET]);
	return KT_OK;
}

/* 1 when a target was found (t filled), 0 when none is configured. */
static int find_target(const kt_backup_config *cfg, kt_kube **kube, target *t, kt_error *err,
                       kt_code *rc)
{
	*rc = KT_OK;
	memset(t, 0, sizeof(*t));
	if (cfg->export_config && *cfg->export_config) {
		kt_config c;
		if ((*rc = kt_config_load(&c, cfg->export_config, err)))
			return 0;
		for (size_t i = 0; i < c.n; i++) {
			int k = key_index(c.keys[i]);
			if (k < 0) {
				*rc = kt_error_set(err, KT_EUSAGE, "export config '%s': unknown key '%s'",
				                   cfg->export_config, c.keys[i]);
				kt_config_release(&c);
				target_release(t);
				return 0;
			}
			t->v[k] = kt_xstrdup(c.values[i]);
		}
		kt_config_release(&c);
		snprintf(t->source, sizeof(t->source), "file '%s'", cfg->export_config);
		*rc = target_check(t, err);
		return *rc == KT_OK;
	}
	if (getenv("BACKUP_BUCKET") && *getenv("BACKUP_BUCKET")) {
		for (int k = 0; k < N_KEYS; k++) {
			char name[64];
			size_t n = strlen(keys[k]);
			for (size_t j = 0; j <= n; j++)
				name[j] = (char)(keys[k][j] >= 'a' && keys[k][j] <= 'z' ? keys[k][j] - 32
				                                                     : keys[k][j]);
			const char *v = getenv(name);
			if (v && *v)
				t->v[k] = kt_xstrdup(v);
		}
		snprintf(t->source, sizeof(t->source), "the environment (BACKUP_*)");
		*rc = target_check(t, err);
		return *rc == KT_OK;
	}
	if (!*kube)
		return 0;
	kt_kube_secret *s = NULL;
	kt_error kerr;
	kt_code c = kt_kube_get_secret(*kube, cfg->secret_namespace, cfg->secret_name, &s, &kerr);
	if (c == KT_ENOTFOUND) {
		kt_log(KT_LOG_INFO, "export not configured: no Secret %s/%s yet",
		       cfg->secret_namespace, cfg->secret_name);
		return 0;
	}
	if (c) {
		*rc = kt_error_set(err, c, "cannot read the export Secret %s/%s: %s",
		                   cfg->secret_namespace, cfg->secret_name, kerr.msg);
		return 0;
	}
	for (size_t i = 0; i < s->n_items; i++) {
		int k = key_index(s->items[i].key);
		if (k >= 0 && strlen(s->items[i].value) == s->items[i].len)
			t->v[k] = kt_xstrdup(s->items[i].value);
	}
	kt_kube_secret_free(s);
	snprintf(t->source, sizeof(t->source), "Secret %s/%s", cfg->secret_namespace,
	         cfg->secret_name);
	*rc = target_check(t, err);
	return *rc == KT_OK;
}

/* The bucket folder: <cluster-id>-<cluster-name>.  The id is cached in the
 * index so exports go on while the API server is down. */
static kt_code cluster_prefix(const kt_backup_config *cfg, kt_kube *kube, json_t *idx,
                              char *out, size_t outlen, kt_error *err)
{
	const char *id = cfg->cluster_id && *cfg->cluster_id ? cfg->cluster_id : NULL;
	char *uid = NULL;
	if (!id && kube) {
		kt_error kerr;
		if (kt_kube_namespace_uid(kube, "kube-system", &uid, &kerr) == KT_OK) {
			json_object_set_new(idx, "clusterId", json_string(uid));
			id = uid;
		} else {
			kt_log(KT_LOG_INFO, "cannot read the kube-system namespace UID: %s", kerr.msg);
		}
	}
	if (!id)
		id = json_string_value(json_object_get(idx, "clusterId"));
	char etcd_id[32];
	if (!id && cfg->etcd.endpoint) {
		/* Last resort, so a backup never depends on the API server: etcd's
		 * own cluster id, as etcdctl prints it (hex). */
		kt_etcd_status_msg st;
		kt_error eerr;
		if (kt_etcd_status(&cfg->etcd, &st, &eerr) == KT_OK && st.header.cluster_id) {
			snprintf(etcd_id, sizeof(etcd_id), "%016llx",
			         (unsigned long long)st.header.cluster_id);
			json_object_set_new(idx, "clusterId", json_string(etcd_id));
			id = etcd_id;
			kt_log(KT_LOG_WARN, "using etcd's cluster id %s for the bucket folder (the API "
			       "server did not answer; pass --cluster-id to choose)", etcd_id);
		}
	}
	if (!id) {
		free(uid);
		return kt_error_set(err, KT_EUSAGE, "cannot tell the cluster id for the bucket folder: "
		                    "neither the API server nor etcd answered and none is cached "
		                    "(pass --cluster-id)");
	}
	snprintf(out, outlen, "%s-%s", id, cfg->cluster_name && *cfg->cluster_name
	                                       ? cfg->cluster_name : "kubernetes");
	free(uid);
	return KT_OK;
}

static void export_log(const kt_backup_config *cfg, const char *node, const char *file,
                       const char *object, uint64_t size, int64_t ms, kt_code c,
                       const kt_error *err)
{
	char iso[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	kt_buf clean, text;
	kt_buf_init(&clean, 1 << 16);
	kt_buf_init(&text, 1 << 16);
	if (c)
		kt_redact(&clean, err->msg);
	kt_buf_addf(&text, NULL, "export node=%s file=%s object=%s size=%llu duration=%.2fs outcome=%s",
	            node, file, object, (unsigned long long)size, (double)ms / 1000.0,
	            c ? "failed" : "ok");
	if (c)
		kt_buf_addf(&text, NULL, " error=\"%s\"", clean.data);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:s}", "time", iso,
	                      "event", "export", "node", node, "file", file, "object", object,
	                      "size", (json_int_t)size, "duration", (double)ms / 1000.0,
	                      "outcome", c ? "failed" : "ok");
	if (o && c)
		json_object_set_new(o, "error", json_string(clean.data));
	kt_log(c ? KT_LOG_ERROR : KT_LOG_INFO, "%s", text.data);
	kt_backup_log_append(cfg, iso, o, text.data);
	json_decref(o);
	kt_buf_release(&clean);
	kt_buf_release(&text);
}

typedef struct remote_list {
	char **keys;
	size_t n, cap;
	const char *node_prefix;   /* "<folder>/etcd_backup_<node>_" */
	const char *node;
} remote_list;

static kt_code collect(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	remote_list *l = ctx;
	char *node = NULL;
	char t[32];
	const char *base = strrchr(e->key, '/');
	base = base ? base + 1 : e->key;
	if (!kt_backup_parse_name(base, &node, NULL, t))
		return KT_OK;
	/* The prefix alone would also match node "cp_2" for node "cp": compare
	 * the node parsed from the name. */
	int mine = !strncmp(e->key, l->node_prefix, strlen(l->node_prefix)) &&
	           !strchr(e->key + strlen(l->node_prefix), '/') && !strcmp(node, l->node);
	free(node);
	if (!mine)
		return KT_OK;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **k = realloc(l->keys, cap * sizeof(char *));
		if (!k)
			return kt_error_set(err, KT_ENOMEM, "out of memory listing the bucket");
		l->keys = k;
		l->cap = cap;
	}
	l->keys[l->n++] = kt_xstrdup(e->key);
	return KT_OK;
}

static int by_time_suffix(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);
	/* ..._YYYYMMDDTHHMMSSZ.db: compare the time, then the whole key. */
	int c = lx >= 19 && ly >= 19 ? strcmp(x + lx - 19, y + ly - 19) : 0;
	return c ? c : strcmp(x, y);
}

static unsigned remote_retention(const kt_backup_config *cfg, kt_s3 *s3, const char *folder,
                                 const char *node)
{
	char prefix[1024];
	snprintf(prefix, sizeof(prefix), "%s/etcd_backup_%s_", folder, node);
	remote_list l = { NULL, 0, 0, prefix, node };
	kt_error err;
	unsigned deleted = 0;
	if (kt_s3_list(s3, prefix, 1000, collect, &l, NULL, &err) == KT_OK && l.n) {
		qsort(l.keys, l.n, sizeof(char *), by_time_suffix);
		unsigned keep = cfg->keep_remote ? cfg->keep_remote : 1;
		for (size_t i = 0; i + keep < l.n; i++) {
			if (kt_s3_delete(s3, l.keys[i], &err) == KT_OK) {
				deleted++;
				kt_log(KT_LOG_INFO, "remote retention: removed %s (keeping the newest %u)",
				       l.keys[i], keep);
			} else {
				kt_log(KT_LOG_WARN, "remote retention: %s", err.msg);
			}
		}
	} else if (l.n == 0) {
		kt_log(KT_LOG_DEBUG, "remote retention: nothing under %s", prefix);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.keys[i]);
	free(l.keys);
	return deleted;
}

/* Everything between "is there a target?" and a ready S3 client: the
 * node's kubeconfig, the target, the bucket folder, the CA bundle file.
 * *found = 0 (and KT_OK) when no target is configured.  On success the
 * caller owns *s3 and t, and removes ca_path when it is set. */
static kt_code connect_target(const kt_backup_config *cfg, json_t *idx, const char *ca_name,
                              target *t, char *folder, size_t folder_len, char *ca_path,
                              size_t ca_len, kt_s3 **s3, int *found, kt_error *err)
{
	*found = 0;
	*s3 = NULL;
	ca_path[0] = '\0';
	folder[0] = '\0';
	kt_kube *kube = NULL;
	if (cfg->kubeconfig && *cfg->kubeconfig && access(cfg->kubeconfig, R_OK) == 0) {
		kt_kube_config kc;
		kt_error kerr;
		kt_kube_opts ko = { .timeout_ms = 10000, .connect_timeout_ms = 3000,
		                    .cancel = cfg->etcd.cancel };
		if (kt_kube_config_load(&kc, cfg->kubeconfig, cfg->kube_context, &kerr) == KT_OK) {
			if (kt_kube_client_new(&kube, &kc, &ko, &kerr))
				kube = NULL;
			kt_kube_config_release(&kc);
		}
		if (!kube)
			kt_log(KT_LOG_WARN, "kubeconfig '%s' unusable: %s", cfg->kubeconfig, kerr.msg);
	}
	kt_code c;
	if (!find_target(cfg, &kube, t, err, &c)) {
		kt_kube_client_free(kube);
		target_release(t);   /* a partly read target (wiped) */
		return c;
	}
	*found = 1;
	/* The CA file is written even when the folder is unknown, so a caller
	 * can still list the bucket to find it (fetch). */
	kt_code cp = cluster_prefix(cfg, kube, idx, folder, folder_len, err);
	kt_kube_client_free(kube);
	c = KT_OK;
	if (t->v[K_CA] && *t->v[K_CA]) {
		snprintf(ca_path, ca_len, "%s/%s", cfg->dir, ca_name);
		int fd = open(ca_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		size_t n = strlen(t->v[K_CA]);
		if (fd < 0 || write(fd, t->v[K_CA], n) != (ssize_t)n)
			c = kt_error_sys(err, KT_EIO, errno, "cannot write '%s'", ca_path);
		if (fd >= 0)
			close(fd);
	}
	if (!c && !cp) {
		kt_s3_config sc = { .endpoint = t->v[K_ENDPOINT], .region = t->v[K_REGION],
		                    .bucket = t->v[K_BUCKET], .access_key = t->v[K_ACCESS],
		                    .secret_key = t->v[K_SECRET], .cacert = ca_path[0] ? ca_path : NULL,
		                    .max_attempts = 3, .cancel = cfg->etcd.cancel };
		c = kt_s3_new(s3, &sc, err);
		if (c)
			kt_error_wrap(err, "export configuration from %s", t->source);
	}
	if (!c && cp)
		c = cp;   /* err still holds cluster_prefix's message */
	return c;
}

kt_code kt_etcdbackup_export(const kt_backup_config *cfg, const char *node, json_t *idx,
                             kt_export_result *res, kt_error *err)
{
	memset(res, 0, sizeof(*res));
	target t;
	char folder[512], ca_path[4096];
	kt_s3 *s3 = NULL;
	int found;
	kt_code c = connect_target(cfg, idx, ".export-ca.pem", &t, folder, sizeof(folder), ca_path,
	                           sizeof(ca_path), &s3, &found, err);
	if (!found)
		return c;   /* KT_OK: not configured (yet) */
	res->configured = 1;
	snprintf(res->target, sizeof(res->target), "s3://%s/%s/", t.v[K_BUCKET] ? t.v[K_BUCKET] : "",
	         folder);
	/* Oldest first: every verified, un-exported backup of this node. */
	kt_backup_entry *v = NULL;
	size_t n = 0;
	if (!c)
		c = kt_etcdbackup_list(cfg->dir, &v, &n, err);
	json_t *backups = json_object_get(idx, "backups");
	for (size_t i = 0; !c && i < n; i++) {
		json_t *rec = json_object_get(backups, v[i].file);
		/* The in-memory index is the truth here: this cycle's record is not
		 * on disk yet. */
		char key[1024], path[4096], object[1200];
		snprintf(key, sizeof(key), "%s/%s", folder, v[i].file);
		snprintf(object, sizeof(object), "s3://%s/%s", t.v[K_BUCKET], key);
		/* Exported means exported to this target: a new bucket, endpoint or
		 * cluster folder gets the backlog again. */
		const char *was = json_string_value(json_object_get(rec, "object"));
		if (strcmp(v[i].node, node) || !rec || !json_is_true(json_object_get(rec, "verified")) ||
		    (json_is_true(json_object_get(rec, "exported")) && was && !strcmp(was, object)) ||
		    (uint64_t)json_integer_value(json_object_get(rec, "size")) != v[i].size)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cfg->dir, v[i].file);
		int64_t start = kt_now_ms();
		const char *sha = json_string_value(json_object_get(rec, "sha256"));
		char rev[32];
		snprintf(rev, sizeof(rev), "%lld",
		         (long long)json_integer_value(json_object_get(rec, "revision")));
		kt_s3_meta meta[] = {
			{ (char *)"node", v[i].node }, { (char *)"instance", v[i].instance_id },
			{ (char *)"revision", rev }, { (char *)"sha256", (char *)(sha ? sha : "") },
		};
		kt_s3_put_opts po = { .meta = meta, .n_meta = 4 };
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			c = kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", path);
		} else {
			c = kt_s3_put(s3, key, fd, &po, NULL, err);
			close(fd);
		}
		kt_s3_object_info hi;
		memset(&hi, 0, sizeof(hi));
		if (!c)
			c = kt_s3_head(s3, key, &hi, err);
		if (!c && (hi.size != v[i].size || !kt_s3_object_meta(&hi, "sha256") ||
		           strcmp(kt_s3_object_meta(&hi, "sha256"), sha ? sha : "")))
			c = kt_error_set(err, KT_ECORRUPT, "s3://%s/%s: the stored object does not match "
			                 "(size %llu, expected %llu)", t.v[K_BUCKET], key,
			                 (unsigned long long)hi.size, (unsigned long long)v[i].size);
		kt_s3_object_info_release(&hi);
		export_log(cfg, node, v[i].file, object, v[i].size, kt_now_ms() - start, c, err);
		if (!c) {
			json_object_set_new(rec, "exported", json_true());
			json_object_set_new(rec, "object", json_string(object));
			res->n_exported++;
		} else {
			res->n_failed++;
		}
	}
	kt_backup_entries_free(v, n);
	if (!c && s3)
		res->n_remote_deleted = remote_retention(cfg, s3, folder, node);
	kt_s3_free(s3);
	if (ca_path[0])
		unlink(ca_path);
	target_release(&t);
	return c;
}

typedef struct remote_all {
	kt_backup_entry *v;
	size_t n, cap;
	const char *bucket;
} remote_all;

static kt_code collect_all(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	remote_all *r = ctx;
	const char *base = strrchr(e->key, '/');
	base = base ? base + 1 : e->key;
	kt_backup_entry x;
	memset(&x, 0, sizeof(x));
	if (!kt_backup_parse_name(base, &x.node, &x.instance_id, x.time))
		return KT_OK;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		kt_backup_entry *nv = realloc(r->v, cap * sizeof(*nv));
		if (!nv) {
			free(x.node);
			free(x.instance_id);
			return kt_error_set(err, KT_ENOMEM, "out of memory listing the bucket");
		}
		r->v = nv;
		r->cap = cap;
	}
	size_t n = strlen(r->bucket) + strlen(e->key) + 8;
	x.file = kt_xmalloc(n);
	snprintf(x.file, n, "s3://%s/%s", r->bucket, e->key);
	x.size = e->size;
	x.revision = -1;
	x.exported = 1;
	r->v[r->n++] = x;
	return KT_OK;
}

static int entry_by_time(const void *a, const void *b)
{
	const kt_backup_entry *x = a, *y = b;
	int c = strcmp(x->time, y->time);
	return c ? c : strcmp(x->file, y->file);
}

kt_code kt_etcdbackup_list_remote(const kt_backup_config *cfg, kt_backup_entry **out,
                                  size_t *n_out, char *where, size_t where_len, kt_error *err)
{
	target t;
	char folder[512], ca_path[4096];
	kt_s3 *s3 = NULL;
	int found;
	json_t *idx = kt_backup_index_load(cfg->dir);
	kt_code c = connect_target(cfg, idx, ".export-ca-list.pem", &t, folder, sizeof(folder),
	                           ca_path, sizeof(ca_path), &s3, &found, err);
	json_decref(idx);
	if (!found)
		return c ? c : kt_error_set(err, KT_ENOTFOUND, "no export target is configured (no "
		                            "--export-config, BACKUP_* variables or Secret %s/%s)",
		                            cfg->secret_namespace, cfg->secret_name);
	remote_all r = { NULL, 0, 0, t.v[K_BUCKET] };
	if (!c) {
		char prefix[600];
		snprintf(prefix, sizeof(prefix), "%s/", folder);
		snprintf(where, where_len, "s3://%s/%s", t.v[K_BUCKET], prefix);
		c = kt_s3_list(s3, prefix, 1000, collect_all, &r, NULL, err);
	}
	kt_s3_free(s3);
	if (ca_path[0])
		unlink(ca_path);
	target_release(&t);
	if (c) {
		kt_backup_entries_free(r.v, r.n);
		return c;
	}
	if (r.n)
		qsort(r.v, r.n, sizeof(*r.v), entry_by_time);
	*out = r.v;
	*n_out = r.n;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Fetching an exported backup back (restore from object storage). */

/* The <id> of a folder "<id>-<name>": a UUID (the kube-system UID), or a
 * single word without '-' (etcd's hex id, or an id given with --cluster-id). */
static int cluster_id_shaped(const char *id, size_t n)
{
	if (n == 0)
		return 0;
	if (!memchr(id, '-', n))
		return 1;
	if (n != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? id[i] != '-' : !((id[i] >= '0' && id[i] <= '9') ||
		                            (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	}
	return 1;
}

typedef struct folder_scan {
	const char *suffix;     /* "-<cluster-name>/" */
	const char *skip;       /* a folder not to report */
	char found[8][512];
	size_t n;
} folder_scan;

static kt_code scan_folder(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	(void)err;
	folder_scan *f = ctx;
	const char *slash = strchr(e->key, '/');
	if (!slash)
		return KT_OK;
	size_t n = (size_t)(slash - e->key) + 1, sl = strlen(f->suffix);
	if (n < sl || n >= sizeof(f->found[0]) || memcmp(slash + 1 - sl, f->suffix, sl))
		return KT_OK;
	if (f->skip && strlen(f->skip) == n - 1 && !strncmp(f->skip, e->key, n - 1))
		return KT_OK;
	if (!cluster_id_shaped(e->key, n - sl))
		return KT_OK;   /* "<uuid>-us-east" is not a folder of a cluster named "east" */
	for (size_t i = 0; i < f->n; i++)
		if (!strncmp(f->found[i], e->key, n - 1) && f->found[i][n - 1] == '\0')
			return KT_OK;
	if (f->n < sizeof(f->found) / sizeof(f->found[0]))
		snprintf(f->found[f->n++], sizeof(f->found[0]), "%.*s", (int)(n - 1), e->key);
	return KT_OK;
}

/* The folder "<id>-<cluster-name>" in the bucket when the id is unknown or
 * its folder is empty: the one such folder other than skip.  Creates *s3
 * when it does not exist yet.  KT_ENOTFOUND when there is none, KT_EUSAGE
 * when there are several. */
static kt_code scan_for_folder(const target *t, const char *ca_path, const kt_backup_config *cfg,
                               kt_s3 **s3, char *folder, size_t folder_len, const char *skip,
                               kt_error *err)
{
	kt_code c = KT_OK;
	if (!*s3) {
		kt_s3_config sc = { .endpoint = t->v[K_ENDPOINT], .region = t->v[K_REGION],
		                    .bucket = t->v[K_BUCKET], .access_key = t->v[K_ACCESS],
		                    .secret_key = t->v[K_SECRET], .cacert = ca_path[0] ? ca_path : NULL,
		                    .max_attempts = 3, .cancel = cfg->etcd.cancel };
		if ((c = kt_s3_new(s3, &sc, err)))
			return c;
	}
	char suffix[300];
	snprintf(suffix, sizeof(suffix), "-%s/", cfg->cluster_name && *cfg->cluster_name
	                                             ? cfg->cluster_name : "kubernetes");
	folder_scan fs = { .suffix = suffix, .skip = skip };
	if ((c = kt_s3_list(*s3, NULL, 1000, scan_folder, &fs, NULL, err)))
		return c;
	if (fs.n == 1) {
		snprintf(folder, folder_len, "%s", fs.found[0]);
		return KT_OK;
	}
	if (fs.n == 0)
		return kt_error_set(err, KT_ENOTFOUND, "bucket '%s' holds no backups in a folder "
		                    "'<cluster-id>%s'", t->v[K_BUCKET], suffix);
	return kt_error_set(err, KT_EUSAGE, "bucket '%s' holds backups of %zu%s clusters named "
	                    "like this one (e.g. '%s', '%s'): pass --cluster-id", t->v[K_BUCKET],
	                    fs.n, fs.n == 8 ? " or more" : "", fs.found[0], fs.found[1]);
}

typedef struct fetch_ctx {
	kt_outfile out;
	EVP_MD_CTX *sha;
	volatile sig_atomic_t *cancel;
} fetch_ctx;

static kt_code on_fetch_body(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	fetch_ctx *f = ctx;
	if (f->cancel && *f->cancel)
		return kt_error_set(err, KT_ECANCELED, "interrupted");
	EVP_DigestUpdate(f->sha, data, n);
	return kt_outfile_write(&f->out, data, n, err);
}

/* SHA-256 of the file at path, as hex. */
static kt_code file_sha256(const char *path, char hex[65], kt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot open '%s'", path);
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	uint8_t buf[65536];
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(sha, buf, (size_t)r);
	int e = errno;
	close(fd);
	uint8_t md[32];
	EVP_DigestFinal_ex(sha, md, NULL);
	EVP_MD_CTX_free(sha);
	if (r < 0)
		return kt_error_sys(err, KT_EIO, e, "cannot read '%s'", path);
	kt_hex(hex, md, 32);
	return KT_OK;
}

kt_code kt_etcdbackup_file_sha256(const char *path, char hex[65], kt_error *err)
{
	return file_sha256(path, hex, err);
}

/* "latest" in the bucket: the newest object must not have a lower revision
 * (x-amz-meta-revision) than an older one, which would mean etcd was
 * re-created, probably empty, and its backups exported (see restore.c).
 * Looks at the newest 64 objects. */
static kt_code check_not_recreated(kt_s3 *s3, const remote_all *r, size_t bl, kt_error *err)
{
	int64_t newest_rev = -1;
	const char *newest = NULL;
	for (size_t i = r->n, seen = 0; i-- > 0 && seen < 64; seen++) {
		kt_s3_object_info hi;
		kt_error herr;
		memset(&hi, 0, sizeof(hi));
		if (kt_s3_head(s3, r->v[i].file + bl, &hi, &herr))
			continue;   /* unreadable metadata: judged by the others */
		const char *rv = kt_s3_object_meta(&hi, "revision");
		char *end = NULL;
		long long rev = rv ? strtoll(rv, &end, 10) : -1;
		int ok = rv && !*end && rev >= 0;
		kt_s3_object_info_release(&hi);
		if (!ok)
			continue;
		if (!newest) {
			newest = r->v[i].file;
			newest_rev = rev;
		} else if (rev > newest_rev) {
			return kt_error_set(err, KT_EUSAGE, "the newest exported backup %s (revision %lld) "
			                    "is older in etcd's history than %s (revision %lld): etcd was "
			                    "re-created, probably empty, after the older one was taken; "
			                    "choose with --from remote:NAME (see `kontinuity etcd backups "
			                    "list --remote`)", newest, (long long)newest_rev,
			                    r->v[i].file, rev);
		}
	}
	return KT_OK;
}

kt_code kt_etcdbackup_fetch_remote(const kt_backup_config *cfg, const char *name, int dry_run,
                                   kt_fetched *out, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!dry_run && mkdir(cfg->dir, 0700) != 0 && errno != EEXIST)
		return kt_error_sys(err, kt_code_from_errno(errno), errno,
		                    "cannot create the backup directory '%s' to download into",
		                    cfg->dir);
	target t;
	char folder[512], ca_path[4096];
	kt_s3 *s3 = NULL;
	int found;
	json_t *idx = kt_backup_index_load(cfg->dir);
	/* The CA file goes next to the backups, or (dry run, a directory we
	 * cannot write) into a private directory of our own, never a fixed
	 * name in a shared one. */
	kt_backup_config c2 = *cfg;
	char private_dir[64] = "";
	if (dry_run || access(cfg->dir, W_OK) != 0) {
		snprintf(private_dir, sizeof(private_dir), "/tmp/kontinuity-fetch-XXXXXX");
		if (!mkdtemp(private_dir))
			return kt_error_sys(err, kt_code_from_errno(errno), errno, "cannot create a "
			                    "private temporary directory in /tmp");
		c2.dir = private_dir;
	}
	/* Never etcd's own id here: the etcd we restore may be a new, empty one. */
	c2.etcd.endpoint = NULL;
	kt_error ferr;
	kt_code c = connect_target(&c2, idx, ".export-ca-fetch.pem", &t, folder, sizeof(folder),
	                           ca_path, sizeof(ca_path), &s3, &found, &ferr);
	json_decref(idx);
	if (!found) {
		if (private_dir[0])
			rmdir(private_dir);
		return c ? kt_error_set(err, c, "%s", ferr.msg)
		         : kt_error_set(err, KT_ENOTFOUND, "no export target is configured (no "
		                        "--export-config, BACKUP_* variables or Secret %s/%s)",
		                        cfg->secret_namespace, cfg->secret_name);
	}
	int explicit_id = cfg->cluster_id && *cfg->cluster_id;
	if (c == KT_EUSAGE && s3 == NULL && strstr(ferr.msg, "cluster id") &&
	    !(c = scan_for_folder(&t, ca_path, cfg, &s3, folder, sizeof(folder), "", &ferr)))
		kt_log(KT_LOG_WARN, "the cluster id is unknown (API server down?); using s3://%s/%s/, "
		       "the only folder of a cluster named '%s' (pass --cluster-id to choose)",
		       t.v[K_BUCKET], folder,
		       cfg->cluster_name && *cfg->cluster_name ? cfg->cluster_name : "kubernetes");
	remote_all r = { NULL, 0, 0, t.v[K_BUCKET] };
	if (!c) {
		char prefix[600];
		snprintf(prefix, sizeof(prefix), "%s/", folder);
		c = kt_s3_list(s3, prefix, 1000, collect_all, &r, NULL, &ferr);
	}
	if (!c && r.n == 0 && !explicit_id) {
		/* The id we found may be a new cluster's: an API server on an
		 * empty etcd makes a new kube-system namespace.  The backups are
		 * in the one folder of this name that holds some. */
		char empty[512];
		snprintf(empty, sizeof(empty), "%s", folder);
		if (!(c = scan_for_folder(&t, ca_path, cfg, &s3, folder, sizeof(folder), empty, &ferr))) {
			kt_log(KT_LOG_WARN, "no backups in s3://%s/%s/; using s3://%s/%s/, the only other "
			       "folder of a cluster named '%s' (pass --cluster-id to choose)",
			       t.v[K_BUCKET], empty, t.v[K_BUCKET], folder,
			       cfg->cluster_name && *cfg->cluster_name ? cfg->cluster_name : "kubernetes");
			char prefix[600];
			snprintf(prefix, sizeof(prefix), "%s/", folder);
			c = kt_s3_list(s3, prefix, 1000, collect_all, &r, NULL, &ferr);
		} else if (c == KT_ENOTFOUND) {
			c = KT_OK;   /* no other folder: report the empty one below */
			snprintf(folder, sizeof(folder), "%s", empty);
		}
	}
	if (c) {
		kt_error_set(err, c, "%s", ferr.msg);
		goto out;
	}
	qsort(r.v, r.n, sizeof(*r.v), entry_by_time);
	const kt_backup_entry *pick = NULL;
	size_t bl = strlen(t.v[K_BUCKET]) + 6;   /* "s3://" + bucket + "/" */
	for (size_t i = 0; i < r.n; i++) {
		const char *key = r.v[i].file + bl;
		const char *base = strrchr(key, '/') + 1;
		if (!strcmp(name, "latest") || !strcmp(name, base) || !strcmp(name, key) ||
		    !strcmp(name, r.v[i].file))
			pick = &r.v[i];   /* the last match is the newest */
	}
	if (!pick && !strcmp(name, "latest")) {
		c = kt_error_set(err, KT_ENOTFOUND, "no exported backup in s3://%s/%s/", t.v[K_BUCKET],
		                 folder);
		goto out;
	}
	if (!pick) {
		c = kt_error_set(err, KT_ENOTFOUND, "no exported backup named '%s' in s3://%s/%s/ (see "
		                 "`kontinuity etcd backups list --remote`)", name, t.v[K_BUCKET],
		                 folder);
		goto out;
	}
	if (!strcmp(name, "latest") && (c = check_not_recreated(s3, &r, bl, err)))
		goto out;
	const char *key = pick->file + bl;
	snprintf(out->object, sizeof(out->object), "%s", pick->file);
	snprintf(out->path, sizeof(out->path), "%s/%s", cfg->dir, strrchr(key, '/') + 1);
	kt_s3_object_info hi;
	memset(&hi, 0, sizeof(hi));
	if ((c = kt_s3_head(s3, key, &hi, err)))
		goto out;
	const char *want = kt_s3_object_meta(&hi, "sha256");
	snprintf(out->sha256, sizeof(out->sha256), "%s", want ? want : "");
	out->size = hi.size;
	kt_s3_object_info_release(&hi);
	if (strlen(out->sha256) != 64) {
		c = kt_error_set(err, KT_ECORRUPT, "%s carries no sha256 metadata, so it cannot be "
		                 "checked (not written by kontinuity?)", out->object);
		goto out;
	}
	if (dry_run)
		goto out;
	struct stat st;
	if (stat(out->path, &st) == 0) {
		char have[65];
		if ((c = file_sha256(out->path, have, err)))
			goto out;
		if (strcmp(have, out->sha256)) {
			c = kt_error_set(err, KT_EEXIST, "'%s' exists and differs from %s (move it away "
			                 "and try again)", out->path, out->object);
			goto out;
		}
		out->reused = 1;
		goto out;
	}
	struct statvfs vfs;
	if (statvfs(cfg->dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < out->size) {
		char a[32], b[32];
		c = kt_error_set(err, KT_ENOSPC, "not enough room in '%s' for %s: %s free, %s needed",
		                 cfg->dir, out->object,
		                 kt_human_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, a),
		                 kt_human_bytes(out->size, b));
		goto out;
	}
	fetch_ctx f = { .sha = EVP_MD_CTX_new(), .cancel = cfg->etcd.cancel };
	EVP_DigestInit_ex(f.sha, EVP_sha256(), NULL);
	c = kt_outfile_open(&f.out, out->path, err);
	if (!c)
		c = kt_s3_get(s3, key, on_fetch_body, &f, NULL, err);
	uint8_t md[32];
	char got[65];
	EVP_DigestFinal_ex(f.sha, md, NULL);
	EVP_MD_CTX_free(f.sha);
	kt_hex(got, md, 32);
	if (!c && f.out.written != out->size)
		c = kt_error_set(err, KT_ECORRUPT, "%s: got %llu bytes, the object has %llu; nothing "
		                 "was kept", out->object, (unsigned long long)f.out.written,
		                 (unsigned long long)out->size);
	if (!c && strcmp(got, out->sha256))
		c = kt_error_set(err, KT_ECORRUPT, "%s: wrong checksum: the bytes hash to sha256 %s but "
		                 "the object's metadata says %s (the object is damaged; try an older "
		                 "one); nothing was kept", out->object, got, out->sha256);
	if (!c)
		c = kt_outfile_commit(&f.out, err);
	else
		kt_outfile_abort(&f.out);
	if (!c)
		out->downloaded = 1;
out:
	kt_backup_entries_free(r.v, r.n);
	kt_s3_free(s3);
	if (ca_path[0])
		unlink(ca_path);
	if (private_dir[0])
		rmdir(private_dir);
	target_release(&t);
	return c;
}
