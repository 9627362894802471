/* SPDX-License-Identifier: MIT */
#include "base/text.h"

void srdma__safe_text(char *dst, size_t len, const char *src, size_t n)
{
	size_t i = 0;

	if (!dst || !len)
		return;
	for (; src && i < n && i + 1 < len && src[i]; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	dst[i] = '\0';
}
