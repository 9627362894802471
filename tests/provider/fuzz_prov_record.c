/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the provider's record parser (provider/wire.c): any
 * bytes parse or are refused without reading outside them, and a record
 * that parses encodes back to the same header (the layout is exact).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t hdr[SP_REC_HDR_MAX];
	struct sp_rec r;
	size_t n;

	if (sp_rec_parse(data, len, &r) != 0)
		return 0;
	n = sp_rec_encode(hdr, &r);
	if (n != sp_rec_hdr_len(r.type) || n > len || r.payload != data + n ||
	    r.len != len - n || memcmp(hdr, data, n) != 0)
		abort();
	return 0;
}
