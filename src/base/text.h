/* SPDX-License-Identifier: MIT */
/* Text that came from a peer, made safe to log or hand to an application. */
#ifndef SRDMA_BASE_TEXT_H
#define SRDMA_BASE_TEXT_H

#include <stddef.h>

/*
 * Copies at most n bytes of src (stopping at NUL) into dst[len] as one
 * printable line: every byte outside printable ASCII (control characters,
 * newlines, escape sequences, DEL, non-ASCII) becomes '?', and the result
 * is NUL-terminated and cut to len - 1 bytes. len must be at least 1.
 */
void srdma__safe_text(char *dst, size_t len, const char *src, size_t n);

#endif
