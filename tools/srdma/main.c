/* SPDX-License-Identifier: MIT */
/* srdma: one binary, one file per subcommand (like wireguard-tools' wg.c). */
#include <stdio.h>
#include <string.h>

#include "srdma.h"
#include "cmd.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} cmds[] = {
	{"serve", cmd_serve, "run a multi-client secure RDMA server"},
	{"client", cmd_client, "connect and run a self-verifying exchange"},
	{"bench", cmd_bench, "measure bandwidth and latency against a server"},
	{"cp", cmd_cp, "copy a file to a server's --dir (SHA-256, resumable)"},
	{"certs", cmd_certs, "write a development PKI (CA, server, clients)"},
	{"demo", cmd_demo, "show the whole secure flow on this machine"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: srdma COMMAND [options]   (srdma COMMAND --help)\n\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-7s %s\n", cmds[i].name, cmds[i].what);
	fprintf(f, "\nlibsrdma %s\n", srdma_version());
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("srdma %s\n", srdma_version());
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "srdma: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
