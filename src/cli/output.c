/*
 * output.c - data output in the three formats every data command offers:
 * an aligned table for people, JSON and YAML for programs.
 *
 * Data is always built as a jansson value first, so the three formats carry
 * the same fields.  YAML goes through libyaml's emitter, which handles
 * quoting.
 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli.h"

static char *cell_text(json_t *v)
{
	char tmp[64];
	if (!v || json_is_null(v))
		return kt_xstrdup("-");
	if (json_is_string(v))
		return kt_xstrdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(v));
		return kt_xstrdup(tmp);
	}
	if (json_is_true(v))
		return kt_xstrdup("yes");
	if (json_is_false(v))
		return kt_xstrdup("no");
	if (json_is_real(v)) {
		snprintf(tmp, sizeof(tmp), "%g", json_real_value(v));
		return kt_xstrdup(tmp);
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return s ? s : kt_xstrdup("?");
}

/* Rows as a table; the widths grow to fit (width: n_cols, kept by the
 * caller across batches); the header when header is set. */
static void print_rows(json_t *rows, const kt_column *cols, size_t n_cols, size_t *width,
                       int header)
{
	size_t n_rows = json_array_size(rows);
	char **cells = kt_xcalloc(n_rows * n_cols + 1, sizeof(char *));
	for (size_t c = 0; c < n_cols; c++)
		if (strlen(cols[c].header) > width[c])
			width[c] = strlen(cols[c].header);
	for (size_t r = 0; r < n_rows; r++)
		for (size_t c = 0; c < n_cols; c++) {
			char *s = cell_text(json_object_get(json_array_get(rows, r), cols[c].key));
			cells[r * n_cols + c] = s;
			if (strlen(s) > width[c])
				width[c] = strlen(s);
		}
	for (size_t c = 0; header && c < n_cols; c++)
		printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, cols[c].header,
		       c + 1 < n_cols ? "  " : "\n");
	for (size_t r = 0; r < n_rows; r++)
		for (size_t c = 0; c < n_cols; c++)
			printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, cells[r * n_cols + c],
			       c + 1 < n_cols ? "  " : "\n");
	for (size_t i = 0; i < n_rows * n_cols; i++)
		free(cells[i]);
	free(cells);
}

static void print_table(json_t *rows, const kt_column *cols, size_t n_cols)
{
	size_t *width = kt_xcalloc(n_cols, sizeof(size_t));
	print_rows(rows, cols, n_cols, width, 1);
	free(width);
}

/* ---- long lists, printed in batches ---- */

#define STREAM_BATCH 1024

static void stream_flush(kt_cli_stream *st)
{
	size_t n = json_array_size(st->rows);
	if (!n)
		return;
	if (st->fmt == KT_OUT_JSON) {
		for (size_t i = 0; i < n; i++) {
			/* One row as the whole array prints it: "[\n" + row + "\n]". */
			json_t *one = json_array();
			json_array_append(one, json_array_get(st->rows, i));
			char *t = json_dumps(one, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			json_decref(one);
			if (t && strlen(t) > 4) {
				t[strlen(t) - 2] = '\0';
				printf("%s%s", st->started ? ",\n" : "[\n", t + 2);
				st->started = 1;
			}
			free(t);
		}
	} else if (st->fmt == KT_OUT_YAML) {
		kt_cli_print_yaml(st->rows);   /* block sequences: batches concatenate */
		st->started = 1;
	} else {
		print_rows(st->rows, st->cols, st->n_cols, st->width, !st->started);
		st->started = 1;
	}
	json_array_clear(st->rows);
	fflush(stdout);
}

void kt_cli_stream_init(kt_cli_stream *st, kt_out_format fmt, const kt_column *columns,
                        size_t n_columns)
{
	memset(st, 0, sizeof(*st));
	st->fmt = fmt;
	st->cols = columns;
	st->n_cols = n_columns;
	st->rows = json_array();
	st->width = kt_xcalloc(n_columns ? n_columns : 1, sizeof(size_t));
}

void kt_cli_stream_add(kt_cli_stream *st, json_t *row)
{
	json_array_append_new(st->rows, row);
	if (json_array_size(st->rows) >= STREAM_BATCH)
		stream_flush(st);
}

void kt_cli_stream_end(kt_cli_stream *st, int print)
{
	if (print) {
		stream_flush(st);
		if (st->fmt == KT_OUT_JSON)
			printf(st->started ? "\n]\n" : "[]\n");
		else if (st->fmt == KT_OUT_YAML && !st->started)
			printf("[]\n");
		else if (!st->started)
			print_rows(st->rows, st->cols, st->n_cols, st->width, 1);
	}
	json_decref(st->rows);
	free(st->width);
	memset(st, 0, sizeof(*st));
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev)
{
	return yaml_emitter_emit(e, ev);
}

static int emit_scalar(yaml_emitter_t *e, const char *s, int plain_ok)
{
	yaml_event_t ev;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s),
	                             plain_ok, !plain_ok,
	                             plain_ok ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	return emit(e, &ev);
}

static int emit_value(yaml_emitter_t *e, json_t *v)
{
	yaml_event_t ev;
	if (json_is_object(v)) {
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (!emit(e, &ev))
			return 0;
		const char *k;
		json_t *child;
		json_object_foreach(v, k, child) {
			if (!emit_scalar(e, k, 1) || !emit_value(e, child))
				return 0;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(e, &ev);
	}
	if (json_is_array(v)) {
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (!emit(e, &ev))
			return 0;
		size_t i;
		json_t *child;
		json_array_foreach(v, i, child) {
			if (!emit_value(e, child))
				return 0;
		}
		yaml_sequence_end_event_initialize(&ev);
		return emit(e, &ev);
	}
	if (json_is_string(v)) {
		/* Quote strings that would read back as another type. */
		const char *s = json_string_value(v);
		char *end;
		int looks_other = !*s || strtod(s, &end) != 0 || end != s ||
		                  !strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "null") ||
		                  !strcmp(s, "yes") || !strcmp(s, "no") || !strcmp(s, "~");
		return emit_scalar(e, s, !looks_other);
	}
	char *s = cell_text(v);
	if (json_is_null(v)) {
		free(s);
		s = kt_xstrdup("null");
	} else if (json_is_boolean(v)) {
		free(s);
		s = kt_xstrdup(json_is_true(v) ? "true" : "false");
	}
	int ok = emit_scalar(e, s, 1);
	free(s);
	return ok;
}

void kt_cli_print_yaml(json_t *data)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	yaml_emitter_initialize(&e);
	yaml_emitter_set_output_file(&e, stdout);
	yaml_emitter_set_unicode(&e, 1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	int ok = emit(&e, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	ok = ok && emit(&e, &ev) && emit_value(&e, data);
	yaml_document_end_event_initialize(&ev, 1);
	ok = ok && emit(&e, &ev);
	yaml_stream_end_event_initialize(&ev);
	ok = ok && emit(&e, &ev);
	if (!ok)
		fprintf(stderr, "kontinuity: cannot write YAML: %s\n",
		        e.problem ? e.problem : "emitter error");
	yaml_emitter_delete(&e);
	fflush(stdout);
}

void kt_cli_print(json_t *data, kt_out_format fmt, const kt_column *columns, size_t n_columns)
{
	if (fmt == KT_OUT_JSON) {
		char *s = json_dumps(data, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		if (s) {
			printf("%s\n", s);
			free(s);
		}
		return;
	}
	if (fmt == KT_OUT_YAML) {
		kt_cli_print_yaml(data);
		return;
	}
	if (json_is_array(data)) {
		print_table(data, columns, n_columns);
	} else {
		json_t *rows = json_array();
		json_array_append(rows, data);
		print_table(rows, columns, n_columns);
		json_decref(rows);
	}
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
	if (!n || (n == 2 && p[0] < 0xC2) || p[0] > 0xF4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

json_t *kt_cli_json_text(const char *s)
{
	kt_buf b;
	kt_buf_init(&b, KT_BUF_UNLIMITED);
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = utf8_len(p);
		if (n == 1 && (*p < 0x20 || *p == 0x7f))
			n = 0;
		if (n) {
			kt_buf_add(&b, p, n, NULL);
			p += n;
		} else {
			kt_buf_addf(&b, NULL, "\\x%02x", *p);
			p++;
		}
	}
	json_t *j = json_stringn(b.data, b.len);
	kt_buf_release(&b);
	return j ? j : json_string("?");
}

void kt_cli_print_list(json_t *rows, kt_out_format fmt, const kt_column *columns,
                       size_t n_columns, const char *what, const char *ns)
{
	if (fmt == KT_OUT_TABLE && json_array_size(rows) == 0)
		fprintf(stderr, "no %s%s%s\n", what, ns ? " in namespace " : "", ns ? ns : "");
	else
		kt_cli_print(rows, fmt, columns, n_columns);
}
