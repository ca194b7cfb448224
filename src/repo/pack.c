/*
 * pack.c - packs (sealed blobs followed by a sealed header) and index
 * files, docs/repository-format.md "Packs" and "Index".
 *
 * Invariants:
 *   1. The parsers (kt_repo_entries_parse, kt_repo_index_parse) take
 *      hostile bytes: every count, offset and length is checked against the
 *      format's rules and the bytes at hand before anything is allocated
 *      from it or any offset is trusted.  They are fuzzed.
 *   2. A blob is only ever returned after it authenticated under its own
 *      id, decompressed to exactly raw_length bytes and hashed to its id.
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "repo_int.h"

static const char hdr_aad[] = "kontinuity pack header v1";
static const char idx_aad[] = "kontinuity index v1";

size_t kt_repo_blob_aad(kt_blob_type type, const uint8_t id[32], uint8_t buf[64])
{
	const char *role = type == KT_BLOB_TREE ? "kontinuity tree v1" : "kontinuity data v1";
	size_t n = strlen(role);
	memcpy(buf, role, n);
	memcpy(buf + n, id, 32);
	return n + 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void entry_put(uint8_t *p, const kt_repo_entry *e)
{
	p[0] = e->type;
	p[1] = e->compression;
	put32(p + 2, e->offset);
	put32(p + 6, e->length);
	put32(p + 10, e->raw_length);
	memcpy(p + 14, e->id, 32);
}

static void entry_get(const uint8_t *p, kt_repo_entry *e)
{
	e->type = p[0];
	e->compression = p[1];
	e->offset = get32(p + 2);
	e->length = get32(p + 6);
	e->raw_length = get32(p + 10);
	memcpy(e->id, p + 14, 32);
}

kt_code kt_repo_pack_add(const kt_repo_keys *k, kt_buf *pack, kt_blob_type type, const void *data,
                         size_t n, int level, kt_repo_entry *e, kt_error *err)
{
	if (n > KT_REPO_MAX_BLOB)
		return kt_error_set(err, KT_ELIMIT, "blob of %zu bytes exceeds %u", n, KT_REPO_MAX_BLOB);
	if (pack->len > UINT32_MAX - KT_REPO_MAX_BLOB - 1024)
		return kt_error_set(err, KT_ELIMIT, "pack is full");
	memset(e, 0, sizeof(*e));
	e->type = (uint8_t)type;
	e->offset = (uint32_t)pack->len;
	e->raw_length = (uint32_t)n;
	kt_repo_blob_id(k, data, n, e->id);
	const void *plain = data;
	size_t plain_len = n;
	void *z = NULL;
	if (level > 0 && n >= 64) {
		size_t cap = ZSTD_compressBound(n);
		z = kt_xmalloc(cap);
		size_t zn = ZSTD_compress(z, cap, data, n, level);
		if (!ZSTD_isError(zn) && zn <= n - n / 8) {
			plain = z;
			plain_len = zn;
			e->compression = 1;
		}
	}
	uint8_t aad[64];
	size_t aad_len = kt_repo_blob_aad(type, e->id, aad);
	kt_code c = kt_repo_seal(k, aad, aad_len, plain, plain_len, pack, err);
	free(z);
	if (c)
		return c;
	e->length = (uint32_t)(pack->len - e->offset);
	return KT_OK;
}

kt_code kt_repo_pack_finish(const kt_repo_keys *k, kt_buf *pack, const kt_repo_entry *entries,
                            size_t n, kt_error *err)
{
	if (n > KT_REPO_MAX_PACK_ENTRIES)
		return kt_error_set(err, KT_ELIMIT, "%zu blobs in one pack exceed %u", n,
		                    KT_REPO_MAX_PACK_ENTRIES);
	size_t hlen = 5 + n * KT_REPO_ENTRY_SIZE;
	uint8_t *h = kt_xmalloc(hlen);
	h[0] = 1;
	put32(h + 1, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		entry_put(h + 5 + i * KT_REPO_ENTRY_SIZE, &entries[i]);
	size_t before = pack->len;
	kt_code c = kt_repo_seal(k, hdr_aad, sizeof(hdr_aad) - 1, h, hlen, pack, err);
	free(h);
	if (c)
		return c;
	uint8_t len4[4];
	put32(len4, (uint32_t)(pack->len - before));
	return kt_buf_add(pack, len4, 4, err);
}

/* Check one run of n entries at p (46 bytes each): types, compression,
 * lengths, contiguity from offset 0, one type per pack, and (limit !=
 * UINT64_MAX) that they end exactly at limit. */
static kt_code check_entries(const uint8_t *p, size_t n, uint64_t limit, kt_repo_entry *out,
                             kt_error *err)
{
	uint64_t next = 0;
	for (size_t i = 0; i < n; i++) {
		kt_repo_entry e;
		entry_get(p + i * KT_REPO_ENTRY_SIZE, &e);
		if (e.type > KT_BLOB_TREE || e.compression > 1)
			return kt_error_set(err, KT_ECORRUPT, "entry %zu: unknown type %u or compression "
			                    "%u", i, e.type, e.compression);
		if (i && e.type != out[0].type)
			return kt_error_set(err, KT_ECORRUPT, "entry %zu: a pack holds one type of blob", i);
		if (e.offset != next)
			return kt_error_set(err, KT_ECORRUPT, "entry %zu: offset %u, expected %llu (blobs "
			                    "are contiguous)", i, e.offset, (unsigned long long)next);
		if (e.length < KT_REPO_SEAL_OVERHEAD || e.raw_length > KT_REPO_MAX_BLOB ||
		    (e.compression == 0 && e.length != e.raw_length + KT_REPO_SEAL_OVERHEAD) ||
		    e.length > KT_REPO_MAX_BLOB + KT_REPO_SEAL_OVERHEAD + 1024)
			return kt_error_set(err, KT_ECORRUPT, "entry %zu: impossible lengths (stored %u, "
			                    "raw %u)", i, e.length, e.raw_length);
		next += e.length;
		out[i] = e;
	}
	if (limit != UINT64_MAX && next != limit)
		return kt_error_set(err, KT_ECORRUPT, "the blobs end at %llu but the header starts at "
		                    "%llu", (unsigned long long)next, (unsigned long long)limit);
	return KT_OK;
}

kt_code kt_repo_entries_parse(const uint8_t *p, size_t len, uint64_t limit_offset,
                              kt_repo_entry **out, size_t *n_out, kt_error *err)
{
	*out = NULL;
	*n_out = 0;
	if (len < 5 || p[0] != 1)
		return kt_error_set(err, KT_ECORRUPT, "pack header: too short or unknown version");
	uint32_t n = get32(p + 1);
	if (n == 0 || n > KT_REPO_MAX_PACK_ENTRIES || len != 5 + (size_t)n * KT_REPO_ENTRY_SIZE)
		return kt_error_set(err, KT_ECORRUPT, "pack header: %u entries do not fit %zu bytes",
		                    n, len);
	kt_repo_entry *e = kt_xcalloc(n, sizeof(*e));
	kt_code c = check_entries(p + 5, n, limit_offset, e, err);
	if (c) {
		free(e);
		return kt_error_wrap(err, "pack header");
	}
	*out = e;
	*n_out = n;
	return KT_OK;
}

kt_code kt_repo_pack_header_parse(const kt_repo_keys *k, const uint8_t *tail, size_t tail_len,
                                  uint64_t pack_size, kt_repo_entry **out, size_t *n_out,
                                  size_t *need_out, kt_error *err)
{
	*out = NULL;
	*n_out = 0;
	*need_out = 0;
	if (tail_len < 4 || tail_len > pack_size)
		return kt_error_set(err, KT_ECORRUPT, "pack of %llu bytes is too short",
		                    (unsigned long long)pack_size);
	uint32_t hlen = get32(tail + tail_len - 4);
	if (hlen < KT_REPO_SEAL_OVERHEAD + 5 ||
	    hlen > KT_REPO_SEAL_OVERHEAD + 5 + KT_REPO_MAX_PACK_ENTRIES * KT_REPO_ENTRY_SIZE ||
	    (uint64_t)hlen + 4 > pack_size)
		return kt_error_set(err, KT_ECORRUPT, "pack header length %u is impossible for a pack "
		                    "of %llu bytes", hlen, (unsigned long long)pack_size);
	if ((size_t)hlen + 4 > tail_len) {
		*need_out = (size_t)hlen + 4;
		return kt_error_set(err, KT_ELIMIT, "pack header needs %u more bytes",
		                    (unsigned)(hlen + 4 - tail_len));
	}
	kt_buf plain;
	kt_buf_init(&plain, (size_t)hlen);
	kt_code c = kt_repo_open(k, hdr_aad, sizeof(hdr_aad) - 1, tail + tail_len - 4 - hlen, hlen,
	                         &plain, err);
	if (!c)
		c = kt_repo_entries_parse((const uint8_t *)plain.data, plain.len,
		                          pack_size - 4 - hlen, out, n_out, err);
	else
		kt_error_wrap(err, "pack header");
	kt_buf_release(&plain);
	return c;
}

kt_code kt_repo_blob_open(const kt_repo_keys *k, const kt_repo_entry *e, const uint8_t *sealed,
                          kt_buf *out, kt_error *err)
{
	uint8_t aad[64];
	size_t aad_len = kt_repo_blob_aad((kt_blob_type)e->type, e->id, aad);
	size_t start = out->len;
	kt_buf tmp;
	kt_buf_init(&tmp, e->length);
	kt_code c = kt_repo_open(k, aad, aad_len, sealed, e->length, e->compression ? &tmp : out,
	                         err);
	if (!c && e->compression) {
		char *raw = kt_xmalloc(e->raw_length ? e->raw_length : 1);
		size_t got = ZSTD_decompress(raw, e->raw_length, tmp.data, tmp.len);
		if (ZSTD_isError(got) || got != e->raw_length)
			c = kt_error_set(err, KT_ECORRUPT, "blob does not decompress to its %u bytes",
			                 e->raw_length);
		else
			c = kt_buf_add(out, raw, got, err);
		free(raw);
	}
	kt_buf_release(&tmp);
	if (!c && out->len - start != e->raw_length)
		c = kt_error_set(err, KT_ECORRUPT, "blob has %zu bytes, its entry says %u",
		                 out->len - start, e->raw_length);
	if (!c) {
		uint8_t id[32];
		kt_repo_blob_id(k, out->data + start, e->raw_length, id);
		if (memcmp(id, e->id, 32))
			c = kt_error_set(err, KT_ECORRUPT, "blob content does not match its id");
	}
	if (c) {
		out->len = start;
		out->data[start] = '\0';
	}
	return c;
}

/* ------------------------------------------------------------------ */
/* Index. */

kt_code kt_repo_index_encode(const kt_repo_keys *k, const kt_repo_index_pack *packs, size_t n,
                             kt_buf *out, kt_error *err)
{
	/* Built where it is then sealed: an index file of 65,536 blobs is
	 * 3 MiB, held once rather than as plaintext and a sealed copy. */
	size_t start = out->len;
	uint8_t head[5] = { 1 };
	put32(head + 1, (uint32_t)n);
	kt_code c = kt_buf_add(out, "\0\0\0\0\0\0\0\0\0\0\0\0", KT_REPO_NONCE, err);
	if (!c)
		c = kt_buf_add(out, head, 5, err);
	for (size_t i = 0; !c && i < n; i++) {
		uint8_t cnt[4], ent[KT_REPO_ENTRY_SIZE];
		put32(cnt, (uint32_t)packs[i].n);
		if ((c = kt_buf_add(out, packs[i].pack_id, 32, err)) ||
		    (c = kt_buf_add(out, cnt, 4, err)))
			break;
		for (size_t j = 0; !c && j < packs[i].n; j++) {
			entry_put(ent, &packs[i].entries[j]);
			c = kt_buf_add(out, ent, sizeof(ent), err);
		}
	}
	if (!c)
		return kt_repo_seal_in_place(k, idx_aad, sizeof(idx_aad) - 1, out, start, err);
	kt_buf_setlen(out, start);
	return c;
}

void kt_repo_index_free(kt_repo_index_pack *packs, size_t n)
{
	for (size_t i = 0; packs && i < n; i++)
		free(packs[i].entries);
	free(packs);
}

kt_code kt_repo_index_parse(const uint8_t *p, size_t len, kt_repo_index_pack **out,
                            size_t *n_out, kt_error *err)
{
	*out = NULL;
	*n_out = 0;
	if (len < 5 || p[0] != 1)
		return kt_error_set(err, KT_ECORRUPT, "index: too short or unknown version");
	uint32_t n = get32(p + 1);
	/* Every pack needs at least 36 + 46 bytes: bound n by the input first. */
	if (n > (len - 5) / (36 + KT_REPO_ENTRY_SIZE))
		return kt_error_set(err, KT_ECORRUPT, "index: %u packs cannot fit %zu bytes", n, len);
	kt_repo_index_pack *v = kt_xcalloc(n ? n : 1, sizeof(*v));
	size_t off = 5;
	kt_code c = KT_OK;
	size_t i;
	for (i = 0; i < n; i++) {
		if (len - off < 36) {
			c = kt_error_set(err, KT_ECORRUPT, "index: pack %zu is cut off", i);
			break;
		}
		memcpy(v[i].pack_id, p + off, 32);
		uint32_t m = get32(p + off + 32);
		off += 36;
		if (m == 0 || m > KT_REPO_MAX_PACK_ENTRIES || (len - off) / KT_REPO_ENTRY_SIZE < m) {
			c = kt_error_set(err, KT_ECORRUPT, "index: pack %zu claims %u blobs", i, m);
			break;
		}
		v[i].entries = kt_xcalloc(m, sizeof(kt_repo_entry));
		v[i].n = m;
		if ((c = check_entries(p + off, m, UINT64_MAX, v[i].entries, err))) {
			kt_error_wrap(err, "index: pack %zu", i);
			break;
		}
		off += (size_t)m * KT_REPO_ENTRY_SIZE;
	}
	if (!c && off != len)
		c = kt_error_set(err, KT_ECORRUPT, "index: %zu bytes after the last pack", len - off);
	if (c) {
		kt_repo_index_free(v, n);
		return c;
	}
	*out = v;
	*n_out = n;
	return KT_OK;
}

kt_code kt_repo_index_decode(const kt_repo_keys *k, const uint8_t *data, size_t len,
                             kt_repo_index_pack **out, size_t *n_out, kt_error *err)
{
	kt_buf plain;
	kt_buf_init(&plain, KT_REPO_MAX_SEALED);
	kt_code c = kt_repo_open(k, idx_aad, sizeof(idx_aad) - 1, data, len, &plain, err);
	if (!c)
		c = kt_repo_index_parse((const uint8_t *)plain.data, plain.len, out, n_out, err);
	else
		kt_error_wrap(err, "index");
	kt_buf_release(&plain);
	return c;
}
