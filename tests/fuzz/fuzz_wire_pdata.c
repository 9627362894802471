/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for fabric connect private data. Decoding reads only the
 * first 56 bytes, so a decodable input re-encodes to exactly its first 56
 * bytes, and that decodes again to the same bytes.
 * Seeds: tests/fuzz/corpus/fuzz_wire_pdata/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire_pdata: %s (%s)\n", what,
		srdma_error_detail());
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[SRDMA_WIRE_CONNECT_PDATA_LEN];
	uint8_t out2[SRDMA_WIRE_CONNECT_PDATA_LEN];
	struct srdma__connect_pdata pd, pd2;
	int rc;

	srdma__err_clear();

	rc = srdma__pdata_decode(data, size, &pd);
	if (rc < 0) {
		if (rc != SRDMA_EPROTO && rc != SRDMA_EVERSION)
			fail("decode failed with an unexpected code");
		return 0;
	}
	if (rc != 0 || size < SRDMA_WIRE_CONNECT_PDATA_LEN)
		fail("decode accepted a short or odd input");
	if (srdma__pdata_encode(&pd, out) != 0)
		fail("decoded private data does not re-encode");
	if (memcmp(out, data, sizeof(out)) != 0)
		fail("re-encoding differs from the input");
	if (srdma__pdata_decode(out, sizeof(out), &pd2) != 0)
		fail("the re-encoding does not decode");
	if (srdma__pdata_encode(&pd2, out2) != 0 ||
	    memcmp(out, out2, sizeof(out)) != 0)
		fail("second re-encoding differs");
	return 0;
}
