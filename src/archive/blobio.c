/*
 * blobio.c - blob ids, sealing and opening with kept contexts (blobio.h).
 *
 * Invariants (those of src/repo/crypto.c and pack.c, which this mirrors):
 *   1. A sealed blob is nonce(12, random) || AES-256-GCM(plain, AAD) ||
 *      tag(16) with the AAD of kt_repo_blob_aad(type, id).
 *   2. Compression (one zstd frame) is used only when it saves 1/8 or more
 *      of a blob of 64 bytes or more.
 *   3. A blob is only given out after it authenticated under its own id
 *      and type (the AAD) and decompressed to exactly raw_length bytes;
 *      plaintext of a blob that fails authentication is wiped.  Opening
 *      does not hash the plaintext again (kt_repo_blob_open, which check
 *      uses, does): see kt_blobio_open.
 * Keys stay in OpenSSL's contexts, which free (and cleanse) them.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "blobio.h"

struct kt_blobio {
	const kt_repo_keys *k;
	EVP_MAC_CTX *mac;        /* HMAC-SHA-256, keyed with k->id */
	EVP_CIPHER_CTX *enc;     /* AES-256-GCM, keyed with k->enc */
	EVP_CIPHER_CTX *dec;
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	uint8_t *zbuf;           /* compressed output of seal */
	size_t zcap;
	uint8_t *raw;            /* decompressed output of open */
	size_t rawcap;
};

kt_blobio *kt_blobio_new(const kt_repo_keys *k)
{
	kt_blobio *io = kt_xcalloc(1, sizeof(*io));
	io->k = k;
	return io;
}

void kt_blobio_free(kt_blobio *io)
{
	if (!io)
		return;
	EVP_MAC_CTX_free(io->mac);
	EVP_CIPHER_CTX_free(io->enc);
	EVP_CIPHER_CTX_free(io->dec);
	ZSTD_freeCCtx(io->zc);
	ZSTD_freeDCtx(io->zd);
	free(io->zbuf);
	free(io->raw);
	free(io);
}

/* ------------------------------------------------------------------ */
/* Ids. */

static EVP_MAC_CTX *mac_new(const kt_repo_keys *k)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);   /* the context holds its own reference */
	char digest[] = "SHA256";
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		                    OSSL_PARAM_construct_end() };
	if (c && !EVP_MAC_init(c, k->id, sizeof(k->id), params)) {
		EVP_MAC_CTX_free(c);
		c = NULL;
	}
	return c;
}

void kt_blobio_id(kt_blobio *io, const void *data, size_t n, uint8_t out[32])
{
	if (!io->mac)
		io->mac = mac_new(io->k);
	size_t len = 0;
	/* A NULL key restarts with the key set before. */
	if (io->mac && EVP_MAC_init(io->mac, NULL, 0, NULL) && EVP_MAC_update(io->mac, data, n) &&
	    EVP_MAC_final(io->mac, out, &len, 32) && len == 32)
		return;
	kt_repo_blob_id(io->k, data, n, out);   /* OpenSSL trouble: the slow way, same bytes */
}

/* ------------------------------------------------------------------ */
/* Sealing. */

static EVP_CIPHER_CTX *gcm_new(const kt_repo_keys *k, int encrypt)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, KT_REPO_NONCE, NULL) &&
	    EVP_CipherInit_ex(c, NULL, NULL, k->enc, NULL, encrypt))
		return c;
	EVP_CIPHER_CTX_free(c);
	return NULL;
}

kt_code kt_blobio_seal(kt_blobio *io, kt_blob_type type, const uint8_t id[32], const void *data,
                       size_t n, int level, kt_buf *out, kt_repo_entry *e, kt_error *err)
{
	if (n > KT_REPO_MAX_BLOB)
		return kt_error_set(err, KT_ELIMIT, "blob of %zu bytes exceeds %u", n, KT_REPO_MAX_BLOB);
	memset(e, 0, sizeof(*e));
	e->type = (uint8_t)type;
	e->raw_length = (uint32_t)n;
	memcpy(e->id, id, 32);
	const void *plain = data;
	size_t plain_len = n;
	if (level > 0 && n >= 64) {
		if (!io->zc && !(io->zc = ZSTD_createCCtx()))
			return kt_error_set(err, KT_ENOMEM, "out of memory for a zstd context");
		size_t bound = ZSTD_compressBound(n);
		if (bound > io->zcap) {
			free(io->zbuf);
			io->zbuf = kt_xmalloc(bound);
			io->zcap = bound;
		}
		size_t zn = ZSTD_compressCCtx(io->zc, io->zbuf, io->zcap, data, n, level);
		if (!ZSTD_isError(zn) && zn <= n - n / 8) {
			plain = io->zbuf;
			plain_len = zn;
			e->compression = 1;
		}
	}
	if (!io->enc && !(io->enc = gcm_new(io->k, 1)))
		return kt_error_set(err, KT_EIO, "AES-256-GCM encryption failed");
	uint8_t nonce[KT_REPO_NONCE];
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return kt_error_set(err, KT_EIO, "the random source failed");
	uint8_t aad[64];
	size_t aad_len = kt_repo_blob_aad(type, id, aad);
	size_t start = out->len;
	kt_code c;
	/* Grow once, then encrypt in place at the end of the buffer. */
	if ((c = kt_buf_add(out, nonce, sizeof(nonce), err)) ||
	    (c = kt_buf_add(out, plain, plain_len, err)) ||
	    (c = kt_buf_add(out, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", KT_REPO_TAG, err))) {
		out->len = start;
		out->data[start] = '\0';
		return c;
	}
	uint8_t *ct = (uint8_t *)out->data + start + KT_REPO_NONCE;
	int len = 0;
	int ok = EVP_EncryptInit_ex(io->enc, NULL, NULL, NULL, nonce) &&
	         EVP_EncryptUpdate(io->enc, NULL, &len, aad, (int)aad_len) &&
	         EVP_EncryptUpdate(io->enc, ct, &len, ct, (int)plain_len) &&
	         EVP_EncryptFinal_ex(io->enc, ct + len, &len) &&
	         EVP_CIPHER_CTX_ctrl(io->enc, EVP_CTRL_GCM_GET_TAG, KT_REPO_TAG, ct + plain_len);
	if (!ok) {
		OPENSSL_cleanse(out->data + start, out->len - start);
		out->len = start;
		out->data[start] = '\0';
		return kt_error_set(err, KT_EIO, "AES-256-GCM encryption failed");
	}
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Opening. */

/* Authenticate and decrypt the sealed blob of e at sealed: into out when
 * out is given (only for a blob stored uncompressed, whose length is
 * checked against raw_length first: out-of-place costs no more than in
 * place), else in place.  *ct and *clen: the plaintext (compressed or
 * not). */
static kt_code unseal(kt_blobio *io, const kt_repo_entry *e, uint8_t *sealed, uint8_t *out,
                      uint8_t **ct_out, size_t *clen_out, kt_error *err)
{
	size_t n = e->length;
	if (n < KT_REPO_SEAL_OVERHEAD)
		return kt_error_set(err, KT_ECORRUPT, "sealed message of %zu bytes is shorter than its "
		                    "nonce and tag", n);
	/* Checked before decrypting: out has room for raw_length bytes. */
	if (!e->compression && n - KT_REPO_SEAL_OVERHEAD != e->raw_length)
		return kt_error_set(err, KT_ECORRUPT, "blob has %zu bytes, its entry says %u",
		                    n - KT_REPO_SEAL_OVERHEAD, e->raw_length);
	if (!io->dec && !(io->dec = gcm_new(io->k, 0)))
		return kt_error_set(err, KT_EIO, "AES-256-GCM decryption failed");
	uint8_t aad[64];
	size_t aad_len = kt_repo_blob_aad((kt_blob_type)e->type, e->id, aad);
	uint8_t *ct = sealed + KT_REPO_NONCE;
	uint8_t *pt = out ? out : ct;
	size_t clen = n - KT_REPO_SEAL_OVERHEAD;
	uint8_t tag[KT_REPO_TAG];
	memcpy(tag, sealed + n - KT_REPO_TAG, KT_REPO_TAG);
	int len = 0;
	int ok = EVP_DecryptInit_ex(io->dec, NULL, NULL, NULL, sealed) &&
	         EVP_DecryptUpdate(io->dec, NULL, &len, aad, (int)aad_len) &&
	         EVP_DecryptUpdate(io->dec, pt, &len, ct, (int)clen) &&
	         EVP_CIPHER_CTX_ctrl(io->dec, EVP_CTRL_GCM_SET_TAG, KT_REPO_TAG, tag) &&
	         EVP_DecryptFinal_ex(io->dec, pt + len, &len) > 0;
	if (!ok) {
		OPENSSL_cleanse(pt, clen);
		return kt_error_set(err, KT_ECORRUPT, "authentication failed (the data was changed, "
		                    "or belongs elsewhere)");
	}
	*ct_out = pt;
	*clen_out = clen;
	return KT_OK;
}

/* Decompress the clen bytes at ct into dst (room for e->raw_length). */
static kt_code inflate(kt_blobio *io, const kt_repo_entry *e, const uint8_t *ct, size_t clen,
                       uint8_t *dst, kt_error *err)
{
	if (!io->zd && !(io->zd = ZSTD_createDCtx()))
		return kt_error_set(err, KT_ENOMEM, "out of memory for a zstd context");
	size_t got = ZSTD_decompressDCtx(io->zd, dst, e->raw_length, ct, clen);
	if (ZSTD_isError(got) || got != e->raw_length)
		return kt_error_set(err, KT_ECORRUPT, "blob does not decompress to its %u bytes",
		                    e->raw_length);
	return KT_OK;
}

kt_code kt_blobio_open(kt_blobio *io, const kt_repo_entry *e, uint8_t *sealed,
                       const uint8_t **plain, kt_error *err)
{
	uint8_t *ct;
	size_t clen;
	kt_code c = unseal(io, e, sealed, NULL, &ct, &clen, err);
	if (c)
		return c;
	if (e->compression) {
		if (e->raw_length > KT_REPO_MAX_BLOB)
			return kt_error_set(err, KT_ECORRUPT, "blob does not decompress to its %u bytes",
			                    e->raw_length);
		if (!io->raw || io->rawcap < e->raw_length) {
			free(io->raw);
			io->rawcap = e->raw_length > (256u << 10) ? e->raw_length : (256u << 10);
			io->raw = kt_xmalloc(io->rawcap);
		}
		if ((c = inflate(io, e, ct, clen, io->raw, err)))
			return c;
		*plain = io->raw;
		return KT_OK;
	}
	*plain = ct;
	return KT_OK;
}

kt_code kt_blobio_open_into(kt_blobio *io, const kt_repo_entry *e, uint8_t *sealed, uint8_t *dst,
                            kt_error *err)
{
	uint8_t *ct;
	size_t clen;
	kt_code c = unseal(io, e, sealed, e->compression ? NULL : dst, &ct, &clen, err);
	if (c || !e->compression)
		return c;
	return inflate(io, e, ct, clen, dst, err);
}
