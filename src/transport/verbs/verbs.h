/* SPDX-License-Identifier: MIT */
/*
 * verbs backend introspection, for tests and logs only. The ops table and
 * srdma__verbs_available() are declared in transport/transport.h.
 */
#ifndef SRDMA_TRANSPORT_VERBS_VERBS_H
#define SRDMA_TRANSPORT_VERBS_VERBS_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"

/* True if the key handed out for mr is a type-2 memory window's. */
bool srdma__verbs_mr_uses_mw(const struct srdma__tp_mr *mr);
/* The underlying MR's own rkey (differs from mr->key when an MW is used). */
uint32_t srdma__verbs_mr_rkey(const struct srdma__tp_mr *mr);
/* Connections the instance still holds, zombies awaiting DISCONNECTED
 * included. */
int srdma__verbs_conn_count(const struct srdma__tp *tp);

#endif
