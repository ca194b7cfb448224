/*
 * test_repo.c - unit tests for the repository format's codecs
 * (src/repo/crypto.c, pack.c): sealed messages, key files, packs, index.
 */
#include <stdlib.h>
#include <string.h>

#include "repo/repo_int.h"
#include "unit.h"

static kt_repo_keys keys(void)
{
	kt_repo_keys k;
	for (int i = 0; i < 32; i++) {
		k.enc[i] = (uint8_t)i;
		k.id[i] = (uint8_t)(0x80 + i);
	}
	return k;
}

static void test_seal_open(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_buf s, p;
	kt_buf_init(&s, 1 << 20);
	kt_buf_init(&p, 1 << 20);
	CHECK(kt_repo_seal(&k, "aad", 3, "hello", 5, &s, &err) == KT_OK);
	CHECK_EQ_U(s.len, 5 + KT_REPO_SEAL_OVERHEAD);
	CHECK(kt_repo_open(&k, "aad", 3, s.data, s.len, &p, &err) == KT_OK);
	CHECK(p.len == 5 && !memcmp(p.data, "hello", 5));
	/* Another AAD (role), a flipped byte, a cut message, another key. */
	kt_buf_reset(&p);
	CHECK(kt_repo_open(&k, "aaD", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	CHECK_EQ_U(p.len, 0);
	s.data[14] ^= 1;
	CHECK(kt_repo_open(&k, "aad", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	s.data[14] ^= 1;
	CHECK(kt_repo_open(&k, "aad", 3, s.data, 20, &p, &err) == KT_ECORRUPT);
	kt_repo_keys other = k;
	other.enc[0] ^= 1;
	CHECK(kt_repo_open(&other, "aad", 3, s.data, s.len, &p, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "authentication failed");
	/* Two seals of the same text differ (random nonce). */
	kt_buf s2;
	kt_buf_init(&s2, 1 << 20);
	CHECK(kt_repo_seal(&k, "aad", 3, "hello", 5, &s2, &err) == KT_OK);
	CHECK(memcmp(s.data, s2.data, s.len) != 0);
	kt_buf_release(&s);
	kt_buf_release(&s2);
	kt_buf_release(&p);
}

static void test_blob_id_is_keyed(void)
{
	kt_repo_keys a = keys(), b = keys();
	b.id[5] ^= 1;
	uint8_t x[32], y[32], z[32];
	kt_repo_blob_id(&a, "data", 4, x);
	kt_repo_blob_id(&a, "data", 4, y);
	kt_repo_blob_id(&b, "data", 4, z);
	CHECK(!memcmp(x, y, 32));
	CHECK(memcmp(x, z, 32) != 0);
	/* Test vector (docs/repository-format.md): HMAC-SHA-256 with the key
	 * bytes 80..9f of "data", computed with Python's hmac module. */
	char hex[65];
	kt_hex(hex, x, 32);
	CHECK_STR(hex, "8f2b1b712313a5728173662f15b2869b737294d5c0c0042170c9fa1163716411");
}

static void test_keyfile(void)
{
	kt_repo_keys k, got;
	kt_error err;
	CHECK(kt_repo_keys_generate(&k, &err) == KT_OK);
	kt_repo_kdf kdf = { 16384, 8, 1 };
	kt_buf f;
	kt_buf_init(&f, 1 << 16);
	CHECK(kt_repo_keyfile_create(&k, "correct horse", 13, &kdf, "cp-1", &f, &err) == KT_OK);
	CHECK(strstr(f.data, "correct horse") == NULL);
	CHECK(kt_repo_keyfile_open(f.data, f.len, "correct horse", 13, &got, &err) == KT_OK);
	CHECK(!memcmp(&k, &got, sizeof(k)));
	CHECK(kt_repo_keyfile_open(f.data, f.len, "wrong horse", 11, &got, &err) == KT_EAUTH);
	CHECK_CONTAINS(err.msg, "wrong passphrase");
	CHECK(strstr(err.msg, "horse") == NULL);
	/* Parameters a hostile repository could use to exhaust us. */
	const char *big = "{\"version\":1,\"kdf\":\"scrypt\",\"N\":1073741824,\"r\":8,\"p\":1,"
	                  "\"salt\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"data\":\"AAAA\"}";
	CHECK(kt_repo_keyfile_open(big, strlen(big), "x", 1, &got, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "scrypt parameters");
	CHECK(kt_repo_keyfile_open("{", 1, "x", 1, &got, &err) == KT_ECORRUPT);
	kt_buf_release(&f);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static void test_pack_roundtrip(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_buf pack;
	kt_buf_init(&pack, 64u << 20);
	size_t sizes[] = { 0, 1, 100, 70000, 1 << 20 };
	uint8_t *blobs[5];
	kt_repo_entry e[5];
	for (int i = 0; i < 5; i++) {
		blobs[i] = malloc(sizes[i] + 1);
		if (i % 2)
			fill(blobs[i], sizes[i], (uint32_t)i);   /* random: stored raw */
		else
			memset(blobs[i], 'a' + i, sizes[i]);    /* compresses */
		CHECK(kt_repo_pack_add(&k, &pack, KT_BLOB_DATA, blobs[i], sizes[i], 3, &e[i],
		                       &err) == KT_OK);
	}
	CHECK_EQ_U(e[4].compression, 1);
	CHECK_EQ_U(e[3].compression, 0);
	size_t blobs_end = pack.len;
	CHECK(kt_repo_pack_finish(&k, &pack, e, 5, &err) == KT_OK);
	kt_repo_entry *got;
	size_t n, need;
	/* A tail too short for the header says how much it needs. */
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data + pack.len - 10, 10, pack.len,
	                                &got, &n, &need, &err) == KT_ELIMIT);
	CHECK_EQ_U(need, pack.len - blobs_end);
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data + pack.len - need, need, pack.len,
	                                &got, &n, &need, &err) == KT_OK);
	CHECK_EQ_U(n, 5);
	kt_buf out;
	kt_buf_init(&out, 64u << 20);
	for (size_t i = 0; i < n && n == 5; i++) {
		CHECK(!memcmp(got[i].id, e[i].id, 32));
		kt_buf_reset(&out);
		CHECK(kt_repo_blob_open(&k, &got[i], (uint8_t *)pack.data + got[i].offset, &out,
		                        &err) == KT_OK);
		CHECK(out.len == sizes[i] && !memcmp(out.data, blobs[i], sizes[i]));
	}
	/* A blob opened with another blob's entry fails: ids are in the AAD. */
	if (n == 5) {
		kt_repo_entry swapped = got[2];
		memcpy(swapped.id, got[0].id, 32);
		kt_buf_reset(&out);
		CHECK(kt_repo_blob_open(&k, &swapped, (uint8_t *)pack.data + got[2].offset, &out,
		                        &err) == KT_ECORRUPT);
	}
	/* The wrong pack size is caught by the contiguity rule. */
	free(got);
	CHECK(kt_repo_pack_header_parse(&k, (uint8_t *)pack.data, pack.len, pack.len + 1, &got, &n,
	                                &need, &err) == KT_ECORRUPT);
	for (int i = 0; i < 5; i++)
		free(blobs[i]);
	kt_buf_release(&out);
	kt_buf_release(&pack);
}

static void test_index_roundtrip_and_hostile(void)
{
	kt_repo_keys k = keys();
	kt_error err;
	kt_repo_entry e1[2] = { { 0, 0, 0, 128, 100, { 1 } }, { 0, 1, 128, 60, 1000, { 2 } } };
	kt_repo_entry e2[1] = { { 1, 0, 0, 50, 22, { 3 } } };
	kt_repo_index_pack packs[2] = { { { 0xaa }, e1, 2 }, { { 0xbb }, e2, 1 } };
	kt_buf idx;
	kt_buf_init(&idx, 1 << 20);
	CHECK(kt_repo_index_encode(&k, packs, 2, &idx, &err) == KT_OK);
	kt_repo_index_pack *got;
	size_t n;
	CHECK(kt_repo_index_decode(&k, (uint8_t *)idx.data, idx.len, &got, &n, &err) == KT_OK);
	CHECK_EQ_U(n, 2);
	if (n == 2) {
		CHECK(got[0].pack_id[0] == 0xaa && got[0].n == 2 && got[1].n == 1);
		CHECK(got[0].entries[1].offset == 128 && got[0].entries[1].raw_length == 1000);
		CHECK(got[1].entries[0].type == KT_BLOB_TREE && got[1].entries[0].id[0] == 3);
		kt_repo_index_free(got, n);
	}
	/* A count that the bytes cannot hold is refused before allocating. */
	uint8_t hostile[5] = { 1, 0xff, 0xff, 0xff, 0x7f };
	CHECK(kt_repo_index_parse(hostile, sizeof(hostile), &got, &n, &err) == KT_ECORRUPT);
	uint8_t gap[5 + 36 + 46] = { 1, 1 };
	gap[5 + 32] = 1;
	gap[5 + 36 + 2] = 7;   /* first offset 7, not 0 */
	gap[5 + 36 + 6] = 28;
	CHECK(kt_repo_index_parse(gap, sizeof(gap), &got, &n, &err) == KT_ECORRUPT);
	CHECK_CONTAINS(err.msg, "contiguous");
	kt_buf_release(&idx);
}

int main(void)
{
	RUN(test_seal_open);
	RUN(test_blob_id_is_keyed);
	RUN(test_keyfile);
	RUN(test_pack_roundtrip);
	RUN(test_index_roundtrip_and_hostile);
	return unit_done();
}
