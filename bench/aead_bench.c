/* SPDX-License-Identifier: MIT */
/*
 * AEAD seal throughput on one core, per backend: AES-256-GCM on OpenSSL's
 * EVP, AES-256-GCM on intel-ipsec-mb, ChaCha20-Poly1305 on EVP, for 64 B,
 * 4 KiB and 64 KiB payloads behind a 16-byte AAD (a record header). Each
 * cell is the median of several timed runs.
 *
 *   aead_bench [-m encrypt|integrity] [-r runs] [-t seconds-per-run]
 *
 * integrity measures the GMAC shape: the header and payload both as AAD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "protect/protect.h"
#include "protect/protect_int.h"

enum { MAX_RUNS = 31, HDR = 16 };

struct column {
	const char *label;
	enum srdma__cipher cipher;
	enum srdma__aead_backend backend;
};

static const struct column columns[] = {
	{"AES-256-GCM EVP", SRDMA_CIPHER_AES_256_GCM, SRDMA_AEAD_EVP},
	{"AES-256-GCM ipsec-mb", SRDMA_CIPHER_AES_256_GCM, SRDMA_AEAD_IPSEC_MB},
	{"ChaCha20-Poly1305 EVP", SRDMA_CIPHER_CHACHA20_POLY1305,
	 SRDMA_AEAD_EVP},
};
static const size_t sizes[] = {64, 4096, 65536};

/* GB/s of payload sealed in about secs seconds; < 0 on an error. */
static double one_run(struct srdma__aead *a, enum srdma_protect mode,
		      const uint8_t *in, uint8_t *out, size_t len, double secs)
{
	uint8_t nonce[SRDMA_SALT_LEN] = {0}, hdr[HDR] = {1}, tag[SRDMA_TAG_LEN];
	uint64_t ops = 0;
	double t0 = now_s(), t;

	do {
		for (int i = 0; i < 64; i++, ops++) {
			int rc;

			/* A fresh nonce per operation, as records have. */
			memcpy(nonce + 4, &ops, sizeof(ops));
			if (mode == SRDMA_PROTECT_ENCRYPT)
				rc = srdma__aead_op(a, true, nonce, hdr, HDR,
						    NULL, 0, in, out, len, tag);
			else
				rc = srdma__aead_op(a, true, nonce, hdr, HDR,
						    in, len, NULL, NULL, 0,
						    tag);
			if (rc < 0)
				return -1;
		}
		t = now_s() - t0;
	} while (t < secs);
	return (double)ops * (double)len / t / 1e9;
}

int main(int argc, char **argv)
{
	enum srdma_protect mode = SRDMA_PROTECT_ENCRYPT;
	int runs = 5, opt;
	double secs = 0.2, gbps[3][3];
	uint8_t key[SRDMA_KEY_LEN], salt[SRDMA_SALT_LEN];
	uint8_t *in = malloc(65536), *out = malloc(65536);

	while ((opt = getopt(argc, argv, "m:r:t:")) != -1) {
		if (opt == 'm' && strcmp(optarg, "integrity") == 0)
			mode = SRDMA_PROTECT_INTEGRITY;
		else if (opt == 'm' && strcmp(optarg, "encrypt") == 0)
			mode = SRDMA_PROTECT_ENCRYPT;
		else if (opt == 'r' && atoi(optarg) > 0)
			runs = atoi(optarg) < MAX_RUNS ? atoi(optarg)
						       : MAX_RUNS;
		else if (opt == 't' && atof(optarg) > 0)
			secs = atof(optarg);
		else {
			fprintf(stderr,
				"usage: %s [-m encrypt|integrity] [-r runs] "
				"[-t seconds-per-run]\n",
				argv[0]);
			return 2;
		}
	}
	if (!in || !out || srdma__random(key, sizeof(key)) < 0 ||
	    srdma__random(salt, sizeof(salt)) < 0 ||
	    srdma__random(in, 65536) < 0) {
		fprintf(stderr, "set-up failed\n");
		return 1;
	}
	for (size_t c = 0; c < 3; c++) {
		struct srdma__aead a;

		for (size_t s = 0; s < 3; s++)
			gbps[c][s] = -1;
		if (srdma__aead_force_backend(columns[c].backend) < 0 ||
		    srdma__aead_init(&a, mode, columns[c].cipher, true, key,
				     salt) < 0) {
			fprintf(stderr, "%s: %s\n", columns[c].label,
				srdma_error_detail());
			continue;
		}
		printf("# %s: %s\n", columns[c].label,
		       srdma__aead_impl(columns[c].cipher));
		for (size_t s = 0; s < 3; s++) {
			double v[MAX_RUNS], p50, p99;

			/* One untimed run warms caches and clocks. */
			one_run(&a, mode, in, out, sizes[s], secs / 4);
			for (int r = 0; r < runs; r++)
				v[r] = one_run(&a, mode, in, out, sizes[s],
					       secs);
			pct(v, (size_t)runs, &p50, &p99);
			gbps[c][s] = p50;
		}
		srdma__aead_wipe(&a);
	}
	IGNORE_RESULT(srdma__aead_force_backend(SRDMA_AEAD_AUTO));

	printf("# seal GB/s per core (%s), median of %d runs of %.2f s\n",
	       mode == SRDMA_PROTECT_ENCRYPT ? "encrypt" : "integrity", runs,
	       secs);
	printf("%-8s", "size");
	for (size_t c = 0; c < 3; c++)
		printf("  %22s", columns[c].label);
	printf("\n");
	for (size_t s = 0; s < 3; s++) {
		printf("%-8zu", sizes[s]);
		for (size_t c = 0; c < 3; c++) {
			if (gbps[c][s] < 0)
				printf("  %22s", "n/a");
			else
				printf("  %22.2f", gbps[c][s]);
		}
		printf("\n");
	}
	free(in);
	free(out);
	return 0;
}
