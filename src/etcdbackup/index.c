/*
 * index.c - what the backup directory holds.
 *
 * Backup names carry node, instance and time:
 *   etcd_backup_<hostname>_<instance-id>_<YYYYMMDDTHHMMSSZ>.db
 * parsed from the right (the instance id and the time have no '_').  The
 * index etcd-backups.json records what a name cannot: revision, sha256,
 * size, verified, exported.  It is rewritten whole through a temp file and
 * rename, so a crash leaves the old or the new index, never half of one; a
 * missing or unreadable index only loses those columns, never a backup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etcdbackup.h"
#include "etcdbackup_int.h"

#define INDEX_MAX (16u << 20)

int kt_backup_parse_name(const char *name, char **node, char **instance, char time_out[32])
{
	static const char prefix[] = "etcd_backup_";
	size_t len = strlen(name), plen = sizeof(prefix) - 1;
	if (len < plen + 1 + 1 + 1 + 16 + 3 || strncmp(name, prefix, plen) ||
	    strcmp(name + len - 3, ".db"))
		return 0;
	const char *ts = name + len - 3 - 16;   /* YYYYMMDDTHHMMSSZ */
	if (ts[-1] != '_' || ts[8] != 'T' || ts[15] != 'Z')
		return 0;
	for (int i = 0; i < 15; i++)
		if (i != 8 && (ts[i] < '0' || ts[i] > '9'))
			return 0;
	const char *inst_end = ts - 1;
	const char *inst = inst_end;
	while (inst > name + plen && inst[-1] != '_')
		inst--;
	if (inst == inst_end || inst - 1 <= name + plen)
		return 0;
	if (node)
		*node = strndup(name + plen, (size_t)(inst - 1 - (name + plen)));
	if (instance)
		*instance = strndup(inst, (size_t)(inst_end - inst));
	snprintf(time_out, 32, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", ts, ts + 4, ts + 6, ts + 9,
	         ts + 11, ts + 13);
	return 1;
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = kt_xmalloc(a + b + 2);
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

json_t *kt_backup_index_load(const char *dir)
{
	char *path = join(dir, KT_BACKUP_INDEX);
	json_error_t jerr;
	struct stat st;
	json_t *idx = NULL;
	if (stat(path, &st) == 0 && st.st_size < (off_t)INDEX_MAX)
		idx = json_load_file(path, 0, &jerr);
	if (stat(path, &st) == 0 && (!idx || !json_is_object(json_object_get(idx, "backups"))))
		kt_log(KT_LOG_WARN, "ignoring unreadable index '%s' (%s); it will be rebuilt",
		       path, idx ? "no 'backups' object" : jerr.text);
	free(path);
	if (!idx || !json_is_object(json_object_get(idx, "backups"))) {
		json_decref(idx);
		idx = json_pack("{s:i, s:{}}", "version", 1, "backups");
	}
	return idx;
}

kt_code kt_backup_index_save(const char *dir, json_t *idx, kt_error *err)
{
	char *path = join(dir, KT_BACKUP_INDEX);
	char *tmp = join(dir, KT_BACKUP_INDEX ".tmp");
	kt_code c = KT_OK;
	char *text = json_dumps(idx, JSON_INDENT(1) | JSON_SORT_KEYS);
	int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
	size_t n = text ? strlen(text) : 0;
	/* Data on disk before the rename, the rename on disk before we return:
	 * a power cut leaves the old index or the new one, never an empty one. */
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
		int e = text ? errno : ENOMEM;
		c = kt_error_sys(err, kt_code_from_errno(e), e, "cannot write the index '%s'", tmp);
	}
	if (fd >= 0 && close(fd) != 0 && !c) {
		int e = errno;
		c = kt_error_sys(err, kt_code_from_errno(e), e, "cannot write the index '%s'", tmp);
	}
	if (!c && rename(tmp, path) != 0) {
		int e = errno;
		c = kt_error_sys(err, kt_code_from_errno(e), e, "cannot replace the index '%s'", path);
	}
	if (!c) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	} else {
		unlink(tmp);
	}
	free(text);
	free(path);
	free(tmp);
	return c;
}

static int by_time(const void *a, const void *b)
{
	const kt_backup_entry *x = a, *y = b;
	int c = strcmp(x->time, y->time);
	return c ? c : strcmp(x->file, y->file);
}

kt_code kt_etcdbackup_list(const char *dir, kt_backup_entry **out, size_t *n_out, kt_error *err)
{
	DIR *d = opendir(dir);
	if (!d) {
		int e = errno;
		return kt_error_sys(err, kt_code_from_errno(e), e, "cannot list backup directory '%s'",
		                    dir);
	}
	json_t *idx = kt_backup_index_load(dir);
	json_t *backups = json_object_get(idx, "backups");
	kt_backup_entry *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		kt_backup_entry e;
		memset(&e, 0, sizeof(e));
		if (!kt_backup_parse_name(de->d_name, &e.node, &e.instance_id, e.time))
			continue;
		e.file = kt_xstrdup(de->d_name);
		char *full = join(dir, de->d_name);
		struct stat st;
		if (stat(full, &st) == 0)
			e.size = (uint64_t)st.st_size;
		free(full);
		json_t *rec = json_object_get(backups, de->d_name);
		e.revision = rec ? (int64_t)json_integer_value(json_object_get(rec, "revision")) : -1;
		e.verified = rec && json_is_true(json_object_get(rec, "verified")) &&
		             (uint64_t)json_integer_value(json_object_get(rec, "size")) == e.size;
		e.exported = rec && json_is_true(json_object_get(rec, "exported"));
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			kt_backup_entry *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				kt_backup_entries_free(v, n);
				free(e.file);
				free(e.node);
				free(e.instance_id);
				closedir(d);
				json_decref(idx);
				return kt_error_set(err, KT_ENOMEM, "out of memory listing '%s'", dir);
			}
			v = nv;
		}
		v[n++] = e;
	}
	closedir(d);
	json_decref(idx);
	if (n)
		qsort(v, n, sizeof(*v), by_time);
	*out = v;
	*n_out = n;
	return KT_OK;
}

void kt_backup_entries_free(kt_backup_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].file);
		free(e[i].node);
		free(e[i].instance_id);
	}
	free(e);
}
