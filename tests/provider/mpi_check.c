/* SPDX-License-Identifier: MIT */
/*
 * A small MPI program for the provider tests: point-to-point around a ring,
 * a broadcast and an allreduce over a few MiB, every value checked. Exits 0
 * and prints "mpi_check: OK" on rank 0 only when every rank saw the right
 * bytes; any mismatch aborts the job.
 *
 * usage: mpi_check [MiB]   (default 4)
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A value no other rank, offset or round produces by accident. */
static uint32_t pattern(int rank, size_t i, uint32_t round)
{
	uint64_t x =
		((uint64_t)(unsigned)rank << 40) ^ ((uint64_t)i << 8) ^ round;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 29;
	return (uint32_t)x;
}

static void fail(int rank, const char *what, size_t i, uint32_t got,
		 uint32_t want)
{
	fprintf(stderr,
		"mpi_check: rank %d: %s: word %zu is 0x%08x, expected "
		"0x%08x\n",
		rank, what, i, got, want);
	MPI_Abort(MPI_COMM_WORLD, 2);
}

int main(int argc, char **argv)
{
	int rank, size, mib = argc > 1 ? atoi(argv[1]) : 4;
	size_t n;
	uint32_t *a, *b;
	uint64_t *s, *r;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (mib < 1)
		mib = 1;
	n = (size_t)mib * (1u << 20) / sizeof(uint32_t);
	a = malloc(n * sizeof(*a));
	b = malloc(n * sizeof(*b));
	s = malloc(n / 2 * sizeof(*s));
	r = malloc(n / 2 * sizeof(*r));
	if (!a || !b || !s || !r) {
		fprintf(stderr, "mpi_check: out of memory\n");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}

	/* Point-to-point: each rank sends to the next, small and large. */
	for (uint32_t round = 0; round < 3; round++) {
		size_t len = round == 0 ? 16 : round == 1 ? 70000 : n;
		int to = (rank + 1) % size, from = (rank + size - 1) % size;

		for (size_t i = 0; i < len; i++)
			a[i] = pattern(rank, i, round);
		MPI_Sendrecv(a, (int)len, MPI_UINT32_T, to, (int)round, b,
			     (int)len, MPI_UINT32_T, from, (int)round,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (size_t i = 0; i < len; i++)
			if (b[i] != pattern(from, i, round))
				fail(rank, "sendrecv", i, b[i],
				     pattern(from, i, round));
	}

	/* Broadcast from the last rank. */
	for (size_t i = 0; i < n; i++)
		a[i] = rank == size - 1 ? pattern(size - 1, i, 7) : 0;
	MPI_Bcast(a, (int)n, MPI_UINT32_T, size - 1, MPI_COMM_WORLD);
	for (size_t i = 0; i < n; i++)
		if (a[i] != pattern(size - 1, i, 7))
			fail(rank, "bcast", i, a[i], pattern(size - 1, i, 7));

	/* Allreduce: the sum over ranks of a per-rank value, in 64 bits. */
	for (size_t i = 0; i < n / 2; i++)
		s[i] = pattern(rank, i, 9);
	MPI_Allreduce(s, r, (int)(n / 2), MPI_UINT64_T, MPI_SUM,
		      MPI_COMM_WORLD);
	for (size_t i = 0; i < n / 2; i++) {
		uint64_t want = 0;

		for (int k = 0; k < size; k++)
			want += pattern(k, i, 9);
		if (r[i] != want)
			fail(rank, "allreduce", i, (uint32_t)r[i],
			     (uint32_t)want);
	}

	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0)
		printf("mpi_check: OK: %d ranks, sendrecv 16 B / 70000 words / "
		       "%d MiB, bcast %d MiB, allreduce %d MiB verified\n",
		       size, mib, mib, mib);
	free(a);
	free(b);
	free(s);
	free(r);
	MPI_Finalize();
	return 0;
}
