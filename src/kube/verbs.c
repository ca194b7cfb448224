/*
 * verbs.c - the object verbs on top of kube_do: get, create, update
 * (PUT), patch (merge, JSON, server-side apply), delete; the path of a
 * target; and the typed helpers (Secret data, namespace UID).
 *
 * Invariants:
 *   1. Every part of a path is checked before a request is made, so no
 *      name can change the path ("../", "/", "%2F", "?").
 *   2. Bodies are serialized by jansson; a patch body is the caller's bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "kube_int.h"

/* ------------------------------------------------------------------ */
/* Paths */

/* group, version, resource: lowercase DNS-ish words. */
static int valid_word(const char *s, int dots)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      (dots && ch == '.')))
			return 0;
	}
	return 1;
}

/* Object names: most are DNS subdomains, but some (RBAC roles such as
 * "system:controller:x") are not; refuse only what could change the path. */
static int valid_object_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 253 || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '%' || ch == '?' || ch == '#' ||
		    ch == '\\')
			return 0;
	}
	return 1;
}

kt_code kube_target_path(const kt_kube_target *t, int with_name, kt_buf *b, kt_error *err)
{
	if (!t || !valid_word(t->version, 0))
		return kt_error_set(err, KT_EUSAGE, "kube: version '%.60s' is not valid",
		                    t && t->version ? t->version : "");
	if (t->group && t->group[0] && !valid_word(t->group, 1))
		return kt_error_set(err, KT_EUSAGE, "kube: API group '%.100s' is not valid", t->group);
	if (!valid_word(t->resource, 0))
		return kt_error_set(err, KT_EUSAGE, "kube: resource '%.100s' is not valid (plural, "
		                    "lowercase: configmaps)", t->resource ? t->resource : "");
	if (t->namespace && !kt_kube_valid_label(t->namespace))
		return kt_error_set(err, KT_EUSAGE, "'%.100s' is not a valid namespace name",
		                    t->namespace);
	if (with_name && !valid_object_name(t->name))
		return kt_error_set(err, KT_EUSAGE, "'%.260s' is not a valid %s name",
		                    t->name ? t->name : "", t->resource);
	if (t->group && t->group[0])
		kt_buf_addf(b, NULL, "/apis/%s/%s", t->group, t->version);
	else
		kt_buf_addf(b, NULL, "/api/%s", t->version);
	if (t->namespace)
		kt_buf_addf(b, NULL, "/namespaces/%s", t->namespace);
	kt_buf_addf(b, NULL, "/%s", t->resource);
	if (with_name)
		kt_buf_addf(b, NULL, "/%s", t->name);
	if (with_name && t->subresource) {
		if (!valid_word(t->subresource, 0))
			return kt_error_set(err, KT_EUSAGE, "kube: subresource '%.60s' is not valid",
			                    t->subresource);
		kt_buf_addf(b, NULL, "/%s", t->subresource);
	}
	return KT_OK;
}

void kube_query_add(kt_buf *b, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	kt_buf_addf(b, NULL, "%c%s=", memchr(b->data, '?', b->len) ? '&' : '?', name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			kt_buf_add(b, p, 1, NULL);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			kt_buf_add(b, e, 3, NULL);
		}
	}
}

void kt_kube_target_of(kt_kube_target *t, const kt_kube_resource *r, const char *ns,
                       const char *name)
{
	t->group = r->group;
	t->version = r->version;
	t->resource = r->resource;
	t->namespace = r->namespaced ? ns : NULL;
	t->name = name;
	t->subresource = NULL;
}

/* ------------------------------------------------------------------ */
/* Verbs */

static kt_code call(kt_kube *c, const kt_kube_target *t, const char *verb, const char *method,
                    int with_name, const char *query_name, const char *query_value,
                    const char *ctype, const char *body, size_t len, int idempotent,
                    json_t **out, kt_error *err)
{
	kt_buf path;
	kt_buf_init(&path, KT_BUF_UNLIMITED);
	kt_code rc = kube_target_path(t, with_name, &path, err);
	if (rc == KT_OK && query_name)
		kube_query_add(&path, query_name, query_value);
	if (rc == KT_OK) {
		kube_call k = { .verb = verb, .t = t, .method = method, .path = path.data,
		                .content_type = ctype, .body = body, .body_len = len,
		                .idempotent = idempotent };
		rc = kube_do(c, &k, out, NULL, err);
	}
	kt_buf_release(&path);
	return rc;
}

kt_code kt_kube_get_object(kt_kube *c, const kt_kube_target *t, json_t **out, kt_error *err)
{
	return call(c, t, "get", "GET", 1, NULL, NULL, NULL, NULL, 0, 1, out, err);
}

/* Serialize obj (must be an object) for a request body. */
static char *body_of(json_t *obj, const char *verb, kt_error *err)
{
	if (!json_is_object(obj)) {
		kt_error_set(err, KT_EUSAGE, "kube %s: the object must be a JSON object", verb);
		return NULL;
	}
	char *s = json_dumps(obj, JSON_COMPACT);
	if (!s)
		kt_error_set(err, KT_ENOMEM, "kube %s: cannot serialize the object", verb);
	return s;
}

/* The name in obj's metadata, for messages of create. */
static const char *meta_name(json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

kt_code kt_kube_create(kt_kube *c, const kt_kube_target *t, json_t *obj, json_t **out,
                       kt_error *err)
{
	char *body = body_of(obj, "create", err);
	if (!body)
		return err ? err->code : KT_EUSAGE;
	/* The object's name is part of the message, not of the path. */
	kt_kube_target named = *t;
	named.name = meta_name(obj);
	kt_buf path;
	kt_buf_init(&path, KT_BUF_UNLIMITED);
	kt_code rc = kube_target_path(t, 0, &path, err);
	json_t *got = NULL;
	if (rc == KT_OK) {
		kube_call k = { .verb = "create", .t = &named, .method = "POST", .path = path.data,
		                .content_type = "application/json", .body = body,
		                .body_len = strlen(body), .idempotent = 0 };
		rc = kube_do(c, &k, &got, NULL, err);
	}
	kt_buf_release(&path);
	free(body);
	if (rc == KT_OK && out)
		*out = got;
	else
		json_decref(got);
	return rc;
}

kt_code kt_kube_update(kt_kube *c, const kt_kube_target *t, json_t *obj, json_t **out,
                       kt_error *err)
{
	char *body = body_of(obj, "update", err);
	if (!body)
		return err ? err->code : KT_EUSAGE;
	json_t *got = NULL;
	kt_code rc = call(c, t, "update", "PUT", 1, NULL, NULL, "application/json", body,
	                  strlen(body), 1, &got, err);
	free(body);
	if (rc == KT_OK && out)
		*out = got;
	else
		json_decref(got);
	return rc;
}

kt_code kt_kube_patch(kt_kube *c, const kt_kube_target *t, kt_kube_patch_type type,
                      const char *body, size_t len, const kt_kube_patch_opts *o, json_t **out,
                      kt_error *err)
{
	static const char *const ctypes[] = { "application/merge-patch+json",
	                                      "application/json-patch+json",
	                                      "application/apply-patch+yaml" };
	if ((unsigned)type > KT_KUBE_PATCH_APPLY)
		return kt_error_set(err, KT_EUSAGE, "kube patch: unknown patch type %d", (int)type);
	kt_buf path;
	kt_buf_init(&path, KT_BUF_UNLIMITED);
	kt_code rc = kube_target_path(t, 1, &path, err);
	if (rc == KT_OK && type == KT_KUBE_PATCH_APPLY) {
		kube_query_add(&path, "fieldManager",
		               o && o->field_manager && o->field_manager[0] ? o->field_manager
		                                                            : "kontinuity");
		if (o && o->force)
			kube_query_add(&path, "force", "true");
	} else if (rc == KT_OK && o && o->field_manager && o->field_manager[0]) {
		kube_query_add(&path, "fieldManager", o->field_manager);
	}
	json_t *got = NULL;
	if (rc == KT_OK) {
		/* A JSON or merge patch may depend on the state it was written
		 * against; only apply is safe to send twice. */
		kube_call k = { .verb = type == KT_KUBE_PATCH_APPLY ? "apply" : "patch", .t = t,
		                .method = "PATCH", .path = path.data, .content_type = ctypes[type],
		                .body = body, .body_len = len,
		                .idempotent = type == KT_KUBE_PATCH_APPLY };
		rc = kube_do(c, &k, &got, NULL, err);
	}
	kt_buf_release(&path);
	if (rc == KT_OK && out)
		*out = got;
	else
		json_decref(got);
	return rc;
}

kt_code kt_kube_delete(kt_kube *c, const kt_kube_target *t, const kt_kube_delete_opts *o,
                       kt_error *err)
{
	static const char *const policies[] = { "Foreground", "Background", "Orphan" };
	json_t *opts = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
	if (o && o->propagation) {
		size_t i = 0;
		while (i < 3 && strcmp(o->propagation, policies[i]))
			i++;
		if (i == 3) {
			json_decref(opts);
			return kt_error_set(err, KT_EUSAGE, "kube delete: propagation policy '%.40s' is "
			                    "not Foreground, Background or Orphan", o->propagation);
		}
		json_object_set_new(opts, "propagationPolicy", json_string(o->propagation));
	}
	if (o && (o->uid || o->resource_version)) {
		json_t *pre = json_object();
		if (o->uid)
			json_object_set_new(pre, "uid", json_string(o->uid));
		if (o->resource_version)
			json_object_set_new(pre, "resourceVersion", json_string(o->resource_version));
		json_object_set_new(opts, "preconditions", pre);
	}
	char *body = json_dumps(opts, JSON_COMPACT);
	json_decref(opts);
	kt_code rc = call(c, t, "delete", "DELETE", 1, NULL, NULL, "application/json", body,
	                  body ? strlen(body) : 0, 1, NULL, err);
	free(body);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Typed helpers */

kt_code kt_kube_namespace_uid(kt_kube *c, const char *ns, char **out, kt_error *err)
{
	char path[128];
	json_t *j = NULL;
	if (!kt_kube_valid_label(ns))
		return kt_error_set(err, KT_EUSAGE, "'%.100s' is not a valid namespace name",
		                    ns ? ns : "");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	kt_code rc = kt_kube_get(c, path, &j, err);
	if (rc)
		return rc;
	const char *uid = json_string_value(json_object_get(json_object_get(j, "metadata"), "uid"));
	if (!uid || !uid[0])
		rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: namespace '%s' has no "
		                  "metadata.uid", c->origin, ns);
	else
		*out = kt_xstrdup(uid);
	json_decref(j);
	return rc;
}

void kt_kube_secret_free(kt_kube_secret *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_items; i++) {
		free(s->items[i].key);
		kube_wipe_free(s->items[i].value, s->items[i].len);
	}
	free(s->items);
	free(s->namespace);
	free(s->name);
	free(s->type);
	free(s);
}

const kt_kube_secret_item *kt_kube_secret_find(const kt_kube_secret *s, const char *key)
{
	for (size_t i = 0; s && i < s->n_items; i++)
		if (!strcmp(s->items[i].key, key))
			return &s->items[i];
	return NULL;
}

kt_code kt_kube_get_secret(kt_kube *c, const char *ns, const char *name,
                           kt_kube_secret **out, kt_error *err)
{
	char path[400];
	json_t *j = NULL;
	if (!kt_kube_valid_label(ns))
		return kt_error_set(err, KT_EUSAGE, "'%.100s' is not a valid namespace name",
		                    ns ? ns : "");
	if (!kt_kube_valid_name(name))
		return kt_error_set(err, KT_EUSAGE, "'%.260s' is not a valid Secret name",
		                    name ? name : "");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	kt_code rc = kt_kube_get(c, path, &j, err);
	if (rc)
		return rc;

	kt_kube_secret *s = kt_xcalloc(1, sizeof(*s));
	s->namespace = kt_xstrdup(ns);
	s->name = kt_xstrdup(name);
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *type = json_string_value(json_object_get(j, "type"));
	s->type = kt_xstrdup(type ? type : "");
	json_t *data = json_object_get(j, "data");
	if (kind && strcmp(kind, "Secret")) {
		rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: GET %s answered a %.40s, not a "
		                  "Secret", c->origin, path, kind);
	} else if (data && !json_is_object(data) && !json_is_null(data)) {
		rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data is not an object", ns, name);
	} else if (json_is_object(data)) {
		size_t n = json_object_size(data), i = 0;
		const char *key;
		json_t *v;
		s->items = kt_xcalloc(n ? n : 1, sizeof(*s->items));
		json_object_foreach(data, key, v) {
			const char *b64 = json_string_value(v);
			kt_kube_secret_item *it = &s->items[i];
			if (!b64) {
				rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data.%.100s is not a string",
				                  ns, name, key);
				break;
			}
			if (kt_base64_decode(b64, json_string_length(v), &it->value, &it->len) != 0) {
				rc = kt_error_set(err, KT_EPROTO, "Secret %s/%s: data.%.100s is not valid "
				                  "base64", ns, name, key);
				break;
			}
			it->key = kt_xstrdup(key);
			s->n_items = ++i;
		}
	}
	json_decref(j);
	if (rc) {
		kt_kube_secret_free(s);
		return rc;
	}
	*out = s;
	return KT_OK;
}
