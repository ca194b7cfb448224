/*
 * fuzz_repo.c - libFuzzer target for the repository format's parsers of
 * outside bytes (src/repo/pack.c): the pack header body and the index
 * body, as they are after decryption (an attacker without the key cannot
 * reach them, a corrupted repository or a bug can).
 *
 * Byte 0 picks the parser (0 header, 1 index, 2 tree, 3 snapshot, and
 * exactly 4 a content list blob body; other values by their low 2 bits);
 * the rest is its input.  List blobs: accepted exactly when they are
 * 1..KT_REPO_LIST_MAX_IDS whole ids.  Tree indexes (byte 2 too): safe sorted
 * first names, and canonical re-encoding.  Trees: decoded names are safe path components and a
 * decoded tree re-encodes and decodes to the same bytes again.  Properties: a parse that
 * succeeds returns entries that obey every rule (contiguous offsets from 0,
 * known types, bounded lengths, one type per pack), and re-encoding what was
 * parsed gives back exactly the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/repo_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const kt_repo_entry *e, size_t n)
{
	uint64_t next = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].offset != next || e[i].type > 1 || e[i].compression > 1 ||
		    e[i].type != e[0].type || e[i].length < KT_REPO_SEAL_OVERHEAD ||
		    e[i].raw_length > KT_REPO_MAX_BLOB)
			abort();
		next += e[i].length;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	kt_error err;
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	if (data[0] == 4) {
		size_t n;
		int ok = kt_repo_list_parse(p, len, "fuzz", &n, &err) == KT_OK;
		int want = len && len % 32 == 0 && len / 32 <= KT_REPO_LIST_MAX_IDS;
		if (ok != want || (ok && n * 32 != len) || (!ok && n))
			abort();
		return 0;
	}
	if ((data[0] & 3) == 2) {
		/* A tree index: safe, strictly sorted first names, counts > 0, and
		 * canonical re-encoding (writers make two parts or more). */
		kt_repo_treeidx x, x2;
		kt_repo_tree t0;
		if (kt_repo_tree_decode_any((const char *)p, len, &t0, &x, &err) == KT_OK && x.n) {
			for (size_t i = 0; i < x.n; i++)
				if (!kt_repo_name_ok(x.parts[i].first) || !x.parts[i].count ||
				    (i && strcmp(x.parts[i - 1].first, x.parts[i].first) >= 0))
					abort();
			kt_buf a, b;
			kt_buf_init(&a, 1u << 28);
			kt_buf_init(&b, 1u << 28);
			if (kt_repo_treeidx_encode(&x, &a, &err) == KT_OK) {
				if (kt_repo_tree_decode_any(a.data, a.len, &t0, &x2, &err) != KT_OK ||
				    !x2.n || kt_repo_treeidx_encode(&x2, &b, &err) != KT_OK ||
				    a.len != b.len || memcmp(a.data, b.data, a.len))
					abort();
				kt_repo_treeidx_release(&x2);
			}
			kt_buf_release(&a);
			kt_buf_release(&b);
		}
		kt_repo_treeidx_release(&x);
		kt_repo_tree_release(&t0);
		kt_repo_tree t, t2;
		if (kt_repo_tree_decode((const char *)p, len, &t, &err) == KT_OK) {
			kt_buf a, b;
			kt_buf_init(&a, 1u << 28);
			kt_buf_init(&b, 1u << 28);
			for (size_t i = 0; i < t.n; i++)
				if (!kt_repo_name_ok(t.nodes[i].name))
					abort();
			if (kt_repo_tree_encode(&t, &a, &err) == KT_OK) {
				if (kt_repo_tree_decode(a.data, a.len, &t2, &err) != KT_OK ||
				    kt_repo_tree_encode(&t2, &b, &err) != KT_OK || a.len != b.len ||
				    memcmp(a.data, b.data, a.len))
					abort();
				kt_repo_tree_release(&t2);
			}
			kt_buf_release(&a);
			kt_buf_release(&b);
		}
		kt_repo_tree_release(&t);
		return 0;
	}
	if ((data[0] & 3) == 3) {
		kt_repo_snapshot s;
		kt_repo_snapshot_decode((const char *)p, len, &s, &err);
		kt_repo_snapshot_release(&s);
		return 0;
	}
	if (data[0] & 1) {
		kt_repo_index_pack *packs;
		size_t n;
		if (kt_repo_index_parse(p, len, &packs, &n, &err) == KT_OK) {
			size_t total = 5;
			for (size_t i = 0; i < n; i++) {
				if (packs[i].n == 0)
					abort();
				check(packs[i].entries, packs[i].n);
				total += 36 + packs[i].n * KT_REPO_ENTRY_SIZE;
			}
			if (total != len)
				abort();
			kt_repo_index_free(packs, n);
		}
	} else {
		kt_repo_entry *e;
		size_t n;
		/* The limit comes from the input too: the header's start offset. */
		uint64_t limit = len >= 4 ? (uint64_t)p[len - 1] << 16 | (uint64_t)p[len - 2] << 8 |
		                                p[len - 3] : UINT64_MAX;
		if (kt_repo_entries_parse(p, len, UINT64_MAX, &e, &n, &err) == KT_OK) {
			check(e, n);
			if (len != 5 + n * KT_REPO_ENTRY_SIZE)
				abort();
			free(e);
		}
		if (kt_repo_entries_parse(p, len, limit, &e, &n, &err) == KT_OK) {
			check(e, n);
			uint64_t end = e[n - 1].offset + (uint64_t)e[n - 1].length;
			if (end != limit)
				abort();
			free(e);
		}
	}
	return 0;
}
