/*
 * profile.c - export profiles: the Profile custom resource
 * (kontinuity.io/v1alpha1, deploy/crds/kontinuity.io/profiles.yaml) read
 * with its Secret, and `profile check`, which proves the location works
 * with those keys before a policy relies on it.
 *
 * Invariants:
 *   1. The secret key is wiped when the profile is released and never put
 *      in a message (kt_log_add_secret registers it for redaction).
 *   2. The check writes one probe object under PREFIX/kontinuity-probe/ and
 *      removes it (on an Object Lock bucket the removal is a delete marker;
 *      the probe version stays until its retention ends, 1 KiB).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "app.h"
#include "s3/s3.h"

static const char *jstr(json_t *o, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return json_string_value(v);
}

kt_code kt_profile_from_object(kt_profile *out, json_t *obj, kt_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *ns = jstr(obj, "metadata", "namespace", NULL);
	const char *name = jstr(obj, "metadata", "name", NULL);
	json_t *spec = json_object_get(obj, "spec");
	const char *endpoint = jstr(spec, "location", "endpoint", NULL);
	const char *bucket = jstr(spec, "location", "bucket", NULL);
	const char *secret = jstr(spec, "credentials", "secretName", NULL);
	if (!name || !endpoint || !bucket || !secret)
		return kt_error_set(err, KT_EUSAGE, "profile '%s': spec.location.endpoint, "
		                    "spec.location.bucket and spec.credentials.secretName are "
		                    "required", name ? name : "?");
	snprintf(out->namespace, sizeof(out->namespace), "%s", ns ? ns : "");
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", endpoint);
	snprintf(out->bucket, sizeof(out->bucket), "%s", bucket);
	snprintf(out->secret_name, sizeof(out->secret_name), "%s", secret);
	const char *region = jstr(spec, "location", "region", NULL);
	snprintf(out->region, sizeof(out->region), "%s", region && *region ? region : "us-east-1");
	const char *prefix = jstr(spec, "location", "prefix", NULL);
	snprintf(out->prefix, sizeof(out->prefix), "%s", prefix ? prefix : "");
	out->path_style = json_is_true(json_object_get(json_object_get(spec, "location"),
	                                               "pathStyle"));
	const char *ca = jstr(spec, "location", "caBundle", NULL);
	if (ca && *ca)
		out->ca_pem = kt_xstrdup(ca);
	json_int_t days = json_integer_value(json_object_get(json_object_get(spec,
	                                     "immutability"), "days"));
	if (days < 0 || days > 36500) {
		kt_profile_release(out);
		return kt_error_set(err, KT_EUSAGE, "profile '%s': spec.immutability.days must be "
		                    "0..36500", name);
	}
	out->immutable_days = (unsigned)days;
	return KT_OK;
}

kt_code kt_profile_get(kt_kube *c, const char *ns, const char *name, kt_profile *out,
                       kt_error *err)
{
	kt_kube_target t = { .group = KT_PROFILE_GROUP, .version = KT_PROFILE_VERSION,
	                     .resource = "profiles", .namespace = ns, .name = name };
	json_t *obj = NULL;
	kt_code rc = kt_kube_get_object(c, &t, &obj, err);
	if (rc == KT_ENOTFOUND)
		return kt_error_set(err, KT_ENOTFOUND, "profile '%s' not found in namespace '%s' "
		                    "(kontinuity profile list -n %s)", name, ns, ns);
	if (rc)
		return rc;
	rc = kt_profile_from_object(out, obj, err);
	json_decref(obj);
	if (rc)
		return rc;
	kt_kube_secret *s = NULL;
	rc = kt_kube_get_secret(c, ns, out->secret_name, &s, err);
	if (rc == KT_ENOTFOUND)
		rc = kt_error_set(err, KT_ENOTFOUND, "profile '%s': Secret '%s' not found in namespace "
		                  "'%s' (it must hold access_key_id and secret_access_key)", name,
		                  out->secret_name, ns);
	if (!rc) {
		const kt_kube_secret_item *ak = kt_kube_secret_find(s, "access_key_id");
		const kt_kube_secret_item *sk = kt_kube_secret_find(s, "secret_access_key");
		if (!ak || !sk || !ak->len || !sk->len) {
			rc = kt_error_set(err, KT_ENOTFOUND, "profile '%s': Secret '%s' lacks %s", name,
			                  out->secret_name, !ak || !ak->len ? "access_key_id"
			                                                    : "secret_access_key");
		} else {
			out->access_key = kt_xstrdup(ak->value);
			out->secret_key = kt_xstrdup(sk->value);
			kt_log_add_secret(out->secret_key);
			const kt_kube_secret_item *rp = kt_kube_secret_find(s, "repository_password");
			if (rp && rp->len) {
				out->repo_password = kt_xstrdup(rp->value);
				kt_log_add_secret(out->repo_password);
			}
		}
	}
	kt_kube_secret_free(s);
	if (rc)
		kt_profile_release(out);
	return rc;
}

void kt_profile_release(kt_profile *p)
{
	if (p->secret_key) {
		explicit_bzero(p->secret_key, strlen(p->secret_key));
		free(p->secret_key);
	}
	if (p->repo_password) {
		explicit_bzero(p->repo_password, strlen(p->repo_password));
		free(p->repo_password);
	}
	free(p->access_key);
	free(p->ca_pem);
	p->secret_key = p->access_key = p->ca_pem = p->repo_password = NULL;
}

/* ---- check ----------------------------------------------------------- */

typedef struct lines {
	kt_profile_check *v;
	size_t n;
} lines;

static kt_profile_check *line(lines *l, const char *id, int result)
{
	kt_profile_check *v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		abort();
	l->v = v;
	kt_profile_check *k = &v[l->n++];
	memset(k, 0, sizeof(*k));
	k->id = id;
	k->result = result;
	return k;
}

/* One listed key is enough to know the listing works: stop there (the
 * walk returns this code, which the caller takes as success). */
#define STOP_LISTING KT_EEXIST
static kt_code count_one(void *ctx, const kt_s3_entry *e, kt_error *err)
{
	(void)e;
	(void)err;
	(*(unsigned *)ctx)++;
	return STOP_LISTING;
}

static kt_code collect(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	return kt_buf_add(ctx, data, n, err);
}

static const char *fix_for(kt_code rc)
{
	switch (rc) {
	case KT_EAUTH: return "check the keys in the profile's Secret and that they may use the "
		              "bucket";
	case KT_ENOTFOUND: return "create the bucket (with Object Lock if restore points must be "
		                  "immutable: it cannot be turned on later on every S3)";
	case KT_ETLS: return "set spec.location.caBundle to the CA that signs the endpoint";
	case KT_ETRANSIENT: return "check the endpoint URL and that this host can reach it";
	default: return "see the message";
	}
}

static void check_lock(kt_s3 *s3, const kt_profile *p, lines *l)
{
	kt_s3_lock_config lc;
	kt_error e;
	kt_profile_check *k;
	if (kt_s3_get_object_lock(s3, &lc, &e)) {
		k = line(l, "object-lock", p->immutable_days ? 2 : 1);
		snprintf(k->detail, sizeof(k->detail), "cannot read the bucket's Object Lock "
		         "configuration: %.400s", e.msg);
		snprintf(k->fix, sizeof(k->fix), "allow s3:GetBucketObjectLockConfiguration to these "
		         "keys");
		return;
	}
	if (p->immutable_days && !lc.enabled) {
		k = line(l, "object-lock", 2);
		snprintf(k->detail, sizeof(k->detail), "immutability of %u days asked, but bucket '%s' "
		         "has no Object Lock", p->immutable_days, p->bucket);
		snprintf(k->fix, sizeof(k->fix), "use a bucket created with Object Lock enabled, or "
		         "set spec.immutability.days to 0");
	} else if (p->immutable_days) {
		k = line(l, "object-lock", 0);
		snprintf(k->detail, sizeof(k->detail), "Object Lock enabled; exported objects get %u "
		         "days of COMPLIANCE retention%s%s%s", p->immutable_days,
		         lc.mode[0] ? " (bucket default: " : "", lc.mode, lc.mode[0] ? ")" : "");
	} else if (lc.enabled && lc.mode[0]) {
		k = line(l, "object-lock", 1);
		snprintf(k->detail, sizeof(k->detail), "the bucket keeps every object %u %s under %s "
		         "retention by default, although the profile asks for none",
		         lc.days ? lc.days : lc.years, lc.days ? "days" : "years", lc.mode);
		snprintf(k->fix, sizeof(k->fix), "set spec.immutability.days to match, or expect "
		         "forgotten restore points to use space until their retention ends");
	} else {
		k = line(l, "object-lock", 0);
		snprintf(k->detail, sizeof(k->detail), "no immutability asked%s",
		         lc.enabled ? " (the bucket has Object Lock, without a default retention)"
		                    : "");
	}
}

static void check_write(kt_s3 *s3, const kt_profile *p, lines *l)
{
	unsigned char rnd[8];
	char key[700], body[1024];
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(key, sizeof(key), "%s%skontinuity-probe/%lld-%02x%02x%02x%02x%02x%02x%02x%02x",
	         p->prefix, p->prefix[0] ? "/" : "", (long long)time(NULL), rnd[0], rnd[1], rnd[2],
	         rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	snprintf(body, sizeof(body), "kontinuity profile check %s/%s", p->namespace, p->name);
	kt_s3_put_opts po = { .if_none_match = 1, .content_type = "text/plain" };
	kt_error e;
	kt_buf got;
	kt_buf_init(&got, 4096);
	kt_s3_object_info info;
	kt_profile_check *k;
	kt_code rc = kt_s3_put_mem(s3, key, body, strlen(body), &po, &info, &e);
	if (!rc) {
		rc = kt_s3_get(s3, key, collect, &got, &info, &e);
		if (!rc)
			kt_s3_object_info_release(&info);
	}
	if (!rc && (got.len != strlen(body) || memcmp(got.data, body, got.len))) {
		k = line(l, "write", 2);
		snprintf(k->detail, sizeof(k->detail), "the probe object '%.300s' read back different "
		         "bytes", key);
		snprintf(k->fix, sizeof(k->fix), "the endpoint does not store objects faithfully");
	} else if (rc) {
		k = line(l, "write", 2);
		snprintf(k->detail, sizeof(k->detail), "cannot write and read a probe object: %.400s",
		         e.msg);
		snprintf(k->fix, sizeof(k->fix), "allow s3:PutObject and s3:GetObject under the "
		         "prefix to these keys");
	} else if ((rc = kt_s3_delete(s3, key, &e))) {
		k = line(l, "write", 1);
		snprintf(k->detail, sizeof(k->detail), "wrote and read a probe object, but cannot "
		         "remove it: %.380s", e.msg);
		snprintf(k->fix, sizeof(k->fix), "allow s3:DeleteObject, or retention (forget) will "
		         "not free space");
	} else {
		k = line(l, "write", 0);
		snprintf(k->detail, sizeof(k->detail), "wrote, read back and removed a probe object "
		         "under '%.300s/'", p->prefix[0] ? p->prefix : "(bucket root)");
	}
	kt_buf_release(&got);
}

kt_code kt_profile_check_run(const kt_profile *p, kt_profile_check **out, size_t *n_out,
                             kt_error *err)
{
	lines l = { 0 };
	char ca_path[] = "/tmp/kontinuity-ca-XXXXXX";
	int have_ca = 0;
	if (p->ca_pem) {
		int fd = mkstemp(ca_path);
		size_t n = strlen(p->ca_pem);
		if (fd < 0 || write(fd, p->ca_pem, n) != (ssize_t)n) {
			if (fd >= 0) {
				close(fd);
				unlink(ca_path);
			}
			return kt_error_sys(err, KT_EIO, errno, "cannot write the profile's CA bundle to "
			                    "a temporary file");
		}
		close(fd);
		have_ca = 1;
	}
	kt_s3_config cfg = { .endpoint = p->endpoint, .region = p->region, .bucket = p->bucket,
	                     .access_key = p->access_key, .secret_key = p->secret_key,
	                     .cacert = have_ca ? ca_path : NULL,
	                     .style = p->path_style ? KT_S3_STYLE_PATH : KT_S3_STYLE_AUTO,
	                     .connect_timeout_ms = 5000, .max_attempts = 2 };
	kt_s3 *s3 = NULL;
	kt_error e;
	kt_profile_check *k;
	if (kt_s3_new(&s3, &cfg, &e)) {
		k = line(&l, "bucket", 2);
		snprintf(k->detail, sizeof(k->detail), "%.500s", e.msg);
		snprintf(k->fix, sizeof(k->fix), "fix spec.location");
	} else {
		unsigned seen = 0;
		kt_code rc = kt_s3_list(s3, p->prefix[0] ? p->prefix : NULL, 1, count_one, &seen, NULL,
		                        &e);
		if (rc == STOP_LISTING && seen)
			rc = KT_OK;
		if (rc) {
			k = line(&l, "bucket", 2);
			snprintf(k->detail, sizeof(k->detail), "%.500s", e.msg);
			snprintf(k->fix, sizeof(k->fix), "%s", fix_for(rc));
		} else {
			k = line(&l, "bucket", 0);
			snprintf(k->detail, sizeof(k->detail), "bucket '%s' at %.300s answers with these "
			         "keys", p->bucket, p->endpoint);
			check_lock(s3, p, &l);
			check_write(s3, p, &l);
		}
	}
	kt_s3_free(s3);
	if (have_ca)
		unlink(ca_path);
	*out = l.v;
	*n_out = l.n;
	return KT_OK;
}
