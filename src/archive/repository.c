/*
 * repository.c - init and open of a repository, its config, and the
 * in-memory index every operation consults.
 *
 * Open: list keys/ and try each key file with the passphrase; read and
 * open config; read every index/ object (checking it hashes to its name)
 * and load its entries into the blob index (index.c: a bounded table,
 * then sorted runs in a temp file).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_int.h"

/* ------------------------------------------------------------------ */
/* Storage ids and object helpers. */

void kt_archive_storage_id(const void *data, size_t n, uint8_t id[32], char hex[65])
{
	unsigned int len = 32;
	EVP_Digest(data, n, id, &len, EVP_sha256(), NULL);
	if (hex)
		kt_hex(hex, id, 32);
}

void kt_archive_pack_name(const uint8_t id[32], char name[80])
{
	char hex[65];
	kt_hex(hex, id, 32);
	snprintf(name, 80, "data/%.2s/%s", hex, hex);
}

kt_code kt_archive_get_checked(kt_archive *a, const char *name, kt_buf *out, kt_error *err)
{
	kt_code c = kt_store_get(a->s, name, 0, 0, out, err);
	if (c)
		return c;
	const char *slash = strrchr(name, '/');
	const char *want = slash ? slash + 1 : name;
	uint8_t id[32];
	char hex[65];
	kt_archive_storage_id(out->data, out->len, id, hex);
	if (strlen(want) == 64 && strcmp(hex, want))
		return kt_error_set(err, KT_ECORRUPT, "'%s' does not hash to its name (sha256 %s): the "
		                    "object was changed or damaged", name, hex);
	return KT_OK;
}

kt_code kt_archive_get_sealed(kt_archive *a, const char *name, const char *aad, kt_buf *out,
                              kt_error *err)
{
	kt_buf raw;
	kt_buf_init(&raw, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	kt_code c = strcmp(name, "config") ? kt_archive_get_checked(a, name, &raw, err)
	                                   : kt_store_get(a->s, name, 0, 0, &raw, err);
	if (!c && (c = kt_repo_open(&a->keys, aad, strlen(aad), raw.data, raw.len, out, err)))
		kt_error_wrap(err, "'%s'", name);
	kt_buf_release(&raw);
	return c;
}

/* Put already-encoded bytes as <dir>/<storage id>. */
static kt_code put_raw(kt_archive *a, const char *dir, const void *data, size_t n,
                       char id_hex[65], kt_error *err)
{
	uint8_t id[32];
	char hex[65], name[128];
	kt_archive_storage_id(data, n, id, hex);
	snprintf(name, sizeof(name), "%s/%s", dir, hex);
	kt_code c = kt_store_put(a->s, name, data, n, err);
	if (c == KT_EEXIST)
		c = KT_OK;   /* the same bytes, by their name: already there */
	if (!c && id_hex)
		memcpy(id_hex, hex, 65);
	return c;
}

kt_code kt_archive_put_sealed(kt_archive *a, const char *dir, const char *aad, const void *data,
                              size_t n, char id_hex[65], uint64_t *stored, kt_error *err)
{
	kt_buf sealed;
	kt_buf_init(&sealed, KT_REPO_MAX_SEALED + KT_REPO_SEAL_OVERHEAD);
	kt_code c = kt_repo_seal(&a->keys, aad, strlen(aad), data, n, &sealed, err);
	if (!c)
		c = put_raw(a, dir, sealed.data, sealed.len, id_hex, err);
	if (!c && stored)
		*stored += sealed.len;
	kt_buf_release(&sealed);
	return c;
}

kt_code kt_archive_read_blob(kt_archive *a, const uint8_t id[32], kt_buf *out, kt_error *err)
{
	kt_loc loc, *l = &loc;
	if (!kt_archive_find(a, id, &loc) || l->pack >= a->n_packs) {
		char hex[65];
		kt_hex(hex, id, 32);
		return kt_error_set(err, KT_ECORRUPT, "blob %.16s is in no index (the repository is "
		                    "missing data; run `kontinuity repo check`)", hex);
	}
	char name[80];
	kt_archive_pack_name(a->packs[l->pack], name);
	kt_buf sealed;
	kt_buf_init(&sealed, (size_t)l->length + 1);
	kt_code c = kt_store_get(a->s, name, l->offset, l->length, &sealed, err);
	if (!c) {
		kt_repo_entry e = { l->type, l->compression, l->offset, l->length, l->raw_length, { 0 } };
		memcpy(e.id, l->id, 32);
		kt_buf_reset(out);
		c = kt_repo_blob_open(&a->keys, &e, (const uint8_t *)sealed.data, out, err);
		if (c)
			kt_error_wrap(err, "pack %s at offset %u", name, l->offset);
	}
	kt_buf_release(&sealed);
	return c;
}

/* ------------------------------------------------------------------ */
/* Init and open. */

kt_code kt_archive_init(kt_store *s, const char *pass, size_t pass_len,
                        const kt_archive_init_opts *o, kt_error *err)
{
	uint64_t size;
	kt_code c = kt_store_stat(s, "config", &size, err);
	if (c == KT_OK)
		return kt_error_set(err, KT_EEXIST, "%s already holds a repository",
		                    kt_store_describe(s));
	if (c != KT_ENOTFOUND)
		return c;
	if (pass_len == 0)
		return kt_error_set(err, KT_EUSAGE, "an empty passphrase is not accepted");
	kt_archive a;
	memset(&a, 0, sizeof(a));
	a.s = s;
	if ((c = kt_repo_keys_generate(&a.keys, err)))
		return c;
	uint8_t rid[32];
	RAND_bytes(rid, sizeof(rid));
	kt_hex(a.id, rid, 32);
	kt_repo_kdf kdf = { o && o->kdf_n ? o->kdf_n : 32768, 8, 1 };
	kt_buf kf;
	kt_buf_init(&kf, 1 << 16);
	c = kt_repo_keyfile_create(&a.keys, pass, pass_len, &kdf, o ? o->hostname : NULL, &kf, err);
	if (!c)
		c = put_raw(&a, "keys", kf.data, kf.len, NULL, err);
	kt_buf_release(&kf);
	if (!c) {
		kt_chunker_params pf, pe;
		char sf[128], se[128];
		kt_chunker_params_files(&pf);
		kt_chunker_params_etcd(&pe);
		json_t *cfg = json_pack("{s:i, s:s, s:{s:s, s:s}, s:i, s:s}", "version", 1, "id", a.id,
		                        "chunker", "files",
		                        kt_chunker_params_format(&pf, sf, sizeof(sf)), "etcd",
		                        kt_chunker_params_format(&pe, se, sizeof(se)), "pack_size",
		                        (int)(o && o->pack_size ? o->pack_size : 16u << 20),
		                        "compression", "zstd");
		char *text = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(cfg);
		kt_buf sealed;
		kt_buf_init(&sealed, 1 << 20);
		c = kt_repo_seal(&a.keys, KT_AAD_CONFIG, strlen(KT_AAD_CONFIG), text, strlen(text),
		                 &sealed, err);
		free(text);
		/* config last: a repository without it is not a repository yet. */
		if (!c)
			c = kt_store_put(s, "config", sealed.data, sealed.len, err);
		kt_buf_release(&sealed);
	}
	kt_repo_keys_wipe(&a.keys);
	return c;
}

typedef struct name_list {
	char **v;
	size_t n, cap;
} name_list;

static kt_code collect_name(void *ctx, const kt_store_entry *e, kt_error *err)
{
	(void)err;
	name_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(char *));
		if (!l->v)
			abort();
	}
	l->v[l->n++] = kt_xstrdup(e->name);
	return KT_OK;
}

static void names_free(name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

kt_code kt_archive_list_names(kt_archive *a, const char *prefix, char ***out, size_t *n_out,
                              kt_error *err)
{
	name_list l = { 0 };
	kt_code c = kt_store_list(a->s, prefix, collect_name, &l, err);
	if (c) {
		names_free(&l);
		return c;
	}
	*out = l.v;
	*n_out = l.n;
	return KT_OK;
}

void kt_archive_names_free(char **v, size_t n)
{
	name_list l = { v, n, n };
	names_free(&l);
}

static kt_code load_config(kt_archive *a, kt_error *err)
{
	kt_buf plain;
	kt_buf_init(&plain, 1 << 20);
	kt_code c = kt_archive_get_sealed(a, "config", KT_AAD_CONFIG, &plain, err);
	json_t *cfg = NULL;
	if (!c) {
		json_error_t jerr;
		cfg = json_loadb(plain.data, plain.len, JSON_REJECT_DUPLICATES, &jerr);
		if (!cfg)
			c = kt_error_set(err, KT_ECORRUPT, "config is not JSON");
	}
	kt_buf_release(&plain);
	if (c)
		return c;
	json_t *chunker = json_object_get(cfg, "chunker");
	const char *id = json_string_value(json_object_get(cfg, "id"));
	json_int_t ver = json_integer_value(json_object_get(cfg, "version"));
	json_int_t ps = json_integer_value(json_object_get(cfg, "pack_size"));
	const char *files = json_string_value(json_object_get(chunker, "files"));
	const char *etcd = json_string_value(json_object_get(chunker, "etcd"));
	kt_error perr;
	if (ver != 1)
		c = kt_error_set(err, KT_EUSAGE, "repository format version %lld is not supported by "
		                 "this kontinuity (it reads version 1)", (long long)ver);
	else if (!id || strlen(id) != 64 || ps < (1 << 20) || ps > (64 << 20) || !files || !etcd ||
	         kt_chunker_params_parse(files, &a->chunk_files, &perr) ||
	         kt_chunker_params_parse(etcd, &a->chunk_etcd, &perr))
		c = kt_error_set(err, KT_ECORRUPT, "config has impossible settings");
	if (!c) {
		memcpy(a->id, id, 65);
		a->pack_size = (uint32_t)ps;
	}
	json_decref(cfg);
	return c;
}

kt_code kt_archive_open(kt_store *s, const char *pass, size_t pass_len, kt_archive **out,
                        kt_error *err)
{
	kt_archive *a = kt_xcalloc(1, sizeof(*a));
	a->s = s;
	uint64_t size;
	kt_code c = kt_store_stat(s, "config", &size, err);
	if (c == KT_ENOTFOUND)
		c = kt_error_set(err, KT_ENOTFOUND, "%s holds no repository (run `kontinuity repo "
		                 "init` first)", kt_store_describe(s));
	char **names = NULL;
	size_t n = 0;
	if (!c)
		c = kt_archive_list_names(a, "keys/", &names, &n, err);
	if (!c && n == 0)
		c = kt_error_set(err, KT_ECORRUPT, "%s has no key files", kt_store_describe(s));
	int opened = 0;
	kt_buf kf;
	kt_buf_init(&kf, KT_REPO_MAX_KEYFILE);
	kt_error kerr;
	kt_error_clear(&kerr);
	for (size_t i = 0; !c && !opened && i < n; i++) {
		if (kt_archive_get_checked(a, names[i], &kf, &kerr))
			continue;
		if (kt_repo_keyfile_open(kf.data, kf.len, pass, pass_len, &a->keys, &kerr) == KT_OK)
			opened = 1;
	}
	kt_buf_release(&kf);
	kt_archive_names_free(names, n);
	if (!c && !opened)
		c = kerr.code == KT_EAUTH || kerr.code == KT_OK
		    ? kt_error_set(err, KT_EAUTH, "wrong passphrase: it opens none of the %zu key "
		                   "file%s of %s", n, n == 1 ? "" : "s", kt_store_describe(s))
		    : kt_error_set(err, kerr.code, "%s", kerr.msg);
	if (!c)
		c = load_config(a, err);
	if (!c)
		c = kt_archive_load_index(a, err);
	if (c) {
		kt_archive_free(a);
		return c;
	}
	*out = a;
	return KT_OK;
}

void kt_archive_free(kt_archive *a)
{
	if (!a)
		return;
	kt_archive_unlock(a);
	kt_repo_keys_wipe(&a->keys);
	kt_archive_index_release(a);
	free(a->packs);
	free(a);
}

const char *kt_archive_id(const kt_archive *a)
{
	return a->id;
}
