/*
 * staticpod_rewrite.c - write a copy of a static pod manifest with flags
 * taken out of and added to one container's command line (what `etcd
 * recover` runs etcd with), everything else kept.
 *
 * How: scan the manifest (staticpod.c), pick the container, decide which
 * event ordinals to drop (the removed flags and their values) and before
 * which ordinal to insert the new flags (the end of args, or of command),
 * then parse the same bytes again and hand every other event to libyaml's
 * emitter.  Then scan the output and check that it reads back as intended.
 *
 * Invariants:
 *   1. The same bytes give the same events, so an ordinal found by the
 *      scan names the same event in the second pass.
 *   2. A rewrite is returned only if scanning its output gives the
 *      expected argv, every added flag reads with its value and no kept
 *      flag changed value.
 *   3. Values keep their meaning, not their spelling: comments and the
 *      original layout are lost (the emitter writes its own), a plain
 *      string may come out quoted, an empty plain value as ~.  Rewriting
 *      the output again with the same lists gives the same bytes.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "staticpod_int.h"

static kt_code fail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static kt_code fail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kt_code rc = kube_sp_vfail(s, code, m, fmt, ap);
	va_end(ap);
	return rc;
}

typedef struct out_ctx {
	kt_buf *b;
	int full;
} out_ctx;

static int write_out(void *data, unsigned char *buf, size_t size)
{
	out_ctx *o = data;
	kt_error e;
	if (kt_buf_add(o->b, buf, size, &e) != KT_OK) {
		o->full = 1;
		return 0;
	}
	return 1;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct plan {
	size_t *drop;        /* ordinals of scalars to leave out, sorted */
	size_t n_drop;
	size_t insert_at;    /* ordinal of the SEQUENCE_END before which adds go */
	const char *const *add;
	size_t n_add;
} plan;

/*
 * Drop the non-specific tag "!": on a scalar it means "a string", which an
 * untagged quoted scalar says too; on a collection it says nothing.  (The
 * emitter writes "!" on an empty scalar as "!<%21> ''", which reads back
 * as "!" and is then written as "! ''": without this, rewriting twice
 * would not give the same text.)
 */
static int drop_bang(yaml_event_t *ev)
{
	yaml_event_t n;
	yaml_scalar_style_t style;
	int ok = 1;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (!ev->data.scalar.tag || strcmp((const char *)ev->data.scalar.tag, "!"))
			return 1;
		style = ev->data.scalar.style;
		if (style == YAML_PLAIN_SCALAR_STYLE)
			style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
		ok = yaml_scalar_event_initialize(&n, ev->data.scalar.anchor, NULL,
		                                  ev->data.scalar.value, (int)ev->data.scalar.length,
		                                  0, 1, style);
		break;
	case YAML_SEQUENCE_START_EVENT:
		if (!ev->data.sequence_start.tag ||
		    strcmp((const char *)ev->data.sequence_start.tag, "!"))
			return 1;
		ok = yaml_sequence_start_event_initialize(&n, ev->data.sequence_start.anchor, NULL, 1,
		                                          ev->data.sequence_start.style);
		break;
	case YAML_MAPPING_START_EVENT:
		if (!ev->data.mapping_start.tag || strcmp((const char *)ev->data.mapping_start.tag, "!"))
			return 1;
		ok = yaml_mapping_start_event_initialize(&n, ev->data.mapping_start.anchor, NULL, 1,
		                                         ev->data.mapping_start.style);
		break;
	default:
		return 1;
	}
	if (!ok)
		return 0;
	yaml_event_delete(ev);
	*ev = n;
	return 1;
}

/*
 * Keep untagged plain scalars meaning what they meant when the emitter
 * chooses another style: an empty one (null) becomes "~" so that it is not
 * written as a tagged '' in flow context; a string may be quoted without a
 * tag.  (A plain scalar that resolves to a bool or number is always
 * writable plain, so it is never quoted.)
 */
static int fix_scalar(yaml_event_t *ev)
{
	if (ev->data.scalar.tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 1;
	if (ev->data.scalar.length == 0) {
		yaml_event_t n;
		if (!yaml_scalar_event_initialize(&n, ev->data.scalar.anchor, NULL,
		                                  (yaml_char_t *)"~", 1, 1, 0,
		                                  YAML_PLAIN_SCALAR_STYLE))
			return 0;
		yaml_event_delete(ev);
		*ev = n;
		return 1;
	}
	if (kube_sp_plain_type((const char *)ev->data.scalar.value, ev->data.scalar.length) == T_STR)
		ev->data.scalar.quoted_implicit = 1;
	return 1;
}

static kt_code emit(sp_scan *s, const char *data, size_t len, const plan *pl, kt_buf *b)
{
	yaml_parser_t parser;
	yaml_emitter_t em;
	yaml_event_t ev;
	out_ctx o = { .b = b };
	kt_code rc = KT_OK;
	size_t ordinal = 0, di = 0;
	int refused = 0; /* the emitter failed: em.problem says why */

	if (!yaml_parser_initialize(&parser))
		return fail(s, KT_ENOMEM, NULL, "out of memory starting the YAML parser");
	if (!yaml_emitter_initialize(&em)) {
		yaml_parser_delete(&parser);
		return fail(s, KT_ENOMEM, NULL, "out of memory starting the YAML emitter");
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	yaml_emitter_set_output(&em, write_out, &o);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1); /* never fold a long --initial-cluster */
	yaml_emitter_set_break(&em, YAML_LN_BREAK);

	while (rc == KT_OK && !refused) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = kube_sp_yaml_fail(s, &parser);
			break;
		}
		ordinal++;
		int last = ev.type == YAML_STREAM_END_EVENT;
		if (di < pl->n_drop && pl->drop[di] == ordinal) {
			di++;
			yaml_event_delete(&ev);
			continue;
		}
		for (size_t i = 0; ordinal == pl->insert_at && i < pl->n_add && !rc && !refused; i++) {
			yaml_event_t a;
			const char *v = pl->add[i];
			int plain = kube_sp_plain_type(v, strlen(v)) == T_STR;
			if (!yaml_scalar_event_initialize(&a, NULL, NULL, (yaml_char_t *)v,
			                                  (int)strlen(v), plain, 1, YAML_ANY_SCALAR_STYLE))
				rc = fail(s, KT_ENOMEM, NULL, "out of memory");
			else if (!yaml_emitter_emit(&em, &a))
				refused = 1;
		}
		if (ev.type == YAML_STREAM_START_EVENT)
			ev.data.stream_start.encoding = YAML_UTF8_ENCODING; /* even from UTF-16 */
		if (rc == KT_OK && (!drop_bang(&ev) ||
		                    (ev.type == YAML_SCALAR_EVENT && !fix_scalar(&ev))))
			rc = fail(s, KT_ENOMEM, NULL, "out of memory");
		if (rc || refused) {
			yaml_event_delete(&ev);
			break;
		}
		if (!yaml_emitter_emit(&em, &ev)) /* takes ev, even on failure */
			refused = 1;
		if (last)
			break;
	}
	if (rc == KT_OK && !refused && !yaml_emitter_flush(&em))
		refused = 1;
	if (rc == KT_OK && refused && o.full)
		rc = fail(s, KT_ELIMIT, NULL, "the rewritten manifest would be more than the %u bytes "
		          "allowed", KT_KUBE_STATICPOD_MAX);
	else if (rc == KT_OK && refused)
		rc = fail(s, em.error == YAML_MEMORY_ERROR ? KT_ENOMEM : KT_EPROTO, NULL,
		          "cannot write the rewritten manifest: %s",
		          em.problem ? em.problem : "YAML emitter error");
	yaml_emitter_delete(&em);
	yaml_parser_delete(&parser);
	return rc;
}

/* Split a remove entry "[--]name[=value]"; 0 if malformed. */
static int split_remove(const char *r, const char **name, size_t *n, const char **value)
{
	if (r[0] == '-')
		r += r[1] == '-' ? 2 : 1;
	const char *eq = strchr(r, '=');
	*name = r;
	*n = eq ? (size_t)(eq - r) : strlen(r);
	*value = eq ? eq + 1 : NULL;
	return kube_sp_valid_name(r, *n);
}

/* Check the caller's lists before reading anything. */
static kt_code check_lists(sp_scan *s, const char *const *add, size_t *n_add,
                           const char *const *remove)
{
	*n_add = 0;
	for (size_t i = 0; add && add[i]; i++) {
		const char *a = add[i];
		const char *nm = a[0] != '-' ? a : a + (a[1] == '-' ? 2 : 1);
		size_t nl = strcspn(nm, "=");
		if (a[0] != '-' || !kube_sp_valid_name(nm, nl))
			return kt_error_set(s->err, KT_EUSAGE, "cannot add '%.100s' to the manifest: not "
			                    "a flag (--name or --name=value)", a);
		if (strlen(a) > KT_KUBE_STATICPOD_MAX_ARG)
			return kt_error_set(s->err, KT_EUSAGE, "cannot add --%.*s: %zu bytes, more than "
			                    "the %u allowed", (int)(nl > 100 ? 100 : nl), nm, strlen(a),
			                    KT_KUBE_STATICPOD_MAX_ARG);
		if (i >= KT_KUBE_STATICPOD_MAX_ARGS)
			return kt_error_set(s->err, KT_EUSAGE, "cannot add more than %d flags",
			                    KT_KUBE_STATICPOD_MAX_ARGS);
		(*n_add)++;
	}
	for (size_t i = 0; remove && remove[i]; i++) {
		const char *nm, *v;
		size_t nl;
		if (!split_remove(remove[i], &nm, &nl, &v))
			return kt_error_set(s->err, KT_EUSAGE, "cannot remove '%.100s' from the manifest: "
			                    "not a flag name", remove[i]);
	}
	return KT_OK;
}

static int removed(const sp_flag *f, const char *const *remove)
{
	for (size_t i = 0; remove && remove[i]; i++) {
		const char *nm, *v;
		size_t nl;
		split_remove(remove[i], &nm, &nl, &v);
		if (nl == f->name_len && !memcmp(nm, f->name, nl) && (!v || !strcmp(v, f->value)))
			return 1;
	}
	return 0;
}

static int named_in(const char *name, size_t n, const char *const *list, int is_add)
{
	for (size_t i = 0; list && list[i]; i++) {
		const char *nm, *v;
		size_t nl;
		if (is_add) {
			nm = list[i] + (list[i][1] == '-' ? 2 : 1);
			nl = strcspn(nm, "=");
		} else {
			split_remove(list[i], &nm, &nl, &v);
		}
		if (nl == n && !memcmp(nm, name, n))
			return 1;
	}
	return 0;
}

/*
 * Scan the rewritten text and check what invariant 2 promises: argv is
 * want[0..n_want), every added flag reads as given (the last one of a name
 * wins), every flag of the original neither removed nor added reads as
 * before.
 */
static kt_code verify(sp_scan *s, const char *text, size_t len, const char *container,
                      const kt_kube_staticpod *orig, char *const *want, size_t n_want,
                      const char *const *add, const char *const *remove)
{
	kt_kube_staticpod p;
	kt_error e;
	kt_code rc = kube_sp_parse_named(&p, text, len, container, NULL, &e);
	if (rc) {
		return fail(s, KT_EPROTO, NULL, "the rewritten manifest does not read back (%s); "
		            "this is a bug in kontinuity", e.msg);
	}
	int same = p.n_argv == n_want;
	for (size_t i = 0; same && i < n_want; i++)
		same = !strcmp(p.argv[i], want[i]);
	if (!same) {
		kt_kube_staticpod_release(&p);
		return fail(s, KT_EPROTO, NULL, "the rewritten manifest does not read back with the "
		            "expected command; this is a bug in kontinuity");
	}
	for (size_t i = 0; add && add[i]; i++) {
		const char *nm = add[i] + (add[i][1] == '-' ? 2 : 1);
		size_t nl = strcspn(nm, "=");
		int later = 0;
		for (size_t j = i + 1; add[j] && !later; j++) {
			const char *n2 = add[j] + (add[j][1] == '-' ? 2 : 1);
			later = strcspn(n2, "=") == nl && !memcmp(n2, nm, nl);
		}
		if (later)
			continue;
		const char *v = kube_sp_lookup(p.argv, p.n_argv, p.first_flag, nm, nl);
		const char *expect = nm[nl] == '=' ? nm + nl + 1 : "true";
		if (!v || strcmp(v, expect)) {
			kt_kube_staticpod_release(&p);
			return fail(s, KT_EPROTO, NULL, "cannot add %.*s: etcd would not read it (its "
			            "command line ends flag parsing with '--' before the end)",
			            (int)(strlen(add[i]) > 100 ? 100 : strlen(add[i])), add[i]);
		}
	}
	size_t pos = orig->first_flag;
	sp_flag f;
	while (rc == KT_OK && kube_sp_next_flag(orig->argv, orig->n_argv, &pos, &f)) {
		if (named_in(f.name, f.name_len, remove, 0) || named_in(f.name, f.name_len, add, 1))
			continue;
		const char *before = kube_sp_lookup(orig->argv, orig->n_argv, orig->first_flag, f.name,
		                                    f.name_len);
		const char *after = kube_sp_lookup(p.argv, p.n_argv, p.first_flag, f.name, f.name_len);
		if (!after || strcmp(before, after))
			rc = fail(s, KT_EPROTO, NULL, "removing flags would change the value etcd reads "
			          "for --%.*s (a stray argument follows a flag without '='; write "
			          "--flag=value in the manifest)", (int)(f.name_len > 100 ? 100 :
			          f.name_len), f.name);
	}
	kt_kube_staticpod_release(&p);
	return rc;
}

kt_code kt_kube_staticpod_rewrite(const char *data, size_t len, const char *container,
                                  const char *const *add, const char *const *remove, kt_buf *out,
                                  kt_error *err)
{
	char what[32];
	sp_scan s = { .what = kube_sp_what(what, sizeof(what), NULL), .err = err };
	kt_kube_staticpod orig = { 0 };
	plan pl = { .add = add };
	char **want = NULL;
	size_t ci, n_want = 0;
	kt_buf b;

	kt_buf_init(&b, KT_KUBE_STATICPOD_MAX);
	kt_code rc = check_lists(&s, add, &pl.n_add, remove);
	if (rc == KT_OK)
		rc = kube_sp_read(&s, data, len, container, &ci);
	if (rc)
		goto out;

	/* Ordinals of argv[i], then which elements go. */
	sp_container *c = &s.c[ci];
	size_t n = c->cmd.n + c->args.n;
	size_t *ord = kt_xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		ord[i] = i < c->cmd.n ? c->cmd.items[i].ordinal : c->args.items[i - c->cmd.n].ordinal;
	/* Added flags go last so they win (the last occurrence of a flag does):
	 * at the end of args when it has entries, else at the end of command. */
	pl.insert_at = c->args.n ? c->args.end_ordinal : c->cmd.end_ordinal;
	kube_sp_fill(&orig, c);
	char *dropped = kt_xcalloc(n + 1, 1);
	size_t pos = orig.first_flag;
	sp_flag f;
	while (kube_sp_next_flag(orig.argv, n, &pos, &f))
		if (removed(&f, remove))
			for (size_t k = 0; k < f.span; k++)
				dropped[f.at + k] = 1;
	pl.drop = kt_xcalloc(n + 1, sizeof(size_t));
	want = kt_xcalloc(n + pl.n_add + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if (dropped[i])
			pl.drop[pl.n_drop++] = ord[i];
		else
			want[n_want++] = orig.argv[i];
	}
	for (size_t i = 0; i < pl.n_add; i++)
		want[n_want++] = (char *)add[i];
	free(dropped);
	free(ord);
	qsort(pl.drop, pl.n_drop, sizeof(size_t), cmp_size);
	if (n_want > KT_KUBE_STATICPOD_MAX_ARGS) {
		rc = fail(&s, KT_ELIMIT, NULL, "the rewritten command would have %zu entries, more "
		          "than the %d allowed", n_want, KT_KUBE_STATICPOD_MAX_ARGS);
		goto out;
	}

	rc = emit(&s, data, len, &pl, &b);
	if (rc == KT_OK)
		rc = verify(&s, b.data, b.len, orig.container[0] ? orig.container : NULL, &orig, want,
		            n_want, add, remove);
	if (rc == KT_OK)
		rc = kt_buf_add(out, b.data, b.len, err);
out:
	free(want);
	free(pl.drop);
	kt_kube_staticpod_release(&orig);
	kube_sp_release(&s);
	kt_buf_release(&b);
	return rc;
}
