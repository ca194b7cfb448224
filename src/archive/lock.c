/*
 * lock.c - repository locks (docs/repository-format.md, "Locks").
 *
 * A lock is an object locks/<storage id> holding the sealed JSON
 * {"time", "hostname", "pid", "exclusive"}.  Taking one: write ours, then
 * list the others; a conflicting lock that is not stale makes us remove ours
 * and fail (so two writers racing both see each other and at most one
 * proceeds: write-then-check).  Shared locks conflict only with exclusive
 * ones.  A holder refreshes its lock every 5 minutes (new object first, then
 * the old one removed); a lock whose time is more than 30 minutes old is
 * stale: it is ignored, and `repo unlock` removes it.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive_int.h"

#define AAD "kontinuity lock v1"
#define REFRESH_MS (5 * 60 * 1000)
#define STALE_S (30 * 60)

static kt_code write_lock(kt_archive *a, kt_error *err)
{
	char host[256] = "unknown";
	gethostname(host, sizeof(host) - 1);
	json_t *j = json_pack("{s:I, s:s, s:i, s:b}", "time", (json_int_t)time(NULL), "hostname",
	                      host, "pid", (int)getpid(), "exclusive", a->lock_exclusive);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	char id[65];
	kt_code c = kt_archive_put_sealed(a, "locks", AAD, text, strlen(text), id, NULL, err);
	free(text);
	if (!c) {
		snprintf(a->lock_name, sizeof(a->lock_name), "locks/%s", id);
		a->lock_written_ms = kt_now_ms();
	}
	return c;
}

typedef struct lock_info {
	int64_t time;
	char hostname[256];
	int pid;
	int exclusive;
} lock_info;

static int read_lock(kt_archive *a, const char *name, lock_info *out)
{
	kt_buf plain;
	kt_buf_init(&plain, 1 << 16);
	kt_error err;
	int ok = kt_archive_get_sealed(a, name, AAD, &plain, &err) == KT_OK;
	json_t *j = ok ? json_loadb(plain.data, plain.len, 0, NULL) : NULL;
	kt_buf_release(&plain);
	if (!j)
		return 0;
	memset(out, 0, sizeof(*out));
	out->time = json_integer_value(json_object_get(j, "time"));
	snprintf(out->hostname, sizeof(out->hostname), "%s",
	         json_string_value(json_object_get(j, "hostname")) ?
	         json_string_value(json_object_get(j, "hostname")) : "?");
	out->pid = (int)json_integer_value(json_object_get(j, "pid"));
	out->exclusive = json_is_true(json_object_get(j, "exclusive"));
	json_decref(j);
	return 1;
}

kt_code kt_archive_lock(kt_archive *a, int exclusive, kt_error *err)
{
	if (a->lock_name[0])
		return KT_OK;
	a->lock_exclusive = exclusive;
	kt_code c = write_lock(a, err);
	if (c)
		return kt_error_wrap(err, "cannot lock the repository");
	char **names;
	size_t n;
	if ((c = kt_archive_list_names(a, "locks/", &names, &n, err))) {
		kt_archive_unlock(a);
		return c;
	}
	int64_t now = time(NULL);
	for (size_t i = 0; !c && i < n; i++) {
		if (!strcmp(names[i], a->lock_name))
			continue;
		lock_info li;
		if (!read_lock(a, names[i], &li) || now - li.time > STALE_S)
			continue;   /* unreadable or stale: ignored */
		if (exclusive || li.exclusive) {
			struct tm tm;
			time_t t = (time_t)li.time;
			gmtime_r(&t, &tm);
			char when[32];
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			c = kt_error_set(err, KT_EEXIST, "the repository is locked (%s lock of %s, pid %d, "
			                 "since %s); try again when it is done (a lock not refreshed for "
			                 "30 minutes is stale and ignored)",
			                 li.exclusive ? "an exclusive" : "a shared", li.hostname, li.pid,
			                 when);
		}
	}
	kt_archive_names_free(names, n);
	if (c)
		kt_archive_unlock(a);
	return c;
}

void kt_archive_lock_tick(kt_archive *a)
{
	if (!a->lock_name[0] || kt_now_ms() - a->lock_written_ms < REFRESH_MS)
		return;
	char old[128];
	snprintf(old, sizeof(old), "%s", a->lock_name);
	kt_error err;
	if (write_lock(a, &err) == KT_OK)
		kt_store_remove(a->s, old, &err);
	else
		kt_log(KT_LOG_WARN, "cannot refresh the repository lock: %s", err.msg);
}

void kt_archive_unlock(kt_archive *a)
{
	if (!a->lock_name[0])
		return;
	kt_error err;
	if (kt_store_remove(a->s, a->lock_name, &err))
		kt_log(KT_LOG_WARN, "cannot remove the lock %s: %s", a->lock_name, err.msg);
	a->lock_name[0] = '\0';
}

kt_code kt_archive_remove_stale_locks(kt_archive *a, unsigned *n_removed, kt_error *err)
{
	*n_removed = 0;
	char **names;
	size_t n;
	kt_code c = kt_archive_list_names(a, "locks/", &names, &n, err);
	if (c)
		return c;
	int64_t now = time(NULL);
	for (size_t i = 0; !c && i < n; i++) {
		lock_info li;
		if (read_lock(a, names[i], &li) && now - li.time <= STALE_S)
			continue;
		if (!(c = kt_store_remove(a->s, names[i], err)))
			(*n_removed)++;
	}
	kt_archive_names_free(names, n);
	return c;
}
