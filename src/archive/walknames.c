/*
 * walknames.c - the names a backup walks: the given paths as a trie of
 * their components (so the snapshot holds each under its absolute path and
 * the directories above them once), and a directory's names read and
 * sorted bytewise in one arena (name length + 9 bytes each: what stays
 * linear in a directory's size, docs/index-memory.md).
 */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_int.h"


static int by_off(const void *x, const void *y, void *base)
{
	return strcmp((const char *)base + *(const size_t *)x, (const char *)base + *(const size_t *)y);
}

void kt_archive_dirnames_read(DIR *d, kt_archive_dirnames *v)
{
	memset(v, 0, sizeof(*v));
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		size_t n = strlen(de->d_name) + 1;
		if (v->len + n > v->cap) {
			v->cap = v->cap ? v->cap * 2 : 4096;
			while (v->len + n > v->cap)
				v->cap *= 2;
			v->buf = realloc(v->buf, v->cap);
			if (!v->buf)
				abort();
		}
		if (v->n == v->cap_off) {
			v->cap_off = v->cap_off ? v->cap_off * 2 : 64;
			v->off = realloc(v->off, v->cap_off * sizeof(*v->off));
			if (!v->off)
				abort();
		}
		memcpy(v->buf + v->len, de->d_name, n);
		v->off[v->n++] = v->len;
		v->len += n;
	}
	if (v->n)
		qsort_r(v->off, v->n, sizeof(*v->off), by_off, v->buf);
}


void kt_archive_dirnames_release(kt_archive_dirnames *v)
{
	free(v->buf);
	free(v->off);
	memset(v, 0, sizeof(*v));
}

typedef kt_archive_trie trie;

void kt_archive_trie_release(trie *t)
{
	for (size_t i = 0; i < t->n; i++)
		kt_archive_trie_release(&t->kids[i]);
	free(t->kids);
	free(t->name);
}

static trie *trie_child(trie *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->kids[i].name) == len && !memcmp(t->kids[i].name, name, len))
			return &t->kids[i];
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4;
		t->kids = realloc(t->kids, t->cap * sizeof(trie));
		if (!t->kids)
			abort();
	}
	trie *k = &t->kids[t->n++];
	memset(k, 0, sizeof(*k));
	k->name = strndup(name, len);
	return k;
}

static int by_trie_name(const void *x, const void *y)
{
	return strcmp(((const trie *)x)->name, ((const trie *)y)->name);
}

void kt_archive_trie_sort(trie *t)
{
	if (t->n > 1)
		qsort(t->kids, t->n, sizeof(*t->kids), by_trie_name);
}

kt_code kt_archive_trie_add(trie *root, const char *path, char **norm, kt_error *err)
{
	char abs[PATH_MAX];
	if (path[0] == '/') {
		if ((size_t)snprintf(abs, sizeof(abs), "%s", path) >= sizeof(abs))
			return kt_error_set(err, KT_ELIMIT, "path too long: '%s'", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= sizeof(abs))
			return kt_error_set(err, KT_ELIMIT, "path too long: '%s'", path);
	}
	trie *t = root;
	const char *p = abs;
	char out[PATH_MAX];
	size_t n_out = 0;
	int any = 0;
	while (*p) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (!len)
			break;
		if (len == 1 && p[0] == '.') {   /* "./d" or "d/.": the same place */
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return kt_error_set(err, KT_EUSAGE, "give '%s' without '..'", path);
		t = trie_child(t, p, len);
		out[n_out++] = '/';   /* fits: abs has at least as many bytes */
		memcpy(out + n_out, p, len);
		n_out += len;
		p += len;
		any = 1;
	}
	if (!any)
		return kt_error_set(err, KT_EUSAGE, "cannot back up '/' as a whole; name directories");
	out[n_out] = '\0';
	t->target = 1;
	*norm = kt_xstrdup(out);
	return KT_OK;
}

