/*
 * idset.c - a set of 32-byte blob ids.  The writers use it for the blobs
 * they queued but whose packs are not stored yet, so a blob seen twice in
 * one backup is stored once.  It is a blob index without locations
 * (index.c), so a first backup of any size keeps it bounded: a table of
 * the newest ids, then sorted runs in an unlinked temp file.
 */
#include "archive_int.h"

int kt_idset_put(kt_idset *s, const uint8_t id[32])
{
	return kt_index_put(&s->x, id);
}

void kt_idset_release(kt_idset *s)
{
	kt_index_release(&s->x);
}
