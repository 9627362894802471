/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the input is one received record. It is opened with a
 * fixed key, expected sequence 0, in every mode and cipher. Invariants: no
 * crash or sanitizer report; on success the payload lies inside the record
 * and the lengths add up; on failure nothing after the header survives.
 *
 * Built with -DSRDMA_FUZZ_GEN (and without -fsanitize=fuzzer) this file
 * instead writes the seed corpus: valid records sealed with the same key.
 *   gcc -DSRDMA_FUZZ_GEN ... fuzz_record_open.c && ./a.out
 * corpus/fuzz_record_open
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protect/protect.h"

static const uint8_t fuzz_key[SRDMA_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const uint8_t fuzz_salt[SRDMA_SALT_LEN] = {
	0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
};

static const struct {
	enum srdma_protect mode;
	enum srdma__cipher cipher;
} configs[] = {
	{SRDMA_PROTECT_NONE, SRDMA_CIPHER_NONE},
	{SRDMA_PROTECT_INTEGRITY, SRDMA_CIPHER_AES_256_GCM},
	{SRDMA_PROTECT_ENCRYPT, SRDMA_CIPHER_AES_256_GCM},
	{SRDMA_PROTECT_INTEGRITY, SRDMA_CIPHER_CHACHA20_POLY1305},
	{SRDMA_PROTECT_ENCRYPT, SRDMA_CIPHER_CHACHA20_POLY1305},
};
enum { NCONF = sizeof(configs) / sizeof(configs[0]) };

#ifndef SRDMA_FUZZ_GEN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct srdma__aead rx[NCONF];
	static int ready;

	if (!ready) {
		for (int i = 0; i < NCONF; i++)
			if (srdma__aead_init(&rx[i], configs[i].mode,
					     configs[i].cipher, false, fuzz_key,
					     fuzz_salt) < 0)
				abort();
		ready = 1;
	}
	for (int i = 0; i < NCONF; i++) {
		/* Exact-size heap copy so any overread is reported. */
		uint8_t *rec = malloc(size ? size : 1);
		struct srdma__record r;
		int rc;

		if (!rec)
			abort();
		memcpy(rec, data, size);
		rx[i].seq = 0;
		rc = srdma__record_open(&rx[i], rec, size, &r);
		if (rc == 0) {
			size_t over = srdma__record_overhead(configs[i].mode);
			volatile uint8_t sink = 0;

			if (r.seq != 0 || rx[i].seq != 1 ||
			    (size_t)r.len + over != size ||
			    r.payload != rec + SRDMA_REC_HDR_LEN)
				abort();
			for (uint32_t j = 0; j < r.len; j++)
				sink ^= r.payload[j];
			(void)sink;
		} else {
			if (rc > 0 || rx[i].seq != 0 || r.payload || r.len)
				abort();
			for (size_t j = SRDMA_REC_HDR_LEN; j < size; j++)
				if (rec[j])
					abort();
		}
		free(rec);
	}
	return 0;
}
#else
static int write_seed(const char *dir, const char *name, const uint8_t *p,
		      size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		perror(path);
		if (f)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	static const char *const names[NCONF] = {
		"none_hello",		"integrity_aes_hello",
		"encrypt_aes_hello",	"integrity_chacha_hello",
		"encrypt_chacha_hello",
	};
	static const char msg[] = "hello, sealed world";
	uint8_t rec[128];
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < NCONF; i++) {
		struct srdma__aead tx;
		int n;

		if (srdma__aead_init(&tx, configs[i].mode, configs[i].cipher,
				     true, fuzz_key, fuzz_salt) < 0)
			return 1;
		n = srdma__record_seal(&tx, 1, 4, msg, sizeof(msg) - 1, rec,
				       sizeof(rec));
		bad |= n < 0 || write_seed(argv[1], names[i], rec, (size_t)n);
		srdma__aead_wipe(&tx);
	}
	/* An empty record (credit update) in ENCRYPT. */
	{
		struct srdma__aead tx;
		int n;

		if (srdma__aead_init(&tx, SRDMA_PROTECT_ENCRYPT,
				     SRDMA_CIPHER_AES_256_GCM, true, fuzz_key,
				     fuzz_salt) < 0)
			return 1;
		n = srdma__record_seal(&tx, 2, 32, NULL, 0, rec, sizeof(rec));
		bad |= n < 0 ||
		       write_seed(argv[1], "encrypt_aes_empty", rec, (size_t)n);
		srdma__aead_wipe(&tx);
	}
	return bad;
}
#endif
