/*
 * helm.c - Helm release records restored into another namespace
 * (docs/app-backup.md "Helm releases").
 *
 * Helm 3 keeps each revision of a release as a Secret of type
 * helm.sh/release.v1 (or, with HELM_DRIVER=configmap, a ConfigMap labelled
 * owner=helm) whose `release` entry is Helm's encoding of the release:
 * base64(gzip(JSON)).  A Secret's data is base64 once more on the wire, so
 * the Secret object holds base64(base64(gzip(JSON))).  The JSON names the
 * namespace the release was installed in; restored under another name, that
 * field is rewritten so `helm list`, `helm status` and `helm upgrade` in the
 * target see a release of their own namespace.
 *
 * Invariants:
 *   1. Outside bytes are bounded: the encoded entry at most
 *      KT_APP_HELM_MAX_ENCODED, the JSON at most KT_APP_HELM_MAX_JSON
 *      (a gzip bomb stops there with KT_ELIMIT).
 *   2. Only the release's top-level "namespace" changes, and only when it
 *      names the source namespace; everything else is decoded and encoded
 *      again without change, so mapping twice gives what mapping once gave.
 *   3. An object that is not a Helm release record is never touched.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "app.h"

#define HELM_RELEASE_TYPE "helm.sh/release.v1"

/* ---- base64 into bounded buffers (kt_base64_* in core) --------------- */

/* Decode in[0..n) into out (cleared first).  0, or -1 when it is not
 * base64 (*rc KT_OK) or does not fit out (*rc and err set). */
static int b64_decode(const char *in, size_t n, kt_buf *out, kt_error *err, kt_code *rc)
{
	char *raw;
	size_t len;
	kt_buf_reset(out);
	*rc = KT_OK;
	if (kt_base64_decode(in, n, &raw, &len))
		return -1;
	*rc = kt_buf_add(out, raw, len, err);
	kt_wipe(raw, len);
	free(raw);
	return *rc ? -1 : 0;
}

/* ---- gzip (zlib) ------------------------------------------------------ */

static kt_code gunzip(const unsigned char *in, size_t n, kt_buf *out, kt_error *err)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return kt_error_set(err, KT_ENOMEM, "cannot start gzip decoding of a helm release");
	kt_buf_reset(out);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;
	kt_code rc = KT_OK;
	int zr = Z_OK;
	while (zr != Z_STREAM_END) {
		if (out->len >= out->max) {
			rc = kt_error_set(err, KT_ELIMIT, "helm release is larger than %zu bytes "
			                  "unpacked (refusing to unpack it)", out->max);
			break;
		}
		size_t room = out->max - out->len < 65536 ? out->max - out->len : 65536;
		if ((rc = kt_buf_grow(out, room, err)))
			break;
		z.next_out = (unsigned char *)out->data + out->len;
		z.avail_out = (uInt)room;
		zr = inflate(&z, Z_NO_FLUSH);
		kt_buf_setlen(out, out->len + (room - z.avail_out));
		if (zr == Z_STREAM_END)
			break;
		if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
			rc = kt_error_set(err, KT_ECORRUPT, "helm release is not valid gzip (%s)",
			                  zr == Z_OK || zr == Z_BUF_ERROR ? "truncated"
			                                                  : z.msg ? z.msg : "bad data");
			break;
		}
	}
	if (!rc && z.avail_in != 0)
		rc = kt_error_set(err, KT_ECORRUPT, "helm release has %u bytes after its gzip stream",
		                  z.avail_in);
	inflateEnd(&z);
	return rc;
}

static kt_code gzip(const char *in, size_t n, kt_buf *out, kt_error *err)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* Helm writes with gzip.BestCompression; so do we. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return kt_error_set(err, KT_ENOMEM, "cannot start gzip encoding of a helm release");
	kt_buf_reset(out);
	size_t bound = deflateBound(&z, (uLong)n);
	kt_code rc = kt_buf_grow(out, bound, err);
	if (!rc) {
		z.next_in = (unsigned char *)in;
		z.avail_in = (uInt)n;
		z.next_out = (unsigned char *)out->data;
		z.avail_out = (uInt)bound;
		if (deflate(&z, Z_FINISH) != Z_STREAM_END)
			rc = kt_error_set(err, KT_EIO, "cannot gzip a helm release of %zu bytes", n);
		else
			kt_buf_setlen(out, bound - z.avail_out);
	}
	deflateEnd(&z);
	return rc;
}

/* ---- Helm's release encoding ----------------------------------------- */

kt_code kt_app_helm_decode(const char *text, size_t n, json_t **out, kt_error *err)
{
	if (n > KT_APP_HELM_MAX_ENCODED)
		return kt_error_set(err, KT_ELIMIT, "helm release record is %zu bytes (at most %u "
		                    "are read)", n, KT_APP_HELM_MAX_ENCODED);
	kt_buf raw, js;
	kt_buf_init(&raw, KT_APP_HELM_MAX_ENCODED);
	kt_buf_init(&js, KT_APP_HELM_MAX_JSON);
	kt_code rc = KT_OK;
	if (b64_decode(text, n, &raw, err, &rc)) {
		if (!rc)
			rc = kt_error_set(err, KT_ECORRUPT, "helm release record is not base64");
		goto done;
	}
	/* Like Helm: gzip when it starts with gzip's magic, else plain JSON. */
	const unsigned char *p = (const unsigned char *)raw.data;
	const char *doc = raw.data;
	size_t doc_len = raw.len;
	if (raw.len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08) {
		if ((rc = gunzip(p, raw.len, &js, err)))
			goto done;
		doc = js.data;
		doc_len = js.len;
	} else if (doc_len > KT_APP_HELM_MAX_JSON) {
		rc = kt_error_set(err, KT_ELIMIT, "helm release is larger than %u bytes",
		                  KT_APP_HELM_MAX_JSON);
		goto done;
	}
	json_error_t je;
	json_t *rel = json_loadb(doc, doc_len, JSON_ALLOW_NUL, &je);
	if (!rel || !json_is_object(rel)) {
		rc = kt_error_set(err, KT_ECORRUPT, "helm release is not a JSON object (%s)",
		                  rel ? "another JSON value" : je.text);
		json_decref(rel);
		goto done;
	}
	*out = rel;
done:
	kt_buf_release(&raw);
	kt_buf_release(&js);
	return rc;
}

kt_code kt_app_helm_encode(json_t *release, char **out, size_t *out_len, kt_error *err)
{
	kt_buf js, gz, text;
	kt_buf_init(&js, KT_APP_HELM_MAX_JSON);
	kt_buf_init(&gz, KT_BUF_UNLIMITED);
	kt_buf_init(&text, KT_BUF_UNLIMITED);
	kt_code rc = KT_OK;
	char *doc = json_dumps(release, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!doc)
		rc = kt_error_set(err, KT_ENOMEM, "cannot serialize a helm release");
	else if (!(rc = kt_buf_adds(&js, doc, err)) && !(rc = gzip(js.data, js.len, &gz, err)))
		rc = kt_base64_encode(gz.data, gz.len, &text, err);
	free(doc);
	if (!rc)
		*out = kt_buf_detach(&text, out_len);
	kt_buf_release(&js);
	kt_buf_release(&gz);
	kt_buf_release(&text);
	return rc;
}

/* ---- the Secret or ConfigMap that holds a release --------------------- */

int kt_app_helm_is_release(json_t *obj)
{
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	if (!api || !kind || strcmp(api, "v1"))
		return 0;
	json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
	const char *owner = json_string_value(json_object_get(labels, "owner"));
	const char *type = json_string_value(json_object_get(obj, "type"));
	if (!strcmp(kind, "Secret"))
		return type && !strcmp(type, HELM_RELEASE_TYPE);
	if (!strcmp(kind, "ConfigMap"))
		return owner && !strcmp(owner, "helm") &&
		       json_is_string(json_object_get(json_object_get(obj, "data"), "release"));
	return 0;
}

kt_code kt_app_helm_map_release(json_t *obj, const char *from, const char *to, int *changed,
                                kt_error *err)
{
	*changed = 0;
	if (!from || !to || !strcmp(from, to) || !kt_app_helm_is_release(obj))
		return KT_OK;
	json_t *data = json_object_get(obj, "data");
	const char *v = json_string_value(json_object_get(data, "release"));
	if (!v)
		return KT_OK;
	int secret = !strcmp(json_string_value(json_object_get(obj, "kind")), "Secret");
	size_t n = json_string_length(json_object_get(data, "release"));
	kt_buf helm;   /* Helm's own text: the Secret's value once base64-decoded */
	kt_buf_init(&helm, KT_APP_HELM_MAX_ENCODED);
	kt_code rc = KT_OK;
	json_t *rel = NULL;
	char *enc = NULL;
	size_t enc_len = 0;
	if (secret) {
		if (n > KT_APP_HELM_MAX_ENCODED / 3 * 4 + 4) {
			rc = kt_error_set(err, KT_ELIMIT, "helm release record is %zu bytes (at most "
			                  "%u are read)", n, KT_APP_HELM_MAX_ENCODED);
			goto done;
		}
		if (b64_decode(v, n, &helm, err, &rc)) {
			if (!rc)
				rc = kt_error_set(err, KT_ECORRUPT, "the secret's data.release is not "
				                  "base64");
			goto done;
		}
		v = helm.data;
		n = helm.len;
	}
	if ((rc = kt_app_helm_decode(v, n, &rel, err)))
		goto done;
	const char *ns = json_string_value(json_object_get(rel, "namespace"));
	if (!ns || strcmp(ns, from))
		goto done;
	json_object_set_new(rel, "namespace", json_string(to));
	if ((rc = kt_app_helm_encode(rel, &enc, &enc_len, err)))
		goto done;
	if (secret) {
		kt_buf outer;
		kt_buf_init(&outer, KT_BUF_UNLIMITED);
		if (!(rc = kt_base64_encode(enc, enc_len, &outer, err)))
			json_object_set_new(data, "release", json_stringn(outer.data, outer.len));
		kt_buf_release(&outer);
	} else {
		json_object_set_new(data, "release", json_stringn(enc, enc_len));
	}
	if (!rc)
		*changed = 1;
done:
	free(enc);
	json_decref(rel);
	kt_buf_release(&helm);
	return rc;
}
