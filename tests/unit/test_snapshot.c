/*
 * test_snapshot.c - unit tests for src/bbolt (the walker) and src/snapshot
 * (status, verify, trailer, CRC-32C, semver, KeyValue decoding).
 *
 * The databases are built here by a tiny bbolt *writer* (test only): meta
 * pages with their FNV-1a checksums, leaf/branch/freelist pages, bucket
 * values and inline buckets, laid out exactly as docs/snapshot-format.md
 * describes.  Each bad-input case damages one thing and asserts the error
 * code and that the message names the fault (page id, what was expected).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "bbolt/bbolt.h"
#include "snapshot/snapshot.h"
#include "snapshot/snapshot_int.h"
#include "unit.h"

/* Page size of the databases built; 4096 in the tests, 1024 for fuzz seeds. */
static uint32_t PS = 4096;

/* ------------------------------------------------------------------ */
/* The test-only bbolt writer */

typedef struct img {
	uint8_t *b;
	size_t len;   /* n_pages * PS */
} img;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void putbe64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i)); }

static uint8_t *page(img *m, uint64_t id)
{
	size_t need = (size_t)(id + 1) * PS;
	if (need > m->len) {
		m->b = realloc(m->b, need);
		memset(m->b + m->len, 0, need - m->len);
		m->len = need;
	}
	return m->b + id * PS;
}

static void hdr(uint8_t *p, uint64_t id, uint16_t flags, uint16_t count, uint32_t overflow)
{
	put64(p, id);
	put16(p + 8, flags);
	put16(p + 10, count);
	put32(p + 12, overflow);
}

/* Recompute the checksum of meta page idx after editing its fields. */
static void fix_meta(img *m, unsigned idx)
{
	uint8_t *f = m->b + idx * PS + 16;
	put64(f + 56, kt_bbolt_fnv1a64(f, 56));
}

static void meta(img *m, unsigned idx, uint64_t root, uint64_t freelist, uint64_t hwm,
                 uint64_t txid)
{
	uint8_t *p = page(m, idx);
	hdr(p, idx, 0x04, 0, 0);
	uint8_t *f = p + 16;
	put32(f, 0xED0CDAED);
	put32(f + 4, 2);
	put32(f + 8, PS);
	put32(f + 12, 0);
	put64(f + 16, root);
	put64(f + 24, 0);
	put64(f + 32, freelist);
	put64(f + 40, hwm);
	put64(f + 48, txid);
	fix_meta(m, idx);
}

typedef struct kvp {
	const void *k;
	size_t klen;
	const void *v;
	size_t vlen;
	uint32_t flags;   /* 1: bucket */
} kvp;

/* Leaf page at p (header + elements + data); returns bytes used. */
static size_t leaf_at(uint8_t *p, uint64_t id, const kvp *e, size_t n, uint32_t overflow)
{
	hdr(p, id, 0x02, (uint16_t)n, overflow);
	size_t data = 16 + 16 * n;
	for (size_t i = 0; i < n; i++) {
		uint8_t *el = p + 16 + 16 * i;
		put32(el, e[i].flags);
		put32(el + 4, (uint32_t)(data - (16 + 16 * i)));
		put32(el + 8, (uint32_t)e[i].klen);
		put32(el + 12, (uint32_t)e[i].vlen);
		memcpy(p + data, e[i].k, e[i].klen);
		data += e[i].klen;
		if (e[i].vlen)
			memcpy(p + data, e[i].v, e[i].vlen);
		data += e[i].vlen;
	}
	return data;
}

static void leaf(img *m, uint64_t id, const kvp *e, size_t n)
{
	size_t need = 16;
	for (size_t i = 0; i < n; i++)
		need += 16 + e[i].klen + e[i].vlen;
	uint32_t overflow = (uint32_t)((need + PS - 1) / PS - 1);
	page(m, id + overflow);
	leaf_at(page(m, id), id, e, n, overflow);
}

static void branch(img *m, uint64_t id, const kvp *keys, const uint64_t *child, size_t n)
{
	uint8_t *p = page(m, id);
	hdr(p, id, 0x01, (uint16_t)n, 0);
	size_t data = 16 + 16 * n;
	for (size_t i = 0; i < n; i++) {
		uint8_t *el = p + 16 + 16 * i;
		put32(el, (uint32_t)(data - (16 + 16 * i)));
		put32(el + 4, (uint32_t)keys[i].klen);
		put64(el + 8, child[i]);
		memcpy(p + data, keys[i].k, keys[i].klen);
		data += keys[i].klen;
	}
}

static void freelist(img *m, uint64_t id, const uint64_t *ids, size_t n, int big_count)
{
	uint8_t *p = page(m, id);
	hdr(p, id, 0x10, big_count ? 0xFFFF : (uint16_t)n, 0);
	size_t o = 16;
	if (big_count) {
		put64(p + o, n);
		o += 8;
	}
	for (size_t i = 0; i < n; i++)
		put64(p + o + 8 * i, ids[i]);
}

/* Bucket value pointing at a root page. */
static void bucket_val(uint8_t out[16], uint64_t root)
{
	put64(out, root);
	put64(out + 8, 0);
}

/* Inline bucket value: header with root 0, then a leaf page. */
static size_t inline_val(uint8_t *out, const kvp *e, size_t n)
{
	put64(out, 0);
	put64(out + 8, 0);
	return 16 + leaf_at(out + 16, 0, e, n, 0);
}

static void rev(uint8_t *out, uint64_t main, uint64_t sub, int tomb)
{
	putbe64(out, main);
	out[8] = '_';
	putbe64(out + 9, sub);
	if (tomb)
		out[17] = 't';
}

static size_t varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* mvccpb.KeyValue{key, create, mod, version, value} */
static size_t kv_enc(uint8_t *p, const char *key, uint64_t create, uint64_t mod, uint64_t ver,
                     const char *value)
{
	size_t n = 0;
	p[n++] = 0x0a;
	n += varint(p + n, strlen(key));
	memcpy(p + n, key, strlen(key));
	n += strlen(key);
	if (create) {
		p[n++] = 0x10;
		n += varint(p + n, create);
	}
	if (mod) {
		p[n++] = 0x18;
		n += varint(p + n, mod);
	}
	if (ver) {
		p[n++] = 0x20;
		n += varint(p + n, ver);
	}
	if (value) {
		p[n++] = 0x2a;
		n += varint(p + n, strlen(value));
		memcpy(p + n, value, strlen(value));
		n += strlen(value);
	}
	return n;
}

/* The events of the standard "key" bucket. */
typedef struct event {
	uint64_t main;
	int tomb;
	const char *key;
	const char *value;
} event;

static const event std_events[] = {
	{ 2, 0, "/registry/pods/default/a", "pod-a" },
	{ 3, 0, "/registry/pods/default/b", "pod-b" },
	{ 4, 0, "/registry/apps.example.com/widgets/ns/w", "{\"kind\":\"Widget\"}" },
	{ 5, 1, "/registry/pods/default/a", NULL },
	{ 6, 0, "/other/x", "x" },
	{ 7, 0, "/registry/pods/default/b", "pod-b-v2" },
};
#define N_EVENTS (sizeof(std_events) / sizeof(std_events[0]))

typedef struct keybuf {
	uint8_t k[N_EVENTS][18];
	uint8_t v[N_EVENTS][128];
	kvp e[N_EVENTS];
} keybuf;

static void key_entries(keybuf *kb)
{
	for (size_t i = 0; i < N_EVENTS; i++) {
		const event *ev = &std_events[i];
		rev(kb->k[i], ev->main, 0, ev->tomb);
		size_t vlen = ev->tomb ? kv_enc(kb->v[i], ev->key, 0, 0, 0, NULL)
		                       : kv_enc(kb->v[i], ev->key, ev->main, ev->main, 1, ev->value);
		kb->e[i] = (kvp){ kb->k[i], ev->tomb ? 18u : 17u, kb->v[i], vlen, 0 };
	}
}

typedef struct metabuf {
	uint8_t ci[8], term[8];
	kvp e[3];
} metabuf;

static void meta_entries(metabuf *mb, const char *storage_version)
{
	putbe64(mb->ci, 42);
	putbe64(mb->term, 3);
	size_t n = 0;
	mb->e[n++] = (kvp){ "consistent_index", 16, mb->ci, 8, 0 };
	if (storage_version)
		mb->e[n++] = (kvp){ "storageVersion", 14, storage_version, strlen(storage_version), 0 };
	mb->e[n++] = (kvp){ "term", 4, mb->term, 8, 0 };
	if (n < 3)
		mb->e[2] = (kvp){ NULL, 0, NULL, 0, 0 };
}

static size_t n_meta(const metabuf *mb) { return mb->e[2].k ? 3 : 2; }

/*
 * The standard database (7 pages of 4096 bytes):
 *   0, 1  meta (txid 4 and 5; page 1 is current), root 3, freelist 2, hwm 7
 *   2     freelist: page 6
 *   3     root leaf: "key" -> page 4, "lease" inline and empty, "meta" -> page 5
 *   4     leaf of "key": six revisions (puts, an update, a tombstone)
 *   5     leaf of "meta": consistent_index 42, storageVersion 3.6.0, term 3
 *   6     free
 */
static img std_db(void)
{
	img m = { NULL, 0 };
	meta(&m, 0, 3, 2, 7, 4);
	meta(&m, 1, 3, 2, 7, 5);
	uint64_t free_ids[] = { 6 };
	freelist(&m, 2, free_ids, 1, 0);
	uint8_t bk[16], bm[16], inl[64];
	bucket_val(bk, 4);
	bucket_val(bm, 5);
	size_t inl_len = inline_val(inl, NULL, 0);
	kvp root[] = { { "key", 3, bk, 16, 1 }, { "lease", 5, inl, inl_len, 1 },
	               { "meta", 4, bm, 16, 1 } };
	leaf(&m, 3, root, 3);
	keybuf kb;
	key_entries(&kb);
	leaf(&m, 4, kb.e, N_EVENTS);
	metabuf mb;
	meta_entries(&mb, "3.6.0");
	leaf(&m, 5, mb.e, n_meta(&mb));
	hdr(page(&m, 6), 6, 0x02, 0, 0);   /* a stale page, now free */
	return m;
}

/* Bitwise CRC-32C: the reference the fast paths are checked against. */
static uint32_t crc_ref(uint32_t crc, const void *data, size_t n)
{
	const uint8_t *p = data;
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* The hash etcdutl prints for std_db(), computed the slow, obvious way. */
static uint32_t std_hash(void)
{
	keybuf kb;
	key_entries(&kb);
	metabuf mb;
	meta_entries(&mb, "3.6.0");
	uint32_t h = crc_ref(0, "key", 3);
	for (size_t i = 0; i < N_EVENTS; i++) {
		h = crc_ref(h, kb.e[i].k, kb.e[i].klen);
		h = crc_ref(h, kb.e[i].v, kb.e[i].vlen);
	}
	h = crc_ref(h, "lease", 5);
	h = crc_ref(h, "meta", 4);
	for (size_t i = 0; i < n_meta(&mb); i++) {
		h = crc_ref(h, mb.e[i].k, mb.e[i].klen);
		h = crc_ref(h, mb.e[i].v, mb.e[i].vlen);
	}
	return h;
}

/* ------------------------------------------------------------------ */
/* Files */

static char tmpdir[64];

static const char *write_file(const char *name, const void *data, size_t n)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n)) {
		perror(path);
		exit(1);
	}
	close(fd);
	return path;
}

/* img + its SHA-256 trailer, as etcd streams it. */
static const char *write_snapshot(const char *name, const img *m)
{
	uint8_t *b = malloc(m->len + 32);
	memcpy(b, m->b, m->len);
	SHA256(m->b, m->len, b + m->len);
	const char *p = write_file(name, b, m->len + 32);
	free(b);
	return p;
}

static kt_code status_of(const img *m, kt_snapshot_stat *st, kt_error *err)
{
	const char *p = write_file("s.db", m->b, m->len);
	kt_error_clear(err);
	memset(st, 0, sizeof(*st));
	return kt_snapshot_status(p, st, err);
}

static kt_code verify_of(const img *m, kt_snapshot_report *r, kt_error *err)
{
	const char *p = write_file("v.db", m->b, m->len);
	kt_error_clear(err);
	return kt_snapshot_verify(p, r, err);
}

/* Status and verify must both refuse m with code and a message naming needle. */
static void expect_bad(const img *m, kt_code code, const char *needle)
{
	kt_error err;
	kt_snapshot_stat st;
	kt_snapshot_report r;
	CHECK_EQ_U(status_of(m, &st, &err), code);
	CHECK_CONTAINS(err.msg, needle);
	CHECK_EQ_U(verify_of(m, &r, &err), code);
	CHECK_CONTAINS(err.msg, needle);
	kt_snapshot_report_release(&r);
}

/* ------------------------------------------------------------------ */
/* Small pieces */

static void test_crc32c(void)
{
	kt_crc32c *hw = malloc(sizeof(*hw)), *sw = malloc(sizeof(*sw));
	kt_crc32c_init(hw, 0);
	kt_crc32c_update(hw, "123456789", 9);
	CHECK_EQ_U(kt_crc32c_final(hw), 0xE3069283u);
	kt_crc32c_init(sw, 1);
	CHECK(sw->hw == 0);
	kt_crc32c_update(sw, "123456789", 9);
	CHECK_EQ_U(kt_crc32c_final(sw), 0xE3069283u);
	/* Every length and alignment up to a few blocks, both paths, in pieces. */
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + (i >> 5));
	for (size_t len = 0; len < sizeof(data) - 8; len += 97) {
		for (size_t off = 0; off < 8; off += 3) {
			uint32_t want = crc_ref(0, data + off, len);
			kt_crc32c_init(hw, 0);
			kt_crc32c_init(sw, 1);
			size_t half = len / 3;
			kt_crc32c_update(hw, data + off, half);
			kt_crc32c_update(hw, data + off + half, len - half);
			kt_crc32c_update(sw, data + off, len);
			CHECK_EQ_U(kt_crc32c_final(hw), want);
			CHECK_EQ_U(kt_crc32c_final(sw), want);
		}
	}
	free(hw);
	free(sw);
}

static void test_semver(void)
{
	char v[32];
#define SV(in, ok, out) do { CHECK_EQ_U(kt_snapshot_semver((const uint8_t *)(in), strlen(in), v, \
	sizeof(v)), (ok)); CHECK_STR(v, (out)); } while (0)
	SV("3.6.0", 1, "3.6.0");
	SV("03.6.00", 1, "3.6.0");
	SV("3.6.0-rc.1+build.5", 1, "3.6.0-rc.1+build.5");
	SV("3.6.0-", 1, "3.6.0");
	SV("3.6.0+", 1, "3.6.0");
	SV("3.6", 0, "");
	SV("", 0, "");
	SV("1.2.3.4", 0, "");
	SV("1.2.x", 0, "");
	SV("1..2", 0, "");
	SV("99999999999999999999.0.0", 0, "");
	SV("9223372036854775807.0.0", 1, "9223372036854775807.0.0");
	SV("1.2.3-a-b", 1, "1.2.3-a-b");
#undef SV
}

static void test_keyvalue_decoding(void)
{
	kt_mvcc_kv kv;
	uint8_t b[64];
	size_t n = kv_enc(b, "/registry/pods/x", 2, 9, 1, "v");
	CHECK(kt_mvcc_kv_parse(b, n, &kv) == NULL);
	CHECK_EQ_U(kv.key_len, 16);
	CHECK(memcmp(kv.key, "/registry/pods/x", 16) == 0);
	CHECK_EQ_U(kv.mod_revision, 9);
	CHECK(kt_mvcc_kv_parse(b, 0, &kv) == NULL);        /* empty: a KeyValue with no key */
	CHECK(kt_mvcc_kv_parse(b, n - 1, &kv) != NULL);    /* value cut short */
	const uint8_t wrong_type[] = { 0x08, 0x01 };       /* field 1 as a varint */
	CHECK_CONTAINS(kt_mvcc_kv_parse(wrong_type, 2, &kv), "field 1");
	const uint8_t group[] = { 0x3b, 0x08, 0x01, 0x3c, 0x0a, 0x01, 'k' };  /* field 7 group */
	CHECK(kt_mvcc_kv_parse(group, sizeof(group), &kv) == NULL);
	CHECK_EQ_U(kv.key_len, 1);
	const uint8_t stray_end[] = { 0x3c };
	CHECK(kt_mvcc_kv_parse(stray_end, 1, &kv) != NULL);
	const uint8_t long_varint[] = { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                0x7f };   /* 10 bytes: accepted, high bits dropped */
	CHECK(kt_mvcc_kv_parse(long_varint, sizeof(long_varint), &kv) == NULL);
	const uint8_t too_long[] = { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                             0xff, 0x01 };
	CHECK(kt_mvcc_kv_parse(too_long, sizeof(too_long), &kv) != NULL);
	const uint8_t field0[] = { 0x02, 0x00 };
	CHECK(kt_mvcc_kv_parse(field0, 2, &kv) != NULL);
	const uint8_t wt7[] = { 0x3f };
	CHECK(kt_mvcc_kv_parse(wt7, 1, &kv) != NULL);
}

/* ------------------------------------------------------------------ */
/* Good databases */

static void test_status_numbers(void)
{
	img m = std_db();
	kt_error err;
	kt_snapshot_stat st;
	CHECK_EQ_U(status_of(&m, &st, &err), KT_OK);
	CHECK_STR(err.msg, "");
	CHECK_EQ_U(st.hash, std_hash());
	CHECK_EQ_U(st.revision, 7);
	CHECK_EQ_U(st.total_key, 3);   /* b, w and /other/x live; a was deleted */
	CHECK_EQ_U(st.total_size, 7 * PS);
	CHECK_STR(st.version, "3.6.0");

	/* The same database as a streamed snapshot: same numbers. */
	const char *p = write_snapshot("t.db", &m);
	kt_snapshot_stat st2;
	CHECK_EQ_U(kt_snapshot_status(p, &st2, &err), KT_OK);
	CHECK(memcmp(&st, &st2, sizeof(st)) == 0);
	free(m.b);
}

static void test_status_before_36(void)
{
	/* etcd 3.4/3.5 write no storageVersion: version is "". */
	img m = std_db();
	metabuf mb;
	meta_entries(&mb, NULL);
	memset(page(&m, 5), 0, PS);
	leaf(&m, 5, mb.e, n_meta(&mb));
	kt_error err;
	kt_snapshot_stat st;
	CHECK_EQ_U(status_of(&m, &st, &err), KT_OK);
	CHECK_STR(st.version, "");
	CHECK_EQ_U(st.revision, 7);
	free(m.b);
}

static void test_verify_report(void)
{
	img m = std_db();
	const char *p = write_snapshot("t.db", &m);
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_report r;
	CHECK_EQ_U(kt_snapshot_verify(p, &r, &err), KT_OK);
	CHECK_STR(err.msg, "");
	CHECK_EQ_U(r.trailer, KT_TRAILER_OK);
	CHECK_EQ_U(r.file_size, 7 * PS + 32);
	CHECK_EQ_U(r.page_size, PS);
	CHECK_EQ_U(r.n_pages, 7);
	CHECK_EQ_U(r.n_reachable, 6);   /* 0, 1, freelist 2, root 3, 4, 5 */
	CHECK_EQ_U(r.n_free, 1);
	CHECK(r.has_freelist);
	CHECK_EQ_U(r.txid, 5);
	CHECK_EQ_U(r.consistent_index, 42);
	CHECK_EQ_U(r.term, 3);
	CHECK_EQ_U(r.n_buckets, 3);
	CHECK_EQ_U(r.status.hash, std_hash());
	CHECK_EQ_U(r.n_resources, 2);
	if (r.n_resources == 2) {
		CHECK_STR(r.resources[0].resource, "apps.example.com/widgets");
		CHECK_EQ_U(r.resources[0].count, 1);
		CHECK_STR(r.resources[1].resource, "pods");
		CHECK_EQ_U(r.resources[1].count, 1);
	}
	CHECK_EQ_U(r.n_kube_objects, 2);
	kt_snapshot_report_release(&r);

	/* A raw db has no trailer, and that is fine. */
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_OK);
	CHECK_EQ_U(r.trailer, KT_TRAILER_NONE);
	kt_snapshot_report_release(&r);
	free(m.b);
}

static void test_freelist_forms(void)
{
	kt_error err;
	kt_snapshot_report r;
	/* count 0xFFFF: the real count is the first u64. */
	img m = std_db();
	uint64_t ids[] = { 6 };
	freelist(&m, 2, ids, 1, 1);
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_OK);
	CHECK_EQ_U(r.n_free, 1);
	kt_snapshot_report_release(&r);
	free(m.b);

	/* No freelist synced (etcd's default): free = every unreachable page. */
	m = std_db();
	put64(m.b + PS + 16 + 32, KT_BBOLT_NO_FREELIST);
	fix_meta(&m, 1);
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_OK);
	CHECK(!r.has_freelist);
	CHECK_EQ_U(r.n_reachable, 5);
	CHECK_EQ_U(r.n_free, 2);   /* the old freelist page 2 and page 6 */
	kt_snapshot_report_release(&r);
	free(m.b);
}

typedef struct seen {
	char log[1024];
	size_t o;
} seen;

static kt_code record(void *ctx, const kt_bbolt_entry *e, kt_error *err)
{
	(void)err;
	seen *s = ctx;
	s->o += (size_t)snprintf(s->log + s->o, sizeof(s->log) - s->o, "%zu:", e->depth);
	for (size_t i = 0; i < e->depth; i++)
		s->o += (size_t)snprintf(s->log + s->o, sizeof(s->log) - s->o, "%.*s/",
		                         (int)e->path[i].len, (const char *)e->path[i].data);
	s->o += (size_t)snprintf(s->log + s->o, sizeof(s->log) - s->o, "%.*s%s%s ",
	                         (int)e->key.len, (const char *)e->key.data,
	                         e->flags & KT_BBOLT_BUCKET ? "[b]" : "",
	                         e->flags & KT_BBOLT_INLINE ? "[i]" : "");
	return KT_OK;
}

/* Nested and inline buckets, a branch page, overflow pages: walk order and hash. */
static void test_nested_branch_overflow(void)
{
	img m = { NULL, 0 };
	/* pages: 2 root leaf, 3 branch of "big", 4 + 5 its leaves (5 has 2 overflow
	 * pages: 5, 6, 7), 8 root of "outer", 9 root of "outer/deep" */
	uint8_t vbig[16], vouter[16], vdeep[16], vin[128], bigval[9000];
	memset(bigval, 'z', sizeof(bigval));
	bucket_val(vbig, 3);
	bucket_val(vouter, 8);
	bucket_val(vdeep, 9);
	kvp inl[] = { { "i1", 2, "v1", 2, 0 }, { "i2", 2, "v2", 2, 0 } };
	size_t vin_len = inline_val(vin, inl, 2);
	kvp root[] = { { "big", 3, vbig, 16, 1 }, { "inl", 3, vin, vin_len, 1 },
	               { "outer", 5, vouter, 16, 1 } };
	leaf(&m, 2, root, 3);
	kvp bk[] = { { "a", 1, NULL, 0, 0 }, { "m", 1, NULL, 0, 0 } };
	uint64_t ch[] = { 4, 5 };
	branch(&m, 3, bk, ch, 2);
	kvp l4[] = { { "a", 1, "1", 1, 0 }, { "b", 1, "2", 1, 0 } };
	leaf(&m, 4, l4, 2);
	kvp l5[] = { { "m", 1, bigval, sizeof(bigval), 0 }, { "n", 1, "3", 1, 0 } };
	leaf(&m, 5, l5, 2);
	CHECK_EQ_U(m.len / PS, 8);   /* the big value spilled into two overflow pages */
	kvp o8[] = { { "deep", 4, vdeep, 16, 1 }, { "x", 1, "4", 1, 0 } };
	leaf(&m, 8, o8, 2);
	kvp d9[] = { { "y", 1, "5", 1, 0 } };
	leaf(&m, 9, d9, 1);
	meta(&m, 0, 2, KT_BBOLT_NO_FREELIST, 10, 1);
	meta(&m, 1, 2, KT_BBOLT_NO_FREELIST, 10, 0);

	const char *p = write_file("n.db", m.b, m.len);
	int fd = open(p, O_RDONLY);
	kt_bbolt *db = NULL;
	kt_error err;
	kt_error_clear(&err);
	CHECK_EQ_U(kt_bbolt_open(&db, fd, m.len, &err), KT_OK);
	if (db) {
		CHECK_EQ_U(kt_bbolt_get_info(db)->meta_page, 0);
		seen s = { { 0 }, 0 };
		kt_bbolt_stats st;
		CHECK_EQ_U(kt_bbolt_walk(db, record, &s, &st, &err), KT_OK);
		CHECK_STR(s.log, "0:big[b] 1:big/a 1:big/b 1:big/m 1:big/n 0:inl[b][i] 1:inl/i1 "
		                 "1:inl/i2 0:outer[b] 1:outer/deep[b] 2:outer/deep/y 1:outer/x ");
		CHECK_EQ_U(st.n_buckets, 4);
		CHECK_EQ_U(st.n_inline, 1);
		CHECK_EQ_U(st.n_branch, 1);
		CHECK_EQ_U(st.n_reachable, 10);
		CHECK_EQ_U(st.n_free, 0);
		kt_bbolt_free(db);
	}
	close(fd);

	/* etcdutl's hash: ForEach of each top-level bucket; nested buckets give a
	 * key and no value, and their contents are not visited. */
	uint32_t h = crc_ref(0, "big", 3);
	h = crc_ref(h, "a1b2m", 5);
	h = crc_ref(h, bigval, sizeof(bigval));
	h = crc_ref(h, "n3", 2);
	h = crc_ref(h, "inli1v1i2v2", 11);
	h = crc_ref(h, "outerdeepx4", 11);
	kt_snapshot_stat sst;
	CHECK_EQ_U(status_of(&m, &sst, &err), KT_OK);
	CHECK_EQ_U(sst.hash, h);
	CHECK_EQ_U(sst.total_key, 0);   /* no "key" bucket: no etcd keys */
	CHECK_EQ_U(sst.total_size, 10 * PS);
	kt_snapshot_report r;
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_ECORRUPT);   /* not an etcd database */
	CHECK_CONTAINS(err.msg, "no bucket 'key'");
	kt_snapshot_report_release(&r);

	/* The walker checks branch keys bound their children: "a" under "m". */
	kvp bad[] = { { "m", 1, "x", 1, 0 }, { "z", 1, "3", 1, 0 } };
	memset(page(&m, 5), 0, 3 * PS);
	leaf(&m, 5, bad, 2);
	kvp l4b[] = { { "a", 1, "1", 1, 0 }, { "q", 1, "2", 1, 0 } };
	memset(page(&m, 4), 0, PS);
	leaf(&m, 4, l4b, 2);   /* "q" >= "m", the next branch key: misplaced */
	CHECK_EQ_U(status_of(&m, &sst, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "page 4 at byte 16384: element 1 key is not below");
	free(m.b);
}

/* One meta damaged: bbolt falls back to the other, so do we. */
static void test_meta_fallback(void)
{
	img m = std_db();
	m.b[PS + 16 + 40] ^= 0x01;   /* current meta (page 1) now fails its checksum */
	kt_error err;
	kt_snapshot_report r;
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_OK);
	CHECK_EQ_U(r.txid, 4);
	kt_snapshot_report_release(&r);
	free(m.b);
}

/* ------------------------------------------------------------------ */
/* Bad input */

static void test_empty_and_tiny(void)
{
	img m = { (uint8_t *)"", 0 };
	expect_bad(&m, KT_ECORRUPT, "empty");
	uint8_t small[512] = { 0 };
	m.b = small;
	m.len = sizeof(small);
	expect_bad(&m, KT_ECORRUPT, "magic");
}

static void test_truncated(void)
{
	img m = std_db();
	kt_error err;
	kt_snapshot_stat st;
	kt_snapshot_report r;
	/* Cut at a page boundary: the meta page says 7 pages. */
	m.len = 5 * PS;
	expect_bad(&m, KT_ECORRUPT, "truncated: page 6 needs bytes up to 28672 but the file has 20480");
	/* Cut anywhere: verify says it is no snapshot size, status that pages are missing. */
	m.len = 5 * PS + 100;
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "truncated?");
	kt_snapshot_report_release(&r);
	CHECK_EQ_U(status_of(&m, &st, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "truncated: page 6");
	/* A snapshot cut inside its trailer. */
	m.len = 7 * PS;
	const char *p = write_snapshot("t.db", &m);
	CHECK(truncate(p, 7 * PS + 16) == 0);
	CHECK_EQ_U(kt_snapshot_verify(p, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "not a snapshot size");
	kt_snapshot_report_release(&r);
	free(m.b);
}

static void test_huge_declarations(void)
{
	kt_error err;
	kt_snapshot_stat st;
	/* A high-water mark of 2^40 pages: no 2^40-bit bitmap, just an error. */
	img m = std_db();
	put64(m.b + PS + 16 + 40, 1ull << 40);
	fix_meta(&m, 1);
	expect_bad(&m, KT_ECORRUPT, "truncated: page 1099511627775 needs bytes up to");
	/* ... and one that does not even fit in 64 bits of bytes. */
	put64(m.b + PS + 16 + 40, UINT64_MAX / 2);
	fix_meta(&m, 1);
	CHECK_EQ_U(status_of(&m, &st, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "more than any file holds");
	free(m.b);

	/* A leaf that declares 65520 elements in a 4096-byte page. */
	m = std_db();
	put16(m.b + 4 * PS + 10, 0xFFF0);
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384: 65520 elements need 1048336 bytes but "
	                            "the page is 4096 bytes");
	free(m.b);

	/* An overflow of 2^32 - 1 pages. */
	m = std_db();
	put32(m.b + 4 * PS + 12, 0xFFFFFFFF);
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384 (root of bucket 'key'): 4294967295 "
	                            "overflow pages run past the high-water mark");
	free(m.b);

	/* An element whose key runs off the page. */
	m = std_db();
	put32(m.b + 4 * PS + 16 + 2 * 16 + 8, 5000);   /* element 2 ksize */
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384: element 2 key extends past the page");
	free(m.b);

	/* A freelist claiming more ids than its page holds. */
	m = std_db();
	freelist(&m, 2, NULL, 0, 1);
	put64(m.b + 2 * PS + 16, 1ull << 60);
	expect_bad(&m, KT_ECORRUPT, "freelist page 2 at byte 8192: declares 1152921504606846976");
	free(m.b);
}

static void test_wrong_magic_and_checksum(void)
{
	img m = std_db();
	put32(m.b + 16, 0xDEADBEEF);
	put32(m.b + PS + 16, 0xDEADBEEF);
	expect_bad(&m, KT_ECORRUPT, "wrong magic 0xdeadbeef");
	free(m.b);

	m = std_db();
	m.b[16 + 40] ^= 0x10;
	m.b[PS + 16 + 40] ^= 0x10;
	expect_bad(&m, KT_ECORRUPT, "checksum");
	kt_error err;
	kt_snapshot_stat st;
	status_of(&m, &st, &err);
	CHECK_CONTAINS(err.msg, "meta page 1 at byte 4096: checksum");

	m.b[16 + 40] ^= 0x10;
	m.b[PS + 16 + 40] ^= 0x10;
	put32(m.b + 16 + 4, 1);
	put32(m.b + PS + 16 + 4, 1);
	expect_bad(&m, KT_ECORRUPT, "unsupported version 1");
	free(m.b);
}

static void test_flipped_data_vs_trailer(void)
{
	img m = std_db();
	uint8_t *b = malloc(m.len + 32);
	memcpy(b, m.b, m.len);
	SHA256(m.b, m.len, b + m.len);
	uint8_t *hit = memmem(b, m.len, "pod-b-v2", 8);
	CHECK(hit != NULL);
	if (hit)
		hit[2] ^= 0x01;
	const char *p = write_file("f.db", b, m.len + 32);
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_report r;
	CHECK_EQ_U(kt_snapshot_verify(p, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "SHA-256 trailer mismatch");
	CHECK_EQ_U(r.trailer, KT_TRAILER_BAD);
	kt_snapshot_report_release(&r);
	/* status reads the database, not the trailer (as etcdutl): a new hash. */
	kt_snapshot_stat st;
	CHECK_EQ_U(kt_snapshot_status(p, &st, &err), KT_OK);
	CHECK(st.hash != std_hash());

	/* kt_snapshot_check_trailer by itself. */
	int fd = open(p, O_RDONLY);
	kt_trailer t = KT_TRAILER_NONE;
	CHECK_EQ_U(kt_snapshot_check_trailer(fd, m.len + 32, &t, &err), KT_ECORRUPT);
	CHECK_EQ_U(t, KT_TRAILER_BAD);
	CHECK_EQ_U(kt_snapshot_check_trailer(fd, m.len, &t, &err), KT_OK);
	CHECK_EQ_U(t, KT_TRAILER_NONE);
	close(fd);
	if (hit)
		hit[2] ^= 0x01;
	p = write_file("f.db", b, m.len + 32);
	fd = open(p, O_RDONLY);
	CHECK_EQ_U(kt_snapshot_check_trailer(fd, m.len + 32, &t, &err), KT_OK);
	CHECK_EQ_U(t, KT_TRAILER_OK);
	close(fd);
	free(b);
	free(m.b);
}

static void test_structure_damage(void)
{
	img m = std_db();
	/* Root outside the file. */
	put64(m.b + PS + 16 + 16, 100);
	fix_meta(&m, 1);
	expect_bad(&m, KT_ECORRUPT, "root bucket page 100 is past the high-water mark");
	free(m.b);

	/* A bucket whose root page lies past the high-water mark. */
	m = std_db();
	put64(m.b + 3 * PS + 16 + 3 * 16 + 3, 1000);   /* value of "key": {root, seq} after "key" */
	expect_bad(&m, KT_ECORRUPT, "page 1000 (root of bucket 'key') is past the high-water mark");
	free(m.b);

	/* A header that names another page. */
	m = std_db();
	put64(m.b + 5 * PS, 9);
	expect_bad(&m, KT_ECORRUPT, "page 5 at byte 20480 (root of bucket 'meta'): header says "
	                            "page 9");
	free(m.b);

	/* A data page whose flags say something else (a flipped bit). */
	m = std_db();
	m.b[4 * PS + 8] ^= 0x40;
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384 (root of bucket 'key'): expected a branch "
	                            "(0x01) or leaf (0x02) page, found flags 0x42");
	free(m.b);

	/* A bucket pointing at a meta page. */
	m = std_db();
	put64(m.b + 3 * PS + 16 + 3 * 16 + 3, 1);
	expect_bad(&m, KT_ECORRUPT, "page 1 at byte 4096 (root of bucket 'key') is a meta page");
	free(m.b);

	/* Keys out of order in a leaf. */
	m = std_db();
	uint8_t *k0 = memmem(m.b + 4 * PS, PS, "\0\0\0\0\0\0\0\x02_", 9);
	CHECK(k0 != NULL);
	if (k0)
		k0[7] = 9;   /* revision 2 becomes 9: now above revision 3 */
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384: element 1 key is not above element 0 key");
	free(m.b);

	/* A top-level key that is not a bucket. */
	m = std_db();
	put32(m.b + 3 * PS + 16 + 16, 0);   /* element 1 ("lease") loses its bucket flag */
	kt_error err;
	kt_snapshot_stat st;
	CHECK_EQ_U(status_of(&m, &st, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "top-level key 'lease'");
	free(m.b);
}

/* A branch page whose child is itself, and two parents sharing a page. */
static void test_cycle_and_sharing(void)
{
	img m = std_db();
	/* Move the "key" leaf to page 6 and put a branch at 4 pointing to 6 and 4. */
	memcpy(page(&m, 6), m.b + 4 * PS, PS);
	put64(m.b + 6 * PS, 6);
	uint8_t k2[17], k100[17];
	rev(k2, 2, 0, 0);
	rev(k100, 100, 0, 0);
	kvp keys[] = { { k2, 17, NULL, 0, 0 }, { k100, 17, NULL, 0, 0 } };
	uint64_t child[] = { 4, 6 };
	memset(m.b + 4 * PS, 0, PS);
	branch(&m, 4, keys, child, 2);
	freelist(&m, 2, NULL, 0, 0);
	expect_bad(&m, KT_ECORRUPT, "page 4 at byte 16384 (child 0 of page 4 in bucket 'key') is "
	                            "reached a second time");

	/* Both children the same leaf: shared, not a cycle, the same verdict. */
	put64(m.b + 4 * PS + 16 + 8, 6);
	expect_bad(&m, KT_ECORRUPT, "page 6 at byte 24576 (child 1 of page 4 in bucket 'key') is "
	                            "reached a second time");
	free(m.b);
}

static void test_freelist_mismatch(void)
{
	/* Page 6 neither reachable nor free. */
	img m = std_db();
	freelist(&m, 2, NULL, 0, 0);
	expect_bad(&m, KT_ECORRUPT, "page 6 at byte 24576 is neither reachable nor on the freelist");
	/* A reachable page on the freelist. */
	uint64_t ids[] = { 5, 6 };
	freelist(&m, 2, ids, 2, 0);
	expect_bad(&m, KT_ECORRUPT, "page 5 at byte 20480 (root of bucket 'meta') is on the "
	                            "freelist but in use");
	/* Out of range and duplicate ids. */
	uint64_t far[] = { 6, 70 };
	freelist(&m, 2, far, 2, 0);
	expect_bad(&m, KT_ECORRUPT, "entry 1 is page 70, past the high-water mark");
	uint64_t dup[] = { 6, 6 };
	freelist(&m, 2, dup, 2, 0);
	expect_bad(&m, KT_ECORRUPT, "entry 1 is page 6, listed twice");
	/* The freelist page is not a freelist. */
	hdr(m.b + 2 * PS, 2, 0x02, 0, 0);
	expect_bad(&m, KT_ECORRUPT, "page 2 at byte 8192 (the freelist): expected a freelist page");
	free(m.b);
}

static void test_etcd_buckets(void)
{
	kt_error err;
	kt_snapshot_report r;
	kt_snapshot_stat st;
	/* A key in "key" that is no revision: status (like etcdutl 3.6) refuses too. */
	img m = std_db();
	uint8_t *k0 = memmem(m.b + 4 * PS, PS, "\0\0\0\0\0\0\0\x02_", 9);
	if (k0)
		k0[8] = '-';
	expect_bad(&m, KT_ECORRUPT, "in bucket 'key' is not a revision");
	free(m.b);

	/* A value that is no KeyValue. */
	m = std_db();
	uint8_t *v = memmem(m.b + 4 * PS, PS, "\x0a\x18/registry/pods/default/a", 26);
	CHECK(v != NULL);
	if (v)
		v[1] = 0x7f;   /* key length past the end of the value */
	expect_bad(&m, KT_ECORRUPT, "is not an mvccpb.KeyValue");
	free(m.b);

	/* A put whose mod_revision disagrees with its key: verify only. */
	m = std_db();
	v = memmem(m.b + 4 * PS, PS, "pod-b-v2", 8);
	CHECK(v != NULL);
	if (v) {
		/* ... 0x10 create 0x18 mod 0x20 ver 0x2a len "pod-b-v2": mod sits 6 bytes before */
		CHECK_EQ_U(v[-6], 0x18);
		v[-5] = 8;
	}
	CHECK_EQ_U(status_of(&m, &st, &err), KT_OK);
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "revision 7.0 (key at byte");
	CHECK_CONTAINS(err.msg, "holds mod_revision 8");
	kt_snapshot_report_release(&r);
	free(m.b);

	/* No consistent_index in "meta". */
	m = std_db();
	uint8_t *ci = memmem(m.b + 5 * PS, PS, "consistent_index", 16);
	if (ci)
		ci[0] = 'C';   /* now sorts before... still first, but a different key */
	CHECK_EQ_U(status_of(&m, &st, &err), KT_OK);
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "bucket 'meta' has no consistent_index");
	kt_snapshot_report_release(&r);
	free(m.b);

	/* consistent_index of the wrong size. */
	m = std_db();
	ci = memmem(m.b + 5 * PS, PS, "consistent_index", 16);
	put32(m.b + 5 * PS + 16 + 12, 4);   /* element 0 vsize */
	CHECK_EQ_U(verify_of(&m, &r, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "consistent_index at byte");
	CHECK_CONTAINS(err.msg, "expected an 8-byte big-endian integer");
	kt_snapshot_report_release(&r);
	free(m.b);
}

static void test_files(void)
{
	kt_error err;
	kt_snapshot_stat st;
	kt_snapshot_report r;
	kt_error_clear(&err);
	CHECK_EQ_U(kt_snapshot_status(tmpdir, &st, &err), KT_EIO);
	CHECK_CONTAINS(err.msg, "Is a directory");
	CHECK_CONTAINS(err.msg, tmpdir);
	CHECK_EQ_U(kt_snapshot_verify(tmpdir, &r, &err), KT_EIO);
	CHECK_CONTAINS(err.msg, "Is a directory");
	kt_snapshot_report_release(&r);

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/nope.db", tmpdir);
	CHECK_EQ_U(kt_snapshot_status(missing, &st, &err), KT_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "cannot open snapshot");
	CHECK_CONTAINS(err.msg, "nope.db': No such file or directory");

	/* A FIFO must not hang the open. */
	char fifo[128];
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	if (mkfifo(fifo, 0600) == 0) {
		CHECK_EQ_U(kt_snapshot_status(fifo, &st, &err), KT_EIO);
		CHECK_CONTAINS(err.msg, "not a regular file");
		unlink(fifo);
	}
}

/*
 * No permission.  chmod 000 does not stop root, so when running as root the
 * check runs in a child that has dropped to nobody (65534): the real kernel
 * refusal, not a simulation.  The child reports code and message by pipe.
 */
static void test_no_permission(void)
{
	img m = std_db();
	const char *p = write_file("private.db", m.b, m.len);
	chmod(p, 0600);
	free(m.b);
	if (geteuid() != 0) {
		chmod(p, 0000);
		kt_error err;
		kt_snapshot_stat st;
		kt_error_clear(&err);
		CHECK_EQ_U(kt_snapshot_status(p, &st, &err), KT_EPERM);
		CHECK_CONTAINS(err.msg, "private.db': Permission denied");
		return;
	}
	int fds[2];
	CHECK(pipe(fds) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		kt_error err;
		kt_error_clear(&err);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(99);
		kt_snapshot_stat st;
		kt_code c = kt_snapshot_status(p, &st, &err);
		char out[KT_ERROR_MSG_MAX + 8];
		int n = snprintf(out, sizeof(out), "%d %s", (int)c, err.msg);
		if (write(fds[1], out, (size_t)n) != n)
			_exit(98);
		_exit(0);
	}
	close(fds[1]);
	char got[KT_ERROR_MSG_MAX + 8] = { 0 };
	size_t o = 0;
	ssize_t n;
	while (o < sizeof(got) - 1 && (n = read(fds[0], got + o, sizeof(got) - 1 - o)) > 0)
		o += (size_t)n;
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char want[16];
	snprintf(want, sizeof(want), "%d ", (int)KT_EPERM);
	CHECK(strncmp(got, want, strlen(want)) == 0);
	CHECK_CONTAINS(got, "Permission denied");
	CHECK_CONTAINS(got, "private.db");
}

/* The fd entry points on a memfd, as the fuzzer uses them. */
static void test_fd_entry_points(void)
{
	img m = std_db();
	int fd = memfd_create("t", 0);
	CHECK(fd >= 0);
	CHECK(write(fd, m.b, m.len) == (ssize_t)m.len);
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_stat st;
	CHECK_EQ_U(kt_snapshot_status_fd(fd, m.len, "mem", &st, &err), KT_OK);
	CHECK_EQ_U(st.revision, 7);
	kt_snapshot_report r;
	/* A size larger than the data: reads stop at EOF with a message, no hang. */
	CHECK_EQ_U(kt_snapshot_verify_fd(fd, m.len + 8 * PS, "mem", &r, &err), KT_OK);
	kt_snapshot_report_release(&r);
	CHECK_EQ_U(kt_snapshot_status_fd(fd, 3 * PS, "mem", &st, &err), KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "snapshot 'mem': truncated");
	close(fd);
	free(m.b);
}

/* ------------------------------------------------------------------ */
/* Fuzz seeds: `KT_WRITE_SEEDS=DIR test_snapshot` writes small databases
 * (1 KiB pages) into DIR and exits; fuzz/corpus/bbolt/ was made this way. */

static void write_seed(const char *dir, const char *name, const img *m, int trailer)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint8_t sum[32];
	SHA256(m->b, m->len, sum);
	if (fd < 0 || write(fd, m->b, m->len) != (ssize_t)m->len ||
	    (trailer && write(fd, sum, 32) != 32)) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static int write_seeds(const char *dir)
{
	PS = 1024;
	img m = std_db();
	write_seed(dir, "std-raw.db", &m, 0);
	write_seed(dir, "std-snapshot.db", &m, 1);
	put64(m.b + PS + 16 + 32, KT_BBOLT_NO_FREELIST);
	fix_meta(&m, 1);
	write_seed(dir, "no-freelist.db", &m, 0);
	free(m.b);

	/* A branch page, an overflow value, inline and nested buckets. */
	m = (img){ NULL, 0 };
	uint8_t vkey[16], vouter[16], vdeep[16], vin[128], big[1500];
	memset(big, 'z', sizeof(big));
	bucket_val(vkey, 3);
	bucket_val(vouter, 8);
	bucket_val(vdeep, 6);
	kvp inl[] = { { "i1", 2, "v1", 2, 0 } };
	size_t vin_len = inline_val(vin, inl, 1);
	uint8_t k2[17], k3[17], k9[18], v2[64], v3[64], v9[64];
	rev(k2, 2, 0, 0);
	rev(k3, 3, 0, 0);
	rev(k9, 9, 0, 1);
	size_t n2 = kv_enc(v2, "/registry/pods/ns/a", 2, 2, 1, "x");
	size_t n3 = kv_enc(v3, "/registry/apps.example.com/widgets/ns/w", 3, 3, 1, "y");
	size_t n9 = kv_enc(v9, "/registry/pods/ns/a", 0, 0, 0, NULL);
	uint8_t ci[8];
	putbe64(ci, 7);
	kvp root[] = { { "inl", 3, vin, vin_len, 1 }, { "key", 3, vkey, 16, 1 },
	               { "meta", 4, vouter, 16, 1 } };
	leaf(&m, 2, root, 3);
	kvp bk[] = { { k2, 17, NULL, 0, 0 }, { k3, 17, NULL, 0, 0 } };
	uint64_t ch[] = { 4, 5 };
	branch(&m, 3, bk, ch, 2);
	kvp l4[] = { { k2, 17, v2, n2, 0 } };
	leaf(&m, 4, l4, 1);
	kvp l5[] = { { k3, 17, v3, n3, 0 }, { k9, 18, v9, n9, 0 } };
	leaf(&m, 5, l5, 2);
	kvp o8[] = { { "consistent_index", 16, ci, 8, 0 }, { "deep", 4, vdeep, 16, 1 },
	             { "storageVersion", 14, "3.6.0", 5, 0 } };
	kvp d9[] = { { "y", 1, big, sizeof(big), 0 } };
	leaf(&m, 6, d9, 1);   /* 6 and 7: a value with one overflow page */
	leaf(&m, 8, o8, 3);
	meta(&m, 0, 2, KT_BBOLT_NO_FREELIST, 9, 6);
	meta(&m, 1, 2, KT_BBOLT_NO_FREELIST, 9, 7);
	write_seed(dir, "branch-overflow-nested.db", &m, 0);
	free(m.b);
	printf("seeds written to %s\n", dir);
	return 0;
}

int main(void)
{
	const char *seeds = getenv("KT_WRITE_SEEDS");
	if (seeds)
		return write_seeds(seeds);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kt-test-snapshot-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	chmod(tmpdir, 0755);   /* the no-permission child must reach the file */
	RUN(test_crc32c);
	RUN(test_semver);
	RUN(test_keyvalue_decoding);
	RUN(test_status_numbers);
	RUN(test_status_before_36);
	RUN(test_verify_report);
	RUN(test_freelist_forms);
	RUN(test_nested_branch_overflow);
	RUN(test_meta_fallback);
	RUN(test_empty_and_tiny);
	RUN(test_truncated);
	RUN(test_huge_declarations);
	RUN(test_wrong_magic_and_checksum);
	RUN(test_flipped_data_vs_trailer);
	RUN(test_structure_damage);
	RUN(test_cycle_and_sharing);
	RUN(test_freelist_mismatch);
	RUN(test_etcd_buckets);
	RUN(test_files);
	RUN(test_no_permission);
	RUN(test_fd_entry_points);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_done();
}
