/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the bodies of the session's data-channel records
 * (NOTICE, UPDATE, ACK, STREAM, HOLD; src/wire/record.c). The first input
 * byte picks the body type (modulo 5), the rest is the body. Besides "never
 * crash", decoding must be canonical: what decodes re-encodes to exactly the
 * input bytes. Seeds: tests/fuzz/corpus/fuzz_wire_record/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire_record: %s (%s)\n", what,
		srdma_error_detail());
	abort();
}

static void same(const uint8_t *a, int n, const uint8_t *b, size_t size)
{
	if (n < 0)
		fail("a decoded body does not re-encode");
	if ((size_t)n != size || memcmp(a, b, size) != 0)
		fail("re-encoding differs from the input");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[SRDMA_REC_MAX_ENTRIES * SRDMA_NOTICE_LEN];
	struct srdma__stream_rec st;
	struct srdma__notice n[SRDMA_REC_MAX_ENTRIES];
	struct srdma__update u[SRDMA_REC_MAX_ENTRIES];
	struct srdma__ack a;
	struct srdma__hold h;
	size_t k;
	int rc;

	if (size < 1)
		return 0;
	srdma__err_clear();
	switch (data[0] % 5) {
	case 0:
		rc = srdma__notices_decode(data + 1, size - 1, n,
					   SRDMA_REC_MAX_ENTRIES, &k);
		if (rc == 0) {
			if (k < 1 || k > SRDMA_REC_MAX_ENTRIES)
				fail("entry count out of range");
			same(out, srdma__notices_encode(n, k, out, sizeof(out)),
			     data + 1, size - 1);
		}
		break;
	case 1:
		rc = srdma__updates_decode(data + 1, size - 1, u,
					   SRDMA_REC_MAX_ENTRIES, &k);
		if (rc == 0) {
			if (k < 1 || k > SRDMA_REC_MAX_ENTRIES)
				fail("entry count out of range");
			same(out, srdma__updates_encode(u, k, out, sizeof(out)),
			     data + 1, size - 1);
		}
		break;
	case 3:
		rc = srdma__stream_rec_decode(data + 1, size - 1, &st);
		if (rc == 0) {
			/* The header re-encodes; a DATA payload is the rest,
			 * in place, at least one byte; the others have none. */
			same(out, srdma__stream_rec_encode(&st, out), data + 1,
			     SRDMA_STREAM_HDR_LEN);
			if (st.len != size - 1 - SRDMA_STREAM_HDR_LEN ||
			    (st.len &&
			     st.data != data + 1 + SRDMA_STREAM_HDR_LEN) ||
			    (st.kind == SRDMA_STREAM_DATA) != (st.len > 0))
				fail("STREAM payload is not the rest of the "
				     "body");
		}
		break;
	case 4:
		rc = srdma__hold_decode(data + 1, size - 1, &h);
		if (rc == 0)
			same(out, srdma__hold_encode(&h, out), data + 1,
			     size - 1);
		break;
	default:
		rc = srdma__ack_decode(data + 1, size - 1, &a);
		if (rc == 0)
			same(out, srdma__ack_encode(&a, out), data + 1,
			     size - 1);
		break;
	}
	if (rc != 0 && rc != SRDMA_EPROTO)
		fail("decode failed with an unexpected code");
	return 0;
}
