/*
 * keyset.c - the user keys behind etcd's "key" bucket: decoding each
 * revision's mvccpb.KeyValue and tracking which user keys are live.
 *
 * Owns:
 *   - kt_mvcc_kv_parse, which accepts and rejects exactly what the gogo
 *     protobuf KeyValue.Unmarshal in go.etcd.io/etcd/api/v3/mvccpb does
 *     (etcdutl 3.6 fails `snapshot status` on a value it cannot unmarshal);
 *   - the key set: a put makes its user key live, a tombstone removes it,
 *     in revision order, so the last event wins.  etcdutl 3.6 prints the
 *     number of live keys as totalKey.  The set stores one 16-byte slot per
 *     distinct user key (a 64-bit hash, a resource id, the live flag), not
 *     the keys: memory follows the number of keys, not their size.  Two
 *     distinct keys with equal 64-bit hashes would count once; with n keys
 *     the odds are about n^2 / 2^65 (1e-7 for a million keys).
 *   - the Kubernetes census on top of it: /registry/<resource>/... and
 *     /registry/<group.with.dots>/<resource>/... grouped by resource.
 */
#include <stdlib.h>
#include <string.h>

#include "snapshot_int.h"

/* ------------------------------------------------------------------ */
/* mvccpb.KeyValue, field for field as gogo's generated Unmarshal. */

/* gogo varint: up to 10 bytes; bits past 64 are dropped, an 11th byte fails. */
static const char *varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0;; shift += 7) {
		if (shift >= 64)
			return "a varint is longer than 10 bytes";
		if (*i >= n)
			return "a varint runs past the end";
		uint8_t b = p[(*i)++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (b < 0x80)
			break;
	}
	*out = v;
	return NULL;
}

/* skipKv: skip one field (a group with everything in it) starting at its tag. */
static const char *skip_field(const uint8_t *p, size_t n, size_t *i)
{
	unsigned long depth = 0;
	while (*i < n) {
		uint64_t tag, v;
		const char *why = varint(p, n, i, &tag);
		if (why)
			return why;
		switch (tag & 7) {
		case 0:
			if ((why = varint(p, n, i, &v)))
				return why;
			break;
		case 1:
			if (n - *i < 8)
				return "a 64-bit field runs past the end";
			*i += 8;
			break;
		case 2:
			if ((why = varint(p, n, i, &v)))
				return why;
			if (v > n - *i)
				return "a length-delimited field runs past the end";
			*i += (size_t)v;
			break;
		case 3:
			depth++;
			break;
		case 4:
			if (depth == 0)
				return "an end-group tag without its start";
			depth--;
			break;
		case 5:
			if (n - *i < 4)
				return "a 32-bit field runs past the end";
			*i += 4;
			break;
		default:
			return "a field has an illegal wire type (6 or 7)";
		}
		if (depth == 0)
			return NULL;
	}
	return "a group runs past the end";
}

const char *kt_mvcc_kv_parse(const uint8_t *p, size_t n, kt_mvcc_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	size_t i = 0;
	while (i < n) {
		size_t pre = i;
		uint64_t tag, v;
		const char *why = varint(p, n, &i, &tag);
		if (why)
			return why;
		int32_t field = (int32_t)(uint32_t)(tag >> 3);   /* Go: int32(wire >> 3) */
		unsigned wt = (unsigned)(tag & 7);
		if (wt == 4)
			return "an end-group tag outside a group";
		if (field <= 0)
			return "an illegal field number";
		if (field == 1 || field == 5) {
			if (wt != 2)
				return field == 1 ? "field 1 (key) is not length-delimited"
				                  : "field 5 (value) is not length-delimited";
			if ((why = varint(p, n, &i, &v)))
				return why;
			if (v > n - i)
				return field == 1 ? "field 1 (key) runs past the end"
				                  : "field 5 (value) runs past the end";
			if (field == 1) {
				kv->key = p + i;
				kv->key_len = (size_t)v;
			}
			i += (size_t)v;
		} else if (field >= 2 && field <= 6) {
			if (wt != 0)
				return "a revision, version or lease field is not a varint";
			if ((why = varint(p, n, &i, &v)))
				return why;
			if (field == 3) {
				kv->mod_revision = (int64_t)v;
				kv->has_mod = 1;
			}
		} else {
			i = pre;
			if ((why = skip_field(p, n, &i)))
				return why;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Hashing */

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;   /* host order is fine: the hash never leaves the process */
}

static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* A 64-bit hash good enough to stand in for a key (not adversary-proof). */
static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0x87c37b91114253d5ull);
	while (n >= 8) {
		uint64_t v = rd64(p) * 0x87c37b91114253d5ull;
		v = (v << 31) | (v >> 33);
		h ^= v * 0x4cf5ad432745937full;
		h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
		p += 8;
		n -= 8;
	}
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t |= (uint64_t)p[i] << (8 * i);
	h ^= fmix64(t ^ 0x2545F4914F6CDD1Dull);
	h = fmix64(h);
	return h ? h : 1;   /* 0 marks an empty slot */
}

/* ------------------------------------------------------------------ */
/* The key set and the resource table */

#define NO_RESOURCE UINT32_MAX

struct kt_key_slot {
	uint64_t h;
	uint32_t res;
	uint32_t live;
};

struct kt_resource {
	char *name;
	size_t len;
	uint64_t h;
	uint64_t live;
};

static kt_code oom(kt_error *err)
{
	return kt_error_set(err, KT_ENOMEM, "out of memory tracking etcd keys");
}

void kt_keyset_init(kt_keyset *s, int census)
{
	memset(s, 0, sizeof(*s));
	s->census = census;
}

void kt_keyset_release(kt_keyset *s)
{
	for (size_t i = 0; i < s->n_res; i++)
		free(s->res[i].name);
	free(s->res);
	free(s->slots);
	free(s->res_index);
	kt_keyset_init(s, s->census);
}

static kt_code slots_grow(kt_keyset *s, kt_error *err)
{
	size_t cap = s->cap ? s->cap * 2 : 1024;
	struct kt_key_slot *k = calloc(cap, sizeof(*k));
	if (!k)
		return oom(err);
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->slots[i].h)
			continue;
		size_t j = s->slots[i].h & (cap - 1);
		while (k[j].h)
			j = (j + 1) & (cap - 1);
		k[j] = s->slots[i];
	}
	free(s->slots);
	s->slots = k;
	s->cap = cap;
	return KT_OK;
}

static kt_code index_grow(kt_keyset *s, kt_error *err)
{
	size_t cap = s->index_cap ? s->index_cap * 2 : 64;
	uint32_t *x = calloc(cap, sizeof(*x));
	if (!x)
		return oom(err);
	for (size_t i = 0; i < s->n_res; i++) {
		size_t j = s->res[i].h & (cap - 1);
		while (x[j])
			j = (j + 1) & (cap - 1);
		x[j] = (uint32_t)i + 1;
	}
	free(s->res_index);
	s->res_index = x;
	s->index_cap = cap;
	return KT_OK;
}

static kt_code resource_id(kt_keyset *s, const uint8_t *name, size_t len, uint32_t *out,
                           kt_error *err)
{
	kt_code r;
	if ((s->n_res + 1) * 2 > s->index_cap && (r = index_grow(s, err)))
		return r;
	uint64_t h = hash_bytes(name, len);
	size_t j = h & (s->index_cap - 1);
	for (; s->res_index[j]; j = (j + 1) & (s->index_cap - 1)) {
		struct kt_resource *e = &s->res[s->res_index[j] - 1];
		if (e->h == h && e->len == len && memcmp(e->name, name, len) == 0) {
			*out = s->res_index[j] - 1;
			return KT_OK;
		}
	}
	if (s->n_res == s->res_cap) {
		size_t cap = s->res_cap ? s->res_cap * 2 : 32;
		struct kt_resource *n = realloc(s->res, cap * sizeof(*n));
		if (!n)
			return oom(err);
		s->res = n;
		s->res_cap = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return oom(err);
	memcpy(copy, name, len);
	copy[len] = '\0';
	s->res[s->n_res] = (struct kt_resource){ copy, len, h, 0 };
	s->res_index[j] = (uint32_t)s->n_res + 1;
	*out = (uint32_t)s->n_res++;
	return KT_OK;
}

/* The census resource of a user key, or {NULL, 0} when it is not an object. */
static const uint8_t *resource_of(const uint8_t *k, size_t n, size_t *len)
{
	static const char prefix[] = "/registry/";
	const size_t plen = sizeof(prefix) - 1;
	*len = 0;
	if (n <= plen || memcmp(k, prefix, plen) != 0)
		return NULL;
	const uint8_t *seg = k + plen, *end = k + n;
	const uint8_t *slash = memchr(seg, '/', (size_t)(end - seg));
	size_t rlen = (size_t)((slash ? slash : end) - seg);
	if (rlen == 0)
		return NULL;
	if (memchr(seg, '.', rlen) && slash) {
		/* A group (apps.example.com): the resource is the next segment. */
		const uint8_t *s2 = memchr(slash + 1, '/', (size_t)(end - slash - 1));
		rlen = (size_t)((s2 ? s2 : end) - seg);
	}
	*len = rlen;
	return seg;
}

kt_code kt_keyset_event(kt_keyset *s, const uint8_t *key, size_t n, int live, kt_error *err)
{
	kt_code r;
	if ((s->n + 1) * 2 > s->cap && (r = slots_grow(s, err)))
		return r;
	uint64_t h = hash_bytes(key, n);
	size_t j = h & (s->cap - 1);
	while (s->slots[j].h && s->slots[j].h != h)
		j = (j + 1) & (s->cap - 1);
	struct kt_key_slot *slot = &s->slots[j];
	if (!slot->h) {
		if (!live)
			return KT_OK;   /* deleting a key never seen (its put was compacted) */
		uint32_t id = NO_RESOURCE;
		size_t rlen;
		const uint8_t *res = s->census ? resource_of(key, n, &rlen) : NULL;
		if (res && (r = resource_id(s, res, rlen, &id, err)))
			return r;
		*slot = (struct kt_key_slot){ h, id, 1 };
		s->n++;
		s->n_live++;
		return KT_OK;
	}
	if (slot->live && !live)
		s->n_live--;
	else if (!slot->live && live)
		s->n_live++;
	slot->live = live != 0;
	return KT_OK;
}

static int cmp_res(const void *a, const void *b)
{
	const kt_resource_count *x = a, *y = b;
	return strcmp(x->resource, y->resource);
}

kt_code kt_keyset_census(kt_keyset *s, kt_snapshot_report *rep, kt_error *err)
{
	for (size_t i = 0; i < s->n_res; i++)
		s->res[i].live = 0;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].h && s->slots[i].live && s->slots[i].res != NO_RESOURCE)
			s->res[s->slots[i].res].live++;
	size_t n = 0;
	for (size_t i = 0; i < s->n_res; i++)
		n += s->res[i].live != 0;
	if (!n)
		return KT_OK;
	kt_resource_count *out = calloc(n, sizeof(*out));
	if (!out)
		return oom(err);
	size_t o = 0;
	for (size_t i = 0; i < s->n_res; i++) {
		if (!s->res[i].live)
			continue;
		out[o].resource = s->res[i].name;
		out[o].count = s->res[i].live;
		rep->n_kube_objects += s->res[i].live;
		s->res[i].name = NULL;   /* ownership moves to the report */
		o++;
	}
	qsort(out, n, sizeof(*out), cmp_res);
	rep->resources = out;
	rep->n_resources = n;
	return KT_OK;
}
