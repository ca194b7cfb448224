/*
 * watch.c - watch a collection: GET ?watch=1 and read the stream of
 * newline-separated JSON events one at a time.
 *
 * Invariants:
 *   1. Memory holds one event: bytes are gathered until a newline, at most
 *      max_event of them (KT_ELIMIT past it), parsed, handed over, freed.
 *   2. Once an event reached the caller the watch is never retried
 *      silently (the caller would see events twice or miss some); before
 *      that, starting it is retried like any GET.
 *   3. An ERROR event ends the watch with an error naming the collection;
 *      410 (Expired/Gone) says to list again.
 */
#include <stdlib.h>
#include <string.h>

#include "kube_int.h"

#define DEFAULT_TIMEOUT_S 300u

typedef struct wctx {
	kt_kube *c;
	const kt_kube_target *t;
	kt_kube_event_fn fn;
	void *ctx;
	kt_buf line;
	int streamed;
	int stopped;
	char *last_rv;
} wctx;

static kt_code event(wctx *w, kt_error *err)
{
	json_error_t je;
	json_t *ev = json_loadb(w->line.data, w->line.len, 0, &je);
	kt_code rc = KT_OK;
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	if (!json_is_object(ev) || !type || !json_is_object(obj)) {
		rc = kt_error_set(err, KT_EPROTO, "kube-apiserver %s: watch of %s sent an event that is "
		                  "not {type, object}: %.100s", w->c->origin, w->t->resource,
		                  json_is_object(ev) ? "fields missing" : je.text);
	} else if (!strcmp(type, "ERROR")) {
		long code = (long)json_integer_value(json_object_get(obj, "code"));
		const char *msg = json_string_value(json_object_get(obj, "message"));
		const char *reason = json_string_value(json_object_get(obj, "reason"));
		rc = kt_error_set(err, code == 410 ? KT_EREMOTE : code >= 500 ? KT_ETRANSIENT
		                                                              : KT_EREMOTE,
		                  "cannot watch %s%s%.63s: %ld (%.60s): %.200s%s", w->t->resource,
		                  w->t->namespace ? " in namespace " : "",
		                  w->t->namespace ? w->t->namespace : "", code, reason ? reason : "",
		                  msg ? msg : "no message",
		                  code == 410 ? " (the resourceVersion is too old: list again and watch "
		                                "from the list's resourceVersion)" : "");
		if (err)
			err->status = code;
	} else {
		const char *rv = json_string_value(
			json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
		if (rv && w->last_rv)
			snprintf(w->last_rv, 128, "%s", rv);
		w->streamed = 1;
		int stop = 0;
		rc = w->fn(w->ctx, type, obj, &stop, err);
		if (rc == KT_OK && stop) {
			w->stopped = 1;
			rc = kt_error_set(err, KT_ECANCELED, "watch stopped by the caller");
		}
	}
	json_decref(ev);
	return rc;
}

static kt_code on_stream(void *ctx, const uint8_t *data, size_t n, kt_error *err)
{
	wctx *w = ctx;
	while (n) {
		const uint8_t *nl = memchr(data, '\n', n);
		size_t take = nl ? (size_t)(nl - data) : n;
		if (w->line.len + take > w->line.max)
			return kt_error_set(err, KT_ELIMIT, "kube-apiserver %s: a watch event of %s is "
			                    "larger than %zu bytes", w->c->origin, w->t->resource,
			                    w->line.max);
		kt_code rc = kt_buf_add(&w->line, data, take, err);
		if (rc)
			return rc;
		data += take;
		n -= take;
		if (!nl)
			break;
		data++;
		n--;
		if (w->line.len) {
			rc = event(w, err);
			explicit_bzero(w->line.data, w->line.len);
			kt_buf_reset(&w->line);
			if (rc)
				return rc;
		}
	}
	return KT_OK;
}

kt_code kt_kube_watch(kt_kube *c, const kt_kube_target *t, const kt_kube_watch_opts *o,
                      kt_kube_event_fn fn, void *ctx, char *last_rv, kt_error *err)
{
	kt_kube_target wt = *t;
	wt.name = NULL;
	kt_buf path;
	kt_buf_init(&path, KT_BUF_UNLIMITED);
	kt_code rc = kube_target_path(&wt, 0, &path, err);
	if (rc) {
		kt_buf_release(&path);
		return rc;
	}
	unsigned timeout_s = o && o->timeout_s ? o->timeout_s : DEFAULT_TIMEOUT_S;
	char tbuf[16];
	snprintf(tbuf, sizeof(tbuf), "%u", timeout_s);
	kube_query_add(&path, "watch", "1");
	kube_query_add(&path, "timeoutSeconds", tbuf);
	if (o && o->bookmarks)
		kube_query_add(&path, "allowWatchBookmarks", "true");
	if (o && o->resource_version && o->resource_version[0])
		kube_query_add(&path, "resourceVersion", o->resource_version);
	if (o && o->label_selector && o->label_selector[0])
		kube_query_add(&path, "labelSelector", o->label_selector);
	if (o && o->field_selector && o->field_selector[0])
		kube_query_add(&path, "fieldSelector", o->field_selector);

	wctx w = { .c = c, .t = &wt, .fn = fn, .ctx = ctx, .last_rv = last_rv };
	size_t max = o && o->max_event ? o->max_event : c->opts.max_response;
	kt_buf_init(&w.line, max);
	if (last_rv)
		last_rv[0] = '\0';
	kube_call k = { .verb = "watch", .t = &wt, .method = "GET", .path = path.data,
	                .idempotent = 1, .stream = on_stream, .stream_ctx = &w,
	                .streamed = &w.streamed,
	                .timeout_ms = ((int64_t)timeout_s + 30) * 1000 };
	rc = kube_do(c, &k, NULL, NULL, err);
	if (w.stopped)
		rc = KT_OK;
	else if (rc == KT_OK && w.line.len)
		rc = on_stream(&w, (const uint8_t *)"\n", 1, err); /* last event without newline */
	if (w.stopped)
		rc = KT_OK;
	explicit_bzero(w.line.data, w.line.len);
	kt_buf_release(&w.line);
	kt_buf_release(&path);
	return rc;
}
