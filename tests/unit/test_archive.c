/*
 * test_archive.c - unit tests for src/archive that need its internals:
 * the lock protocol (conflicts, stale locks, refresh) on a local store.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive_int.h"
#include "unit.h"

static kt_store *store_at(const char *dir)
{
	kt_store_opts o = { .create = 1 };
	kt_store *s = NULL;
	kt_error err;
	CHECK(kt_store_open(dir, &o, &s, &err) == KT_OK);
	return s;
}

static int n_locks(kt_archive *a)
{
	char **names;
	size_t n;
	kt_error err;
	if (kt_archive_list_names(a, "locks/", &names, &n, &err))
		return -1;
	kt_archive_names_free(names, n);
	return (int)n;
}

static void test_locks(void)
{
	char dir[] = "/tmp/kt-unit-archive-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/repo", dir);
	kt_store *s1 = store_at(path), *s2 = store_at(path);
	kt_error err;
	kt_archive_init_opts io = { .kdf_n = 16384 };
	CHECK(kt_archive_init(s1, "pw", 2, &io, &err) == KT_OK);
	kt_archive *a, *b;
	CHECK(kt_archive_open(s1, "pw", 2, &a, &err) == KT_OK);
	CHECK(kt_archive_open(s2, "pw", 2, &b, &err) == KT_OK);
	CHECK(kt_archive_open(s2, "px", 2, &b, &err) == KT_EAUTH);

	/* Shared locks coexist; an exclusive one waits for them. */
	CHECK(kt_archive_lock(a, 0, &err) == KT_OK);
	CHECK(kt_archive_lock(b, 0, &err) == KT_OK);
	CHECK(n_locks(a) == 2);
	kt_archive_unlock(b);
	CHECK(kt_archive_lock(b, 1, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "a shared lock");
	CHECK(n_locks(a) == 1);   /* the refused lock was taken back */
	kt_archive_unlock(a);
	CHECK(kt_archive_lock(b, 1, &err) == KT_OK);
	CHECK(kt_archive_lock(a, 0, &err) == KT_EEXIST);
	CHECK_CONTAINS(err.msg, "an exclusive lock");
	kt_archive_unlock(b);
	CHECK(n_locks(a) == 0);

	/* A lock 31 minutes old (its holder died) is stale: ignored, and
	 * removed by kt_archive_remove_stale_locks; a fresh one is not. */
	char text[160];
	snprintf(text, sizeof(text), "{\"time\":%lld,\"hostname\":\"gone\",\"pid\":1,"
	         "\"exclusive\":true}", (long long)time(NULL) - 31 * 60);
	CHECK(kt_archive_put_sealed(a, "locks", "kontinuity lock v1", text, strlen(text), NULL,
	                            NULL, &err) == KT_OK);
	CHECK(kt_archive_lock(b, 0, &err) == KT_OK);
	unsigned removed = 9;
	CHECK(kt_archive_remove_stale_locks(a, &removed, &err) == KT_OK);
	CHECK_EQ_U(removed, 1);
	CHECK(n_locks(a) == 1);   /* b's live lock stays */

	/* Refresh: a lock older than 5 minutes is rewritten by a tick. */
	char before[128];
	snprintf(before, sizeof(before), "%s", b->lock_name);
	b->lock_written_ms -= 6 * 60 * 1000;
	sleep(1);   /* a new time, so a new object name */
	kt_archive_lock_tick(b);
	CHECK(strcmp(before, b->lock_name) != 0);
	CHECK(n_locks(a) == 1);
	kt_archive_free(b);       /* unlocks */
	CHECK(n_locks(a) == 0);
	kt_archive_free(a);
	kt_store_free(s1);
	kt_store_free(s2);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	RUN(test_locks);
	return unit_done();
}
