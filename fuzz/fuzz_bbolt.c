/*
 * fuzz_bbolt.c - libFuzzer target for the bbolt walker and the snapshot
 * checks on top of it (src/bbolt/, src/snapshot/).
 *
 * The input is a whole file: it is written to a memfd and run through
 * kt_snapshot_status_fd (which walks any size) and kt_snapshot_verify_fd
 * (trailer, walk, etcd buckets, census).  Neither may crash, leak, read out
 * of bounds or allocate without bound; each must either succeed or leave a
 * message in err.  Seeds (fuzz/corpus/bbolt/) are small raw databases made
 * by the unit test's writer and a tiny real etcd snapshot, so mutations of
 * data pages reach deep into the walk (meta pages are checksummed).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapshot/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz_bbolt", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(fd, data + done, size - done);
		if (w <= 0)
			abort();
		done += (size_t)w;
	}
	kt_error err;
	kt_error_clear(&err);
	kt_snapshot_stat st;
	kt_code c = kt_snapshot_status_fd(fd, size, "fuzz", &st, &err);
	if (c != KT_OK && err.msg[0] == '\0')
		abort();   /* every failure must say why */

	kt_snapshot_report rep;
	kt_error_clear(&err);
	c = kt_snapshot_verify_fd(fd, size, "fuzz", &rep, &err);
	if (c != KT_OK && err.msg[0] == '\0')
		abort();
	if (c == KT_OK) {
		uint64_t sum = 0;
		for (size_t i = 0; i < rep.n_resources; i++) {
			if (!rep.resources[i].resource || rep.resources[i].count == 0)
				abort();
			sum += rep.resources[i].count;
		}
		if (sum != rep.n_kube_objects || rep.n_reachable + rep.n_free != rep.n_pages)
			abort();
	}
	kt_snapshot_report_release(&rep);
	close(fd);
	return 0;
}
