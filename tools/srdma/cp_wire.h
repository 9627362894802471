/* SPDX-License-Identifier: MIT */
/*
 * The messages of `srdma cp` (cp.c) and its server (cp_serve.c). They are
 * srdma_send records; the file's bytes go over the connection's byte
 * stream, so the two never mix:
 *
 *   client -> server  REQ      u32 mode, u64 size, u16 n, PATH (n bytes,
 *                              relative to the server's --dir)
 *   server -> client  OFFER    u64 offset, SHA-256 of its first offset
 *                              bytes: what the server holds of PATH from
 *                              an interrupted copy (0 if nothing)
 *                  or REFUSE   u16 n, one sentence (no such directory,
 *                              no space left, a path that leaves --dir)
 *   client -> server  START    u64 offset: the offer's (the client's first
 *                              bytes hash the same) or 0 (start over)
 *   client -> server  the file from offset, over the stream; its end
 *   client -> server  DONE     SHA-256 of the whole file
 *   server -> client  VERDICT  flags OK or not, u64 bytes held, the
 *                              server's SHA-256, u16 n, a sentence
 *
 * Every message starts with the 12 bytes "SRDMACP1", u8 type, u8 flags,
 * u16 zero; integers are big-endian. REQ flags: RESTART (drop a partial
 * copy), FSYNC (on disk before the verdict), DISCARD (count the bytes,
 * store nothing: srdma bench --op stream), HASH (with DISCARD: compare
 * the SHA-256 too).
 */
#ifndef SRDMA_TOOL_CP_WIRE_H
#define SRDMA_TOOL_CP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define CP_MAGIC "SRDMACP1"

enum {
	CP_HDR = 12,
	CP_SHA = 32,
	CP_PATH_MAX = 4095,
	CP_TEXT_MAX = 1024,
};

enum cp_type {
	CP_REQ = 1,
	CP_OFFER = 2,
	CP_REFUSE = 3,
	CP_START = 4,
	CP_DONE = 5,
	CP_VERDICT = 6,
};

enum {
	CP_F_RESTART = 1, /* REQ: throw away a partial copy */
	CP_F_DISCARD = 2, /* REQ: count the bytes, store nothing (bench) */
	CP_F_FSYNC = 4,	  /* REQ: the file is on disk before the verdict */
	CP_F_HASH = 8,	  /* REQ with DISCARD: compare SHA-256 all the same */
	CP_F_OK = 1,	  /* VERDICT: the file is in place */
};

/* A message being built. */
struct cp_msg {
	uint8_t buf[CP_HDR + 16 + CP_PATH_MAX + CP_TEXT_MAX];
	size_t len;
};

/* A bounds-checked reader: any read past the end sets bad. */
struct cp_rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

void cp_msg_start(struct cp_msg *m, enum cp_type type, uint8_t flags);
void cp_put_be(struct cp_msg *m, uint64_t v, int n);
void cp_put_bytes(struct cp_msg *m, const void *p, size_t n);
/* Whether data is a cp message; its type, flags and body. */
bool cp_msg_parse(const void *data, size_t len, uint8_t *type, uint8_t *flags,
		  struct cp_rd *body);
uint64_t cp_get_be(struct cp_rd *r, int n);
const uint8_t *cp_get_bytes(struct cp_rd *r, size_t n);

/* n bytes as 2n hex digits (out holds 2n + 1). */
void cp_hex(const uint8_t *d, size_t n, char *out);
/* A peer's or user's text for one line: printable ASCII only. */
void cp_safe(char *out, size_t cap, const char *in, size_t n);
EVP_MD_CTX *cp_sha_new(void);
/* The SHA-256 so far, leaving x to go on. */
int cp_sha_peek(EVP_MD_CTX *x, uint8_t out[CP_SHA]);
/* "4.8 MiB" */
void cp_human(uint64_t v, char *out, size_t cap);

#endif
