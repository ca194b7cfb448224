/*
 * idset.c - a set of 32-byte blob ids (open addressing on the id's first
 * 8 bytes, which are uniformly distributed: ids are keyed hashes).  The
 * writers use it for the blobs they queued but whose packs are not stored
 * yet, so a blob seen twice in one backup is stored once.
 */
#include <stdlib.h>
#include <string.h>

#include "archive_int.h"

static const uint8_t zero_id[32];

static size_t slot(const kt_idset *s, const uint8_t id[32])
{
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	return (size_t)(h & (s->cap - 1));
}

int kt_idset_put(kt_idset *s, const uint8_t id[32])
{
	if ((s->n + 1) * 10 > s->cap * 7) {
		kt_idset old = *s;
		s->cap = old.cap ? old.cap * 2 : 4096;
		s->ids = kt_xcalloc(s->cap, 32);
		for (size_t i = 0; i < old.cap; i++) {
			if (!memcmp(old.ids[i], zero_id, 32))
				continue;
			size_t j = slot(s, old.ids[i]);
			while (memcmp(s->ids[j], zero_id, 32))
				j = (j + 1) & (s->cap - 1);
			memcpy(s->ids[j], old.ids[i], 32);
		}
		free(old.ids);
	}
	size_t i = slot(s, id);
	for (; memcmp(s->ids[i], zero_id, 32); i = (i + 1) & (s->cap - 1))
		if (!memcmp(s->ids[i], id, 32))
			return 1;
	memcpy(s->ids[i], id, 32);
	s->n++;
	return 0;
}

void kt_idset_release(kt_idset *s)
{
	free(s->ids);
	memset(s, 0, sizeof(*s));
}
