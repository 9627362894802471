/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the input is one byte of options followed by a stored
 * block (zero-padded or cut to the mode's stride). It is opened as block
 * IDX of region REG with fixed writer keys in every mode and cipher.
 * Options: bit 0 allow_empty; bits 1-2 which writer keys are given (both,
 * only 0, only 1); bit 3 the owner. Invariants: no crash or sanitizer
 * report; on success the info is sane and the output past len is zero; on
 * failure the output is all zero and the code is SRDMA_EINTEGRITY.
 *
 * Built with -DSRDMA_FUZZ_GEN (and without -fsanitize=fuzzer) this file
 * instead writes the seed corpus: valid blocks sealed with the same keys.
 *   gcc -DSRDMA_FUZZ_GEN ... fuzz_block_open.c && ./a.out
 * corpus/fuzz_block_open
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protect/protect.h"

enum { REG = 7, IDX = 3 };

static const uint8_t fuzz_key[2][SRDMA_KEY_LEN] = {
	{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
	{0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a,
	 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
	 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f},
};
static const uint8_t fuzz_salt[2][SRDMA_SALT_LEN] = {
	{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
	 0xab},
	{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
	 0xbb},
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

static int init_keys(struct srdma__aead k[NCONF][2], bool seal)
{
	for (int i = 0; i < NCONF; i++)
		for (int w = 0; w < 2; w++)
			if (srdma__aead_init(&k[i][w], configs[i].mode,
					     configs[i].cipher, seal,
					     fuzz_key[w], fuzz_salt[w]) < 0)
				return -1;
	return 0;
}

#ifndef SRDMA_FUZZ_GEN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct srdma__aead keys[NCONF][2];
	static int ready;
	static uint8_t out[SRDMA_BLK_PAYLOAD];
	uint8_t opt;

	if (!ready) {
		if (init_keys(keys, false) < 0)
			abort();
		ready = 1;
	}
	if (size < 1)
		return 0;
	opt = data[0];
	data++;
	size--;
	for (int i = 0; i < NCONF; i++) {
		size_t stride = srdma__block_stride(configs[i].mode);
		uint8_t *blk = calloc(1, stride);
		struct srdma__aead *k[2] = {&keys[i][0], &keys[i][1]};
		struct srdma__block_info info;
		int rc;

		if (!blk)
			abort();
		memcpy(blk, data, size < stride ? size : stride);
		if (((opt >> 1) & 3) == 1)
			k[1] = NULL;
		else if (((opt >> 1) & 3) == 2)
			k[0] = NULL;
		memset(out, 0x5a, sizeof(out));
		rc = srdma__block_open(k, (opt >> 3) & 1, REG, IDX, blk,
				       opt & 1, out, &info);
		if (rc == 0) {
			if (info.len > SRDMA_BLK_PAYLOAD || info.writer > 1 ||
			    info.version > SRDMA_BLOCK_VERSION_MAX)
				abort();
			/* Plain memory in mode none: all of it, no version. */
			if (configs[i].mode == SRDMA_PROTECT_NONE &&
			    (info.version || info.len != SRDMA_BLK_PAYLOAD))
				abort();
			if (configs[i].mode != SRDMA_PROTECT_NONE &&
			    info.version == 0 && (info.len != 0 || !(opt & 1)))
				abort();
			if (info.version != 0 && !k[info.writer])
				abort();
			for (size_t j = info.len; j < sizeof(out); j++)
				if (out[j])
					abort();
		} else {
			if (rc != SRDMA_EINTEGRITY)
				abort();
			for (size_t j = 0; j < sizeof(out); j++)
				if (out[j])
					abort();
		}
		free(blk);
	}
	return 0;
}
#else
static int write_seed(const char *dir, const char *name, uint8_t opt,
		      const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(&opt, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n) {
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
		"none_w0",	     "integrity_aes_w1",
		"encrypt_aes_w0",    "integrity_chacha_w1",
		"encrypt_chacha_w0",
	};
	static struct srdma__aead keys[NCONF][2];
	static uint8_t
		blk[SRDMA_BLK_HDR_LEN + SRDMA_TAG_LEN + SRDMA_BLK_PAYLOAD];
	static const char msg[] = "sealed block payload";
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
		return 2;
	}
	if (init_keys(keys, true) < 0)
		return 1;
	for (int i = 0; i < NCONF; i++) {
		uint8_t w = (uint8_t)(i & 1);

		/* owner (option bit 3) = w */
		memset(blk, 0, sizeof(blk));
		bad |= srdma__block_seal(&keys[i][w], w, REG, IDX, 5 + i, w,
					 msg, sizeof(msg) - 1, blk) < 0;
		bad |= write_seed(argv[1], names[i], (uint8_t)(w << 3), blk,
				  srdma__block_stride(configs[i].mode));
	}
	/* A never-written block, read with allow_empty. */
	memset(blk, 0, sizeof(blk));
	bad |= write_seed(argv[1], "empty_allowed", 1, blk, sizeof(blk));
	for (int i = 0; i < NCONF; i++)
		for (int w = 0; w < 2; w++)
			srdma__aead_wipe(&keys[i][w]);
	return bad;
}
#endif
