/*
 * status.c - `etcd snapshot status`: the five numbers etcdutl prints,
 * computed from one checking walk of the bbolt file.
 *
 * Owns: opening a snapshot file (clear errors for missing, unreadable,
 * directory, empty), the status accumulator shared with verify.c, and the
 * go-semver normalisation of the storage version.
 *
 * What etcdutl 3.6 (etcdutl/snapshot/v3_snapshot.go, Status) does, and so we:
 *   - run bbolt's consistency check first; any fault fails the command;
 *   - hash = CRC-32C over, for each top-level bucket in key order, its
 *     name, then every key and value its ForEach yields (a nested bucket
 *     yields its key and a nil value); a top-level key that is not a bucket
 *     is an error;
 *   - for each entry of bucket "key": the key must parse as a revision
 *     (17 or 18 bytes, '_' at byte 8, main and sub >= 0) and the value as an
 *     mvccpb.KeyValue, else the command fails; revision = main revision of
 *     the last such key;
 *   - totalKey = number of distinct user keys live at the end (a put adds
 *     its KeyValue.key, a tombstone - 18 bytes ending in 't' - removes it).
 *     etcdutl 3.5 and older counted every ForEach entry instead;
 *   - totalSize = high-water mark * page size (tx.Size());
 *   - version = semver of meta/storageVersion re-printed, "" when absent or
 *     unparsable (etcd before 3.6 does not write it).
 * The trailer is not read: etcdutl's status ignores it too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_int.h"

typedef unsigned long long ull;

uint64_t kt_snapshot_db_size(uint64_t size)
{
	return size % 512 == 32 ? size - 32 : size;
}

kt_code kt_snapshot_wrap(kt_error *err, const char *name)
{
	if (err->code == KT_ECORRUPT || err->code == KT_ELIMIT)
		return kt_error_wrap(err, "snapshot '%s'", name);
	return kt_error_wrap(err, "cannot read snapshot '%s'", name);
}

kt_code kt_snapshot_open_file(const char *path, int *fd_out, uint64_t *size_out, kt_error *err)
{
	/* O_NONBLOCK: opening a FIFO must not hang; it changes nothing for files. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot open snapshot '%s'", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot stat snapshot '%s'", path);
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return kt_error_sys(err, KT_EIO, EISDIR, "cannot read snapshot '%s'", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return kt_error_set(err, KT_EIO,
		                    "cannot read snapshot '%s': not a regular file (a snapshot is a "
		                    "file written by `etcd snapshot save` or etcd's member/snap/db)",
		                    path);
	}
	*fd_out = fd;
	*size_out = (uint64_t)st.st_size;
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* go-semver: "+meta" split off first, then "-pre", then exactly three
 * dot-separated decimal int64s; String() prints them back normalised. */

static int parse_i64(const char *s, size_t n, long long *out)
{
	if (n == 0)
		return 0;
	unsigned long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (9223372036854775807ull - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = (long long)v;
	return 1;
}

int kt_snapshot_semver(const uint8_t *s, size_t n, char *out, size_t outlen)
{
	const char *str = (const char *)s;
	out[0] = '\0';
	size_t end = n;
	const char *meta = NULL, *pre = NULL;
	size_t meta_len = 0, pre_len = 0;
	const char *plus = memchr(str, '+', end);
	if (plus) {
		meta = plus + 1;
		meta_len = n - (size_t)(meta - str);
		end = (size_t)(plus - str);
	}
	const char *dash = memchr(str, '-', end);
	if (dash) {
		pre = dash + 1;
		pre_len = end - (size_t)(pre - str);
		end = (size_t)(dash - str);
	}
	long long part[3];
	size_t start = 0;
	for (int i = 0; i < 3; i++) {
		size_t stop = end;
		if (i < 2) {
			const char *dot = memchr(str + start, '.', end - start);
			if (!dot)
				return 0;
			stop = (size_t)(dot - str);
		}
		if (!parse_i64(str + start, stop - start, &part[i]))
			return 0;
		start = stop + 1;
	}
	int o = snprintf(out, outlen, "%lld.%lld.%lld", part[0], part[1], part[2]);
	if (pre_len && o >= 0 && (size_t)o < outlen)
		o += snprintf(out + o, outlen - (size_t)o, "-%.*s", (int)pre_len, pre);
	if (meta_len && o >= 0 && (size_t)o < outlen)
		snprintf(out + o, outlen - (size_t)o, "+%.*s", (int)meta_len, meta);
	return 1;
}

/* ------------------------------------------------------------------ */

static int slice_is(const kt_bbolt_slice *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && memcmp(s->data, lit, n) == 0;
}

void kt_status_acc_init(kt_status_acc *a, kt_snapshot_stat *out, int census)
{
	memset(out, 0, sizeof(*out));
	kt_crc32c_init(&a->crc, 0);
	a->out = out;
	a->top = KT_TOP_OTHER;
	kt_keyset_init(&a->keys, census);
	memset(&a->last_kv, 0, sizeof(a->last_kv));
	a->last_tomb = 0;
	a->skip_keyset = 0;
}

void kt_status_acc_release(kt_status_acc *a)
{
	kt_keyset_release(&a->keys);
}

static kt_code key_entry(kt_status_acc *a, const kt_bbolt_entry *e, kt_error *err)
{
	const uint8_t *k = e->key.data;
	size_t n = e->key.len;
	if ((n != 17 && n != 18) || k[8] != '_' || (k[0] & 0x80) || (k[9] & 0x80)) {
		char hex[2 * 24 + 1];
		kt_hex(hex, k, n < 24 ? n : 24);
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: key at byte %llu in bucket 'key' is not a revision "
		                    "(expected 8-byte main, '_', 8-byte sub, optional 't'; found %zu "
		                    "bytes %s%s)", (ull)e->pgid, (ull)e->offset, n, hex,
		                    n > 24 ? "..." : "");
	}
	uint64_t main = 0;
	for (int i = 0; i < 8; i++)
		main = main << 8 | k[i];
	a->out->revision = (int64_t)main;
	const char *why = kt_mvcc_kv_parse(e->value.data, e->value.len, &a->last_kv);
	if (why)
		return kt_error_set(err, KT_ECORRUPT,
		                    "page %llu: the value of the revision at byte %llu in bucket 'key' "
		                    "is not an mvccpb.KeyValue: %s", (ull)e->pgid, (ull)e->offset, why);
	a->last_tomb = n == 18 && k[17] == 't';
	if (a->skip_keyset)
		return KT_OK;
	return kt_keyset_event(&a->keys, a->last_kv.key, a->last_kv.key_len, !a->last_tomb, err);
}

kt_code kt_status_acc_visit(void *ctx, const kt_bbolt_entry *e, kt_error *err)
{
	kt_status_acc *a = ctx;
	if (e->depth == 0) {
		if (!(e->flags & KT_BBOLT_BUCKET)) {
			char name[64];
			size_t n = e->key.len < 40 ? e->key.len : 40, o = 0;
			for (size_t i = 0; i < n; i++)
				name[o++] = e->key.data[i] >= 0x20 && e->key.data[i] < 0x7f
				                ? (char)e->key.data[i] : '?';
			name[o] = '\0';
			return kt_error_set(err, KT_ECORRUPT,
			                    "page %llu: top-level key '%s' at byte %llu is not a bucket "
			                    "(etcd keeps everything in buckets)", (ull)e->pgid, name,
			                    (ull)e->offset);
		}
		kt_crc32c_update(&a->crc, e->key.data, e->key.len);
		a->top = slice_is(&e->key, "key") ? KT_TOP_KEY
		         : slice_is(&e->key, "meta") ? KT_TOP_META : KT_TOP_OTHER;
		return KT_OK;
	}
	if (e->depth != 1)
		return KT_OK;   /* inside a nested bucket: ForEach does not descend */
	kt_crc32c_update(&a->crc, e->key.data, e->key.len);
	kt_crc32c_update(&a->crc, e->value.data, e->value.len);
	if (a->top == KT_TOP_KEY)
		return key_entry(a, e, err);
	if (a->top == KT_TOP_META && !(e->flags & KT_BBOLT_BUCKET) &&
	    slice_is(&e->key, "storageVersion"))
		kt_snapshot_semver(e->value.data, e->value.len, a->out->version,
		                   sizeof(a->out->version));
	return KT_OK;
}

void kt_status_acc_finish(kt_status_acc *a, const kt_bbolt_info *info)
{
	a->out->hash = kt_crc32c_final(&a->crc);
	a->out->total_key = a->keys.n_live;
	a->out->total_size = info->n_pages * info->page_size;
}

static kt_code status_fd(int fd, uint64_t size, const char *name, kt_snapshot_stat *out,
                         int count_keys, kt_error *err)
{
	kt_bbolt *db = NULL;
	kt_code c = kt_bbolt_open(&db, fd, kt_snapshot_db_size(size), err);
	if (c)
		return kt_snapshot_wrap(err, name);
	kt_status_acc *acc = malloc(sizeof(*acc));
	if (!acc) {
		kt_bbolt_free(db);
		return kt_error_set(err, KT_ENOMEM, "out of memory");
	}
	kt_snapshot_stat st;
	kt_status_acc_init(acc, &st, 0);
	acc->skip_keyset = !count_keys;
	c = kt_bbolt_walk(db, kt_status_acc_visit, acc, NULL, err);
	if (!c) {
		kt_status_acc_finish(acc, kt_bbolt_get_info(db));
		*out = st;
	} else {
		kt_snapshot_wrap(err, name);
	}
	kt_status_acc_release(acc);
	free(acc);
	kt_bbolt_free(db);
	return c;
}

kt_code kt_snapshot_status_fd(int fd, uint64_t size, const char *name, kt_snapshot_stat *out,
                              kt_error *err)
{
	return status_fd(fd, size, name, out, 1, err);
}

kt_code kt_snapshot_check_fd(int fd, uint64_t size, const char *name, kt_snapshot_stat *out,
                             kt_error *err)
{
	return status_fd(fd, size, name, out, 0, err);
}

kt_code kt_snapshot_status(const char *path, kt_snapshot_stat *out, kt_error *err)
{
	int fd;
	uint64_t size;
	kt_code c = kt_snapshot_open_file(path, &fd, &size, err);
	if (c)
		return c;
	c = kt_snapshot_status_fd(fd, size, path, out, err);
	close(fd);
	return c;
}
