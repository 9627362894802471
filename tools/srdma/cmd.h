/* SPDX-License-Identifier: MIT */
/* The srdma tool: one file per subcommand, dispatched from main.c. */
#ifndef SRDMA_TOOL_CMD_H
#define SRDMA_TOOL_CMD_H

int cmd_certs(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_client(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_cp(int argc, char **argv);

#endif
