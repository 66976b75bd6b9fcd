/*
 * cmd: the `ridgeline` program's subcommands. Each command is a function
 * taking its own argv (argv[0] is the command name) and returning the process
 * exit status: 0 success, 1 failure while running, 2 bad usage or
 * configuration (the message says what to change).
 */
#ifndef RL_CMD_H
#define RL_CMD_H

enum { CMD_OK = 0, CMD_FAILED = 1, CMD_USAGE = 2 };

typedef struct cmd_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(void);
} cmd_command;

int cmd_serve(int argc, char **argv);
void cmd_serve_help(void);
int cmd_version(int argc, char **argv);
void cmd_version_help(void);

/* The operator commands (record, golden, review, link, ..., backup); argv[0] names which. */
int cmd_admin(int argc, char **argv);
void cmd_admin_help(const char *name);
int cmd_restore(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_import(int argc, char **argv);
void cmd_import_help(void);
int cmd_export(int argc, char **argv);
void cmd_export_help(void);
void cmd_eval_help(void);
int cmd_fingerprint(int argc, char **argv);
void cmd_fingerprint_help(void);
int cmd_device(int argc, char **argv);
void cmd_device_help(void);

void cmd_bench_help(void);
void cmd_restore_help(void);

/* Prints an error (message and file:line trace) to stderr and frees it. */
struct rl_error;
int cmd_report(struct rl_error *err);

#endif
