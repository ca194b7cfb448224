/*
 * staticpod_int.h - what staticpod.c (reading a static pod manifest) and
 * staticpod_rewrite.c (writing a changed copy) share: the event scan with
 * its ordinals, the flag reader and the scalar typing.  Never included
 * outside src/kube.
 */
#ifndef KT_STATICPOD_INT_H
#define KT_STATICPOD_INT_H

#include <stdarg.h>

#include <yaml.h>

#include "kube_int.h"

/* What Kubernetes makes of a scalar: a string, or something else. */
enum { T_STR, T_NULL, T_BOOL, T_NUM, T_TAGGED };

/* One flag on a command line (kube_sp_next_flag). */
typedef struct sp_flag {
	const char *name;   /* borrowed from the element, not NUL-terminated */
	size_t name_len;
	const char *value;  /* after '=', the next element, or "true" */
	size_t at;          /* argv index of the flag */
	size_t span;        /* 1, or 2 for "--flag value" */
} sp_flag;

/* The scan keeps, for each container, its strings and the event number
 * (ordinal: 1 for STREAM_START, counting every event) of each command or
 * args item and of each list's end, so that a second parse of the same
 * bytes can find them. */
typedef struct sp_item {
	char *s;
	size_t ordinal;      /* of its SCALAR event */
} sp_item;

typedef struct sp_list {
	int present;         /* given as a list (null or absent: 0) */
	size_t end_ordinal;  /* of its SEQUENCE_END event */
	sp_item *items;
	size_t n;
} sp_list;

typedef struct sp_container {
	char *name;          /* NULL if not given */
	char *image;
	yaml_mark_t mark;    /* where its mapping starts */
	sp_list cmd, args;
} sp_container;

typedef struct sp_frame {
	unsigned char role, is_map, want_key, key;
	unsigned seen;       /* map: known keys given so far (bit per key) */
	size_t index;        /* seq: items so far */
	size_t c;            /* container number (container, command, args) */
	yaml_mark_t mark;
} sp_frame;

typedef struct sp_scan {
	const char *what;    /* "static pod manifest" or "static pod manifest 'PATH'" */
	kt_error *err;
	sp_frame stack[KT_KUBE_MAX_DEPTH];
	int depth;
	size_t ordinal;      /* events so far */
	int docs, root_done;
	char *kind, *api;
	int has_containers;
	sp_container *c;
	size_t n_c;
} sp_scan;

/*
 * Fill err with code and "WHAT: line L column C: MESSAGE" (without the
 * position when m is NULL), return code.  Each file wraps it in a static
 * fail(s, code, m, fmt, ...).
 */
kt_code kube_sp_vfail(sp_scan *s, kt_code code, const yaml_mark_t *m, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));

/* The parser's error in s's words (KT_EPROTO, or KT_ENOMEM). */
kt_code kube_sp_yaml_fail(sp_scan *s, const yaml_parser_t *parser);

/* "static pod manifest" or "static pod manifest 'PATH'" into buf. */
char *kube_sp_what(char *buf, size_t n, const char *path);

/*
 * Scan data into s (what and err set, the rest zeroed) and pick the
 * container as kt_kube_staticpod_parse documents: its index in *ci.
 * Release s with kube_sp_release whatever the result.
 */
kt_code kube_sp_read(sp_scan *s, const char *data, size_t len, const char *container,
                     size_t *ci);
void kube_sp_release(sp_scan *s);

/* Move container c's strings into *out (c keeps none of them). */
void kube_sp_fill(kt_kube_staticpod *out, sp_container *c);

/* kt_kube_staticpod_parse with messages naming path (NULL: none). */
kt_code kube_sp_parse_named(kt_kube_staticpod *out, const char *data, size_t len,
                            const char *container, const char *path, kt_error *err);

/*
 * The next flag in argv[*pos..n) into *f, *pos moved past it (and its
 * value); 0 when there is none (kt_kube_staticpod_flag has the rules).
 */
int kube_sp_next_flag(char *const *argv, size_t n, size_t *pos, sp_flag *f);

/* The value of the last flag name[0..len) in argv[first..n), or NULL. */
const char *kube_sp_lookup(char *const *argv, size_t n, size_t first, const char *name,
                           size_t len);

/* 1 if s[0..n) is a flag name we accept from a caller: a letter, then
 * letters, digits and "-_.". */
int kube_sp_valid_name(const char *s, size_t n);

/* T_STR, T_NULL, T_BOOL or T_NUM: what an untagged plain scalar s[0..n)
 * resolves to under YAML 1.1 (sigs.k8s.io/yaml, which kubelet uses). */
int kube_sp_plain_type(const char *s, size_t n);

#endif
