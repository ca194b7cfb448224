/*
 * crypto.c - the repository's keys, sealed messages and blob ids
 * (docs/repository-format.md, "Cryptography").
 *
 * Invariants:
 *   1. Every sealed message is nonce(12) || AES-256-GCM ciphertext || tag(16)
 *      with the caller's AAD; a message that fails authentication is
 *      KT_ECORRUPT and nothing of its plaintext reaches the caller.
 *   2. Keys live in a kt_repo_keys the caller owns and wipes with
 *      kt_repo_keys_wipe; no key byte is ever logged or put in a message.
 *   3. scrypt parameters from a key file are bounded before use, so a
 *      hostile repository cannot make us spend minutes or gigabytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#include "repo_int.h"

void kt_repo_keys_wipe(kt_repo_keys *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

kt_code kt_repo_keys_generate(kt_repo_keys *k, kt_error *err)
{
	if (RAND_bytes(k->enc, sizeof(k->enc)) != 1 || RAND_bytes(k->id, sizeof(k->id)) != 1)
		return kt_error_set(err, KT_EIO, "the random source failed; no key was made");
	return KT_OK;
}

void kt_repo_blob_id(const kt_repo_keys *k, const void *data, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	HMAC(EVP_sha256(), k->id, sizeof(k->id), data, n, out, &len);
}

kt_code kt_repo_seal_in_place(const kt_repo_keys *k, const void *aad, size_t aad_len,
                              kt_buf *out, size_t start, kt_error *err)
{
	size_t n = out->len - start - KT_REPO_NONCE;
	kt_code c = KT_OK;
	if (n > KT_REPO_MAX_SEALED)
		c = kt_error_set(err, KT_ELIMIT, "message of %zu bytes is too large to seal", n);
	uint8_t nonce[KT_REPO_NONCE];
	if (!c && RAND_bytes(nonce, sizeof(nonce)) != 1)
		c = kt_error_set(err, KT_EIO, "the random source failed");
	if (!c)
		c = kt_buf_add(out, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", KT_REPO_TAG, err);
	if (c) {
		OPENSSL_cleanse(out->data + start, out->len - start);
		kt_buf_setlen(out, start);
		return c;
	}
	memcpy(out->data + start, nonce, sizeof(nonce));
	uint8_t *ct = (uint8_t *)out->data + start + KT_REPO_NONCE;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
	                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KT_REPO_NONCE, NULL) &&
	                  EVP_EncryptInit_ex(ctx, NULL, NULL, k->enc, nonce) &&
	                  (aad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aad_len)) &&
	                  EVP_EncryptUpdate(ctx, ct, &len, ct, (int)n) &&
	                  EVP_EncryptFinal_ex(ctx, ct + len, &len) &&
	                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KT_REPO_TAG, ct + n);
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		OPENSSL_cleanse(out->data + start, out->len - start);
		kt_buf_setlen(out, start);
		return kt_error_set(err, KT_EIO, "AES-256-GCM encryption failed");
	}
	return KT_OK;
}

kt_code kt_repo_seal(const kt_repo_keys *k, const void *aad, size_t aad_len, const void *plain,
                     size_t n, kt_buf *out, kt_error *err)
{
	if (n > KT_REPO_MAX_SEALED)
		return kt_error_set(err, KT_ELIMIT, "message of %zu bytes is too large to seal", n);
	size_t start = out->len;
	/* Grow once (room for the nonce, then the plaintext), then seal there. */
	kt_code c = kt_buf_add(out, "\0\0\0\0\0\0\0\0\0\0\0\0", KT_REPO_NONCE, err);
	if (!c && (c = kt_buf_add(out, plain, n, err))) {
		kt_buf_setlen(out, start);
	}
	return c ? c : kt_repo_seal_in_place(k, aad, aad_len, out, start, err);
}

kt_code kt_repo_open(const kt_repo_keys *k, const void *aad, size_t aad_len, const void *sealed,
                     size_t n, kt_buf *out, kt_error *err)
{
	if (n < KT_REPO_SEAL_OVERHEAD)
		return kt_error_set(err, KT_ECORRUPT, "sealed message of %zu bytes is shorter than its "
		                    "nonce and tag", n);
	const uint8_t *p = sealed;
	size_t clen = n - KT_REPO_SEAL_OVERHEAD;
	size_t start = out->len;
	kt_code c = kt_buf_add(out, p + KT_REPO_NONCE, clen, err);
	if (c)
		return c;
	uint8_t *pt = (uint8_t *)out->data + start;
	uint8_t tag[KT_REPO_TAG];
	memcpy(tag, p + n - KT_REPO_TAG, KT_REPO_TAG);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
	                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KT_REPO_NONCE, NULL) &&
	                  EVP_DecryptInit_ex(ctx, NULL, NULL, k->enc, p) &&
	                  (aad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len)) &&
	                  EVP_DecryptUpdate(ctx, pt, &len, pt, (int)clen) &&
	                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KT_REPO_TAG, tag) &&
	                  EVP_DecryptFinal_ex(ctx, pt + len, &len) > 0;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		OPENSSL_cleanse(pt, clen);
		out->len = start;
		out->data[start] = '\0';
		return kt_error_set(err, KT_ECORRUPT, "authentication failed (the data was changed, "
		                    "or belongs elsewhere)");
	}
	return KT_OK;
}

/* ------------------------------------------------------------------ */
/* Key files. */

static const char key_aad[] = "kontinuity key v1";

static char *b64(const uint8_t *d, size_t n)
{
	char *out = kt_xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, d, (int)n);
	return out;
}

/* Decode base64 s into out (at most max bytes).  -1 on bad input. */
static long unb64(const char *s, uint8_t *out, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n % 4 || n / 4 * 3 > max + 2)
		return -1;
	uint8_t *tmp = kt_xmalloc(n / 4 * 3 + 1);
	int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (len < 0) {
		free(tmp);
		return -1;
	}
	if (n >= 1 && s[n - 1] == '=')
		len--;
	if (n >= 2 && s[n - 2] == '=')
		len--;
	if ((size_t)len > max) {
		free(tmp);
		return -1;
	}
	memcpy(out, tmp, (size_t)len);
	OPENSSL_cleanse(tmp, n / 4 * 3 + 1);
	free(tmp);
	return len;
}

static kt_code derive(const char *pass, size_t pass_len, const uint8_t *salt, size_t salt_len,
                      uint64_t N, uint64_t r, uint64_t p, uint8_t kek[32], kt_error *err)
{
	/* Memory scrypt needs: 128 * r * N (+ 128 * r * p), with headroom. */
	uint64_t maxmem = 128ull * r * N + 128ull * r * p + (1u << 20);
	if (EVP_PBE_scrypt(pass, pass_len, salt, salt_len, N, r, p, maxmem, kek, 32) != 1)
		return kt_error_set(err, KT_EIO, "scrypt key derivation failed");
	return KT_OK;
}

kt_code kt_repo_keyfile_create(const kt_repo_keys *k, const char *pass, size_t pass_len,
                               const kt_repo_kdf *kdf, const char *hostname, kt_buf *out,
                               kt_error *err)
{
	uint8_t salt[32], kek[32];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return kt_error_set(err, KT_EIO, "the random source failed");
	kt_code c = derive(pass, pass_len, salt, sizeof(salt), kdf->N, kdf->r, kdf->p, kek, err);
	if (c)
		return c;
	char *enc = b64(k->enc, 32), *id = b64(k->id, 32);
	json_t *inner = json_pack("{s:s, s:s}", "enc", enc, "id", id);
	char *text = json_dumps(inner, JSON_COMPACT);
	json_decref(inner);
	OPENSSL_cleanse(enc, strlen(enc));
	OPENSSL_cleanse(id, strlen(id));
	free(enc);
	free(id);
	kt_repo_keys wrap;
	memcpy(wrap.enc, kek, 32);
	memset(wrap.id, 0, 32);
	kt_buf sealed;
	kt_buf_init(&sealed, 4096);
	c = kt_repo_seal(&wrap, key_aad, sizeof(key_aad) - 1, text, strlen(text), &sealed, err);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	kt_repo_keys_wipe(&wrap);
	OPENSSL_cleanse(kek, sizeof(kek));
	if (c) {
		kt_buf_release(&sealed);
		return c;
	}
	char *salt64 = b64(salt, sizeof(salt)), *data64 = b64((uint8_t *)sealed.data, sealed.len);
	kt_buf_release(&sealed);
	char created[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *j = json_pack("{s:i, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "version", 1, "kdf",
	                      "scrypt", "N", (json_int_t)kdf->N, "r", (json_int_t)kdf->r, "p",
	                      (json_int_t)kdf->p, "salt", salt64, "created", created, "hostname",
	                      hostname ? hostname : "", "data", data64);
	free(salt64);
	free(data64);
	char *doc = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	c = doc ? kt_buf_adds(out, doc, err) : kt_error_set(err, KT_ENOMEM, "out of memory");
	free(doc);
	return c;
}

kt_code kt_repo_keyfile_open(const char *data, size_t n, const char *pass, size_t pass_len,
                             kt_repo_keys *k, kt_error *err)
{
	if (n > KT_REPO_MAX_KEYFILE)
		return kt_error_set(err, KT_ECORRUPT, "key file of %zu bytes is too large", n);
	json_error_t jerr;
	json_t *j = json_loadb(data, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return kt_error_set(err, KT_ECORRUPT, "key file is not JSON: %s", jerr.text);
	kt_code c = KT_OK;
	json_int_t version = json_integer_value(json_object_get(j, "version"));
	const char *kdf = json_string_value(json_object_get(j, "kdf"));
	json_int_t N = json_integer_value(json_object_get(j, "N"));
	json_int_t r = json_integer_value(json_object_get(j, "r"));
	json_int_t p = json_integer_value(json_object_get(j, "p"));
	const char *salt64 = json_string_value(json_object_get(j, "salt"));
	const char *data64 = json_string_value(json_object_get(j, "data"));
	uint8_t salt[64], sealed[512], kek[32];
	long salt_len = -1, sealed_len = -1;
	if (version != 1 || !kdf || strcmp(kdf, "scrypt"))
		c = kt_error_set(err, KT_ECORRUPT, "key file: unknown version or kdf");
	else if (N < (1 << 14) || N > (1 << 22) || (N & (N - 1)) || r < 1 || p < 1 || r * p > 64)
		c = kt_error_set(err, KT_ECORRUPT, "key file: scrypt parameters N=%lld r=%lld p=%lld "
		                 "are outside what kontinuity accepts (N a power of two from 2^14 to "
		                 "2^22, r*p <= 64)", (long long)N, (long long)r, (long long)p);
	else if (!salt64 || !data64 ||
	         (salt_len = unb64(salt64, salt, sizeof(salt))) < 16 ||
	         (sealed_len = unb64(data64, sealed, sizeof(sealed))) < (long)KT_REPO_SEAL_OVERHEAD)
		c = kt_error_set(err, KT_ECORRUPT, "key file: bad salt or data");
	if (!c)
		c = derive(pass, pass_len, salt, (size_t)salt_len, (uint64_t)N, (uint64_t)r,
		           (uint64_t)p, kek, err);
	json_decref(j);
	if (c)
		return c;
	kt_repo_keys wrap;
	memcpy(wrap.enc, kek, 32);
	OPENSSL_cleanse(kek, sizeof(kek));
	kt_buf plain;
	kt_buf_init(&plain, 1024);
	c = kt_repo_open(&wrap, key_aad, sizeof(key_aad) - 1, sealed, (size_t)sealed_len, &plain,
	                 err);
	kt_repo_keys_wipe(&wrap);
	if (c == KT_ECORRUPT) {
		kt_buf_release(&plain);
		return kt_error_set(err, KT_EAUTH, "wrong passphrase (it opens no key of this "
		                    "repository)");
	}
	if (c) {
		kt_buf_release(&plain);
		return c;
	}
	json_t *inner = json_loadb(plain.data, plain.len, 0, &jerr);
	OPENSSL_cleanse(plain.data, plain.len);
	kt_buf_release(&plain);
	const char *enc = json_string_value(json_object_get(inner, "enc"));
	const char *id = json_string_value(json_object_get(inner, "id"));
	if (!enc || !id || unb64(enc, k->enc, sizeof(k->enc)) != 32 ||
	    unb64(id, k->id, sizeof(k->id)) != 32)
		c = kt_error_set(err, KT_ECORRUPT, "key file: the master keys are malformed");
	if (enc)
		OPENSSL_cleanse((char *)enc, strlen(enc));   /* jansson's copy of the keys */
	if (id)
		OPENSSL_cleanse((char *)id, strlen(id));
	json_decref(inner);
	if (c)
		kt_repo_keys_wipe(k);
	return c;
}
