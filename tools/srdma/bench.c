/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cmd.h"

int cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "srdma bench: not available yet in this build "
			"(use `srdma client --op all --size N --count N` for "
			"verified transfers with figures)\n");
	return 2;
}
