/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for control-message framing and decoding. Besides
 * "never crash", it checks that decoding is canonical: a frame that decodes
 * re-encodes to exactly the input bytes, and the re-encoding decodes again
 * to the same bytes. Seeds: tests/fuzz/corpus/fuzz_wire_msg/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire_msg: %s (%s)\n", what, srdma_error_detail());
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	uint8_t out2[sizeof(out)];
	struct srdma__msg m, m2;
	int flen = -1, rc, n, n2;

	srdma__err_clear();

	if (size >= SRDMA_WIRE_HDR_LEN) {
		flen = srdma__msg_frame_len(data, size);
		if (flen > SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY)
			fail("frame_len above the maximum frame");
		if (flen >= 0 && flen < SRDMA_WIRE_HDR_LEN)
			fail("frame_len below the header length");
	}
	rc = srdma__msg_decode(data, size, &m);
	if (rc < 0) {
		if (rc != SRDMA_EPROTO && rc != SRDMA_EVERSION)
			fail("decode failed with an unexpected code");
		return 0;
	}
	if (rc != 0)
		fail("decode returned a positive value");
	/* A frame that decodes has a header that frame_len accepts. */
	if (flen < 0 || (size_t)flen != size)
		fail("decode accepted a frame that frame_len rejects");
	(void)srdma__msg_type_name(m.type);

	n = srdma__msg_encode(&m, out, sizeof(out));
	if (n < 0)
		fail("a decoded message does not re-encode");
	if ((size_t)n != size || memcmp(out, data, size) != 0)
		fail("re-encoding differs from the input");

	if (srdma__msg_decode(out, (size_t)n, &m2) != 0)
		fail("the re-encoding does not decode");
	n2 = srdma__msg_encode(&m2, out2, sizeof(out2));
	if (n2 != n || memcmp(out, out2, (size_t)n) != 0)
		fail("second re-encoding differs");
	if (m.type == SRDMA_MSG_ERROR &&
	    strlen(m.u.error.text) != m.u.error.text_len)
		fail("ERROR text is not NUL-terminated at text_len");
	return 0;
}
