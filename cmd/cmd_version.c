/* ridgeline version: what this binary is and what it was built against. */
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/rl_version.h"

#ifndef RL_ROCKSDB_VERSION
#define RL_ROCKSDB_VERSION "unknown"
#endif

void cmd_version_help(void)
{
    printf("usage: ridgeline version\n"
           "\n"
           "Prints Ridgeline's version and source revision, then the versions of the\n"
           "libraries it runs on (RocksDB, libmicrohttpd, jansson, libsodium).\n");
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cmd_version_help();
        return CMD_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "ridgeline version: takes no arguments\n");
        return CMD_USAGE;
    }
    printf("ridgeline %s (%s)\n", rl_version(), rl_git_rev());
    /* RocksDB's C API has no version call; pkg-config tells the build. */
    printf("rocksdb %s\n", RL_ROCKSDB_VERSION);
    printf("libmicrohttpd %s\n", MHD_get_version());
    printf("jansson %s\n", jansson_version_str());
    printf("libsodium %s\n", sodium_version_string());
    return CMD_OK;
}
