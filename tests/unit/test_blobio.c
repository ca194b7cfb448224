/*
 * test_blobio.c - src/archive/blobio.c against the format's reference code
 * in src/repo: the same blob ids, blobs sealed by one open with the other,
 * and the same refusals of damaged or misplaced blobs.
 */
#include <stdlib.h>
#include <string.h>

#include "archive/blobio.h"
#include "unit.h"

static kt_repo_keys test_keys(void)
{
	kt_repo_keys k;
	for (int i = 0; i < 32; i++) {
		k.id[i] = (uint8_t)(0x80 + i);
		k.enc[i] = (uint8_t)(0x20 + 3 * i);
	}
	return k;
}

/* n bytes: text that compresses (kind 0) or pseudo-random bytes (kind 1). */
static uint8_t *sample(size_t n, int kind)
{
	uint8_t *p = malloc(n ? n : 1);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = kind ? (uint8_t)x : (uint8_t)("kontinuity line "[i % 16] + (i / 4096) % 3);
	}
	return p;
}

static void test_ids_match_the_reference(void)
{
	kt_repo_keys k = test_keys();
	kt_blobio *io = kt_blobio_new(&k);
	/* The test vector of docs/repository-format.md. */
	uint8_t id[32];
	char hex[65];
	kt_blobio_id(io, "data", 4, id);
	kt_hex(hex, id, 32);
	CHECK_STR(hex, "8f2b1b712313a5728173662f15b2869b737294d5c0c0042170c9fa1163716411");
	size_t sizes[] = { 0, 1, 4096, 65536, 300000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *d = sample(sizes[i], (int)(i & 1));
		uint8_t a[32], b[32];
		kt_blobio_id(io, d, sizes[i], a);   /* the context is reused each time */
		kt_repo_blob_id(&k, d, sizes[i], b);
		CHECK(memcmp(a, b, 32) == 0);
		free(d);
	}
	kt_blobio_free(io);
}

/* Seal with blobio, open with kt_repo_blob_open; and the other way round. */
static void test_seal_and_open_interoperate(void)
{
	kt_repo_keys k = test_keys();
	kt_blobio *io = kt_blobio_new(&k);
	kt_error err;
	for (int kind = 0; kind < 2; kind++) {
		for (int level = 0; level <= 3; level += 3) {
			size_t n = 70000;
			uint8_t *d = sample(n, kind);
			uint8_t id[32];
			kt_repo_blob_id(&k, d, n, id);

			kt_buf pack;
			kt_buf_init(&pack, 1 << 22);
			kt_buf_add(&pack, "prefix", 6, &err);   /* blobs need not start a pack */
			kt_repo_entry e;
			CHECK(kt_blobio_seal(io, KT_BLOB_DATA, id, d, n, level, &pack, &e, &err) == KT_OK);
			e.offset = 6;
			e.length = (uint32_t)(pack.len - 6);
			CHECK_EQ_U(e.compression, level > 0 && kind == 0);
			CHECK_EQ_U(e.raw_length, n);
			kt_repo_entry ref;
			kt_buf refpack;
			kt_buf_init(&refpack, 1 << 22);
			CHECK(kt_repo_pack_add(&k, &refpack, KT_BLOB_DATA, d, n, level, &ref, &err) == KT_OK);
			CHECK_EQ_U(ref.length, e.length);   /* same compression, same size */
			CHECK_EQ_U(ref.compression, e.compression);
			CHECK(memcmp(ref.id, e.id, 32) == 0);

			kt_buf out;
			kt_buf_init(&out, 1 << 22);
			CHECK(kt_repo_blob_open(&k, &e, (const uint8_t *)pack.data + 6, &out, &err) == KT_OK);
			CHECK(out.len == n && memcmp(out.data, d, n) == 0);

			uint8_t *sealed = malloc(refpack.len);   /* opening decrypts in place */
			memcpy(sealed, refpack.data, refpack.len);
			const uint8_t *plain = NULL;
			CHECK(kt_blobio_open(io, &ref, (uint8_t *)refpack.data, &plain, &err) == KT_OK);
			CHECK(plain && memcmp(plain, d, n) == 0);
			/* The same context again, on the other blob. */
			CHECK(kt_blobio_open(io, &e, (uint8_t *)pack.data + 6, &plain, &err) == KT_OK);
			CHECK(plain && memcmp(plain, d, n) == 0);
			/* Into a buffer of the caller's, at an odd address (restore's
			 * stage puts a blob at its file offset modulo 4096). */
			uint8_t *room = malloc(n + 3);
			memset(room, 0xee, n + 3);
			CHECK(kt_blobio_open_into(io, &ref, sealed, room + 3, &err) == KT_OK);
			CHECK(memcmp(room + 3, d, n) == 0);
			CHECK(room[0] == 0xee && room[2] == 0xee);
			free(room);
			free(sealed);
			kt_buf_release(&out);
			kt_buf_release(&pack);
			kt_buf_release(&refpack);
			free(d);
		}
	}
	kt_blobio_free(io);
}

static void test_open_refuses_what_the_reference_refuses(void)
{
	kt_repo_keys k = test_keys();
	kt_blobio *io = kt_blobio_new(&k);
	kt_error err;
	for (int kind = 0; kind < 2; kind++) {
		size_t n = 20000;
		uint8_t *d = sample(n, kind);
		kt_buf pack;
		kt_buf_init(&pack, 1 << 22);
		kt_repo_entry e;
		CHECK(kt_repo_pack_add(&k, &pack, KT_BLOB_DATA, d, n, 3, &e, &err) == KT_OK);
		uint8_t *copy = malloc(pack.len);
		const uint8_t *plain;

		/* A flipped byte. */
		memcpy(copy, pack.data, pack.len);
		copy[pack.len / 2] ^= 1;
		CHECK(kt_blobio_open(io, &e, copy, &plain, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, "authentication failed");

		/* Another blob's id (or type): its AAD does not match. */
		kt_repo_entry other = e;
		other.id[0] ^= 1;
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open(io, &other, copy, &plain, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, "authentication failed");
		other = e;
		other.type = KT_BLOB_TREE;
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open(io, &other, copy, &plain, &err) == KT_ECORRUPT);

		/* A raw length the blob does not have. */
		other = e;
		other.raw_length = (uint32_t)n - 1;
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open(io, &other, copy, &plain, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, kind == 0 ? "does not decompress" : "its entry says");

		/* Too short to be sealed at all. */
		other = e;
		other.length = KT_REPO_SEAL_OVERHEAD - 1;
		CHECK(kt_blobio_open(io, &other, copy, &plain, &err) == KT_ECORRUPT);

		/* kt_blobio_open_into refuses the same, and a flipped byte leaves
		 * no plaintext in the caller's buffer; a raw length shorter than
		 * the blob never writes past it. */
		uint8_t *room = malloc(n);
		memcpy(copy, pack.data, pack.len);
		copy[pack.len / 2] ^= 1;
		CHECK(kt_blobio_open_into(io, &e, copy, room, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, "authentication failed");
		CHECK(memcmp(room, d, 64) != 0);
		other = e;
		other.raw_length = (uint32_t)n - 1;
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open_into(io, &other, copy, room, &err) == KT_ECORRUPT);
		CHECK_CONTAINS(err.msg, kind == 0 ? "does not decompress" : "its entry says");
		other = e;
		other.length = KT_REPO_SEAL_OVERHEAD - 1;
		CHECK(kt_blobio_open_into(io, &other, copy, room, &err) == KT_ECORRUPT);
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open_into(io, &e, copy, room, &err) == KT_OK);
		CHECK(memcmp(room, d, n) == 0);
		free(room);

		/* And the intact blob still opens with the same context. */
		memcpy(copy, pack.data, pack.len);
		CHECK(kt_blobio_open(io, &e, copy, &plain, &err) == KT_OK);
		CHECK(memcmp(plain, d, n) == 0);
		free(copy);
		kt_buf_release(&pack);
		free(d);
	}
	/* Sealed under other keys, with the right id: a wrong key fails the
	 * same way. */
	kt_repo_keys k2 = test_keys();
	k2.enc[5] ^= 0xff;
	uint8_t *d = sample(1000, 0);
	kt_buf pack;
	kt_buf_init(&pack, 1 << 20);
	kt_repo_entry e;
	CHECK(kt_repo_pack_add(&k2, &pack, KT_BLOB_DATA, d, 1000, 3, &e, &err) == KT_OK);
	const uint8_t *plain;
	CHECK(kt_blobio_open(io, &e, (uint8_t *)pack.data, &plain, &err) == KT_ECORRUPT);
	kt_buf_release(&pack);
	free(d);
	kt_blobio_free(io);
}

/* Restore opens with kt_blobio_open, which trusts the AAD to bind a blob
 * to its id and does not hash it again; check opens with
 * kt_repo_blob_open, which does.  A blob sealed (by a faulty writer) under
 * an id that is not its content's: restore takes it, check names it. */
static void test_only_the_checking_open_hashes_the_content(void)
{
	kt_repo_keys k = test_keys();
	kt_blobio *io = kt_blobio_new(&k);
	kt_error err;
	uint8_t *d = sample(5000, 0);
	uint8_t wrong[32];
	kt_repo_blob_id(&k, d, 5000, wrong);
	wrong[31] ^= 1;
	kt_buf out;
	kt_buf_init(&out, 1 << 20);
	kt_repo_entry e;
	CHECK(kt_blobio_seal(io, KT_BLOB_DATA, wrong, d, 5000, 3, &out, &e, &err) == KT_OK);
	e.offset = 0;
	e.length = (uint32_t)out.len;
	const uint8_t *plain;
	uint8_t *copy = malloc(out.len);
	memcpy(copy, out.data, out.len);
	CHECK(kt_blobio_open(io, &e, copy, &plain, &err) == KT_OK);
	CHECK(memcmp(plain, d, 5000) == 0);
	kt_buf raw;
	kt_buf_init(&raw, 1 << 20);
	CHECK(kt_repo_blob_open(&k, &e, (const uint8_t *)out.data, &raw, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "does not match its id");
	kt_buf_release(&raw);
	kt_buf_release(&out);
	free(copy);
	free(d);
	kt_blobio_free(io);
}

static void test_seal_refuses_oversized_blobs(void)
{
	kt_repo_keys k = test_keys();
	kt_blobio *io = kt_blobio_new(&k);
	kt_error err;
	kt_buf out;
	kt_buf_init(&out, 1 << 20);
	kt_repo_entry e;
	uint8_t id[32] = { 0 };
	static uint8_t big[1];
	CHECK(kt_blobio_seal(io, KT_BLOB_DATA, id, big, (size_t)KT_REPO_MAX_BLOB + 1, 3, &out, &e,
	                     &err) == KT_ELIMIT);
	CHECK_EQ_U(out.len, 0);
	kt_buf_release(&out);
	kt_blobio_free(io);
}

int main(void)
{
	RUN(test_ids_match_the_reference);
	RUN(test_seal_and_open_interoperate);
	RUN(test_open_refuses_what_the_reference_refuses);
	RUN(test_only_the_checking_open_hashes_the_content);
	RUN(test_seal_refuses_oversized_blobs);
	return unit_done();
}
