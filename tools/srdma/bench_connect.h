/* SPDX-License-Identifier: MIT */
/* `srdma bench --mode connect`: set-up cost (bench_connect.c). */
#ifndef SRDMA_TOOL_BENCH_CONNECT_H
#define SRDMA_TOOL_BENCH_CONNECT_H

#include <stdint.h>

#include "common.h"

struct connect_opts {
	uint64_t iters;	 /* connects per case; 0 = use duration */
	double duration; /* seconds for both cases together */
	int json, quiet, tmo;
};

/* Runs the full-handshake and resumed series; returns the exit status. */
int bench_connect(const struct common_opts *co, const struct connect_opts *o);

#endif
