/* ridgeline restore DIR: replace a stopped store with a backup, keeping the old one aside. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/rl_fs.h"
#include "cmd/cmd_session.h"

void cmd_restore_help(void)
{
    printf("usage: ridgeline restore DIR [--data DIR] [--config FILE]\n"
           "\n"
           "Replaces the store with the backup in DIR (made by `ridgeline backup`). The\n"
           "server must be stopped. The backup is first copied next to the store and\n"
           "verified (it opens, its schema is known, `check` finds no problem); only then\n"
           "is the current store renamed to DATA.before-restore-TIMESTAMP (kept, never\n"
           "deleted) and the copy put in its place. DIR itself is not changed.\n");
}

static rl_error *restore_copy_file(const char *from, const char *to)
{
    rl_error *err = NULL;
    int in = open(from, O_RDONLY), out = -1;
    if (in < 0)
        RL_FAIL(RL_EIO, "cannot read %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (out < 0)
        RL_FAIL(RL_EIO, "cannot create %s: %s", to, strerror(errno));
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            RL_FAIL(RL_EIO, "cannot write %s: %s", to, strerror(errno));
    if (n < 0 || fsync(out) != 0)
        RL_FAIL(RL_EIO, "cannot copy %s: %s", from, strerror(errno));
cleanup:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return err;
}

/* The regular files of from, but its LOCK, copied into the folder to (made by the caller). */
static rl_error *restore_copy_dir(const char *from, const char *to)
{
    rl_error *err = NULL;
    DIR *d = opendir(from);
    if (!d)
        RL_FAIL(RL_EINVAL, "cannot open backup folder %s: %s", from, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || strcmp(e->d_name, "LOCK") == 0)
            continue;
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        RL_TRY(restore_copy_file(src, dst));
    }
cleanup:
    if (d)
        closedir(d);
    return err;
}

/* Takes the lock a running server holds on target (its LOCK file), as
 * RocksDB does (fcntl), rather than by opening the store: an open writes a new
 * manifest, log and options into the store being replaced (on a full disk
 * RocksDB aborted the process), where the store kept aside should be left as
 * it was. *fd holds the lock until the caller closes it: a server started
 * while the restore copies and checks is refused the store, as this restore
 * would be refused a running one. -1 when there is no LOCK (never opened). */
static rl_error *restore_lock(const char *target, int *fd)
{
    rl_error *err = NULL;
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/LOCK", target);
    *fd = open(lock, O_RDWR);
    if (*fd < 0 && errno == ENOENT)
        goto cleanup; /* never opened by RocksDB: nothing holds it */
    if (*fd < 0)
        RL_FAIL(RL_EIO, "cannot open %s: %s", lock, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(*fd, F_SETLK, &fl) != 0) {
        if (errno == EAGAIN || errno == EACCES)
            RL_FAIL(RL_ECONFLICT, "the store %s is in use: stop the server before restoring", target);
        RL_FAIL(RL_EIO, "cannot lock %s: %s", lock, strerror(errno));
    }
cleanup:
    if (err && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return err;
}

/* Puts the checked copy (staging) in target's place and the store it
 * replaces at aside. One exchange where the file system offers it, so that no
 * moment is without a store at target (a kill between two renames left none,
 * and the next `serve` would have made an empty one); two renames where it
 * does not. The folder holding them is synced: the swap survives a power cut. */
static rl_error *restore_swap(const char *staging, const char *target, const char *aside, bool have_current)
{
    rl_error *err = NULL;
    if (have_current) {
        if (renameat2(AT_FDCWD, staging, AT_FDCWD, target, RENAME_EXCHANGE) == 0) {
            if (rename(staging, aside) != 0)
                RL_FAIL(RL_EIO, "restored; the replaced store is at %s (it could not be renamed %s: %s)", staging,
                        aside, strerror(errno));
        } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
            if (rename(target, aside) != 0)
                RL_FAIL(RL_EIO, "cannot move the current store aside to %s: %s", aside, strerror(errno));
            if (rename(staging, target) != 0)
                RL_FAIL(RL_EIO, "cannot move the restored store into place (the current one is at %s): %s", aside,
                        strerror(errno));
        } else {
            RL_FAIL(RL_EIO, "cannot put the restored store in place: %s", strerror(errno));
        }
    } else if (rename(staging, target) != 0) {
        RL_FAIL(RL_EIO, "cannot move the restored store into place: %s", strerror(errno));
    }
    err = rl_fs_sync_parent(target);
    if (err)
        err = rl_error_wrap(err, "restored, but not yet durable");
cleanup:
    return err;
}

/* Opens the copy (of backup) as a store and runs the registry check on it. */
static rl_error *restore_verify(const rl_config *cfg, const char *backup, const char *dir, json_t **report)
{
    rl_error *err = NULL;
    rl_store *store = NULL;
    rl_registry *reg = NULL;
    rl_store_options so;
    cmd_store_options(cfg, &so);
    /* An open that may create would make an empty store of an empty folder,
     * of another program's database or of a backup without its CURRENT, and
     * that empty store passes check: it replaced the registry. */
    so.must_exist = true;
    rl_registry_options ro;
    json_t *rules = NULL;
    err = rl_store_open(dir, &so, &store);
    if (err && rl_error_code(err) == RL_ENOTFOUND) {
        rl_error_free(err);
        RL_FAIL(RL_EINVAL, "%s is not a Ridgeline backup (no store in it, or one missing its CURRENT file or its "
                "schema version); not restored", backup);
    }
    if (err)
        goto cleanup;
    RL_TRY(cmd_registry_options(cfg, &ro, &rules));
    err = rl_registry_open(store, &ro, &reg);
    json_decref(rules);
    if (err)
        goto cleanup;
    RL_TRY(rl_registry_check(reg, report));
    if (!json_is_true(json_object_get(*report, "ok")))
        RL_FAIL(RL_EINVAL, "the backup fails `check` (%lld problems); not restored",
                (long long)json_integer_value(json_object_get(*report, "problem_count")));
cleanup:
    rl_registry_close(reg);
    rl_store_close(store);
    return err;
}

int cmd_restore(int argc, char **argv)
{
    const char *data = NULL, *config = NULL;
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'c': config = optarg; break;
        case 'h': cmd_restore_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline restore --help\n"); return CMD_USAGE;
        }
    }
    if (argc - optind != 1) {
        cmd_restore_help();
        return CMD_USAGE;
    }
    const char *backup = argv[optind];
    rl_error *err = NULL;
    json_t *report = NULL;
    int lock_fd = -1;
    bool made_staging = false; /* staging is a folder this restore made: removed on failure */
    char staging[2048] = "", aside[2048] = "";
    rl_config cfg;
    RL_TRY(cmd_config_build(config, data, &cfg));
    const char *target = cfg.data_dir;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    if (snprintf(staging, sizeof staging, "%s.restoring-%s", target, stamp) >= (int)sizeof staging ||
        snprintf(aside, sizeof aside, "%s.before-restore-%s", target, stamp) >= (int)sizeof aside)
        RL_FAIL(RL_EINVAL, "the store folder's path is too long");

    struct stat st;
    bool have_current = stat(target, &st) == 0;
    if (have_current)
        RL_TRY(restore_lock(target, &lock_fd));
    if (mkdir(staging, 0700) != 0)
        RL_FAIL(RL_EIO, "cannot create %s: %s", staging, strerror(errno));
    made_staging = true;
    RL_TRY(restore_copy_dir(backup, staging));
    RL_TRY(restore_verify(&cfg, backup, staging, &report));
    made_staging = false; /* from here on it may hold the replaced store: never removed */
    RL_TRY(restore_swap(staging, target, aside, have_current));
    json_t *out = json_pack("{s:s, s:s, s:s?, s:O}", "restored", target, "from", backup, "previous_store_kept_at",
                            have_current ? aside : NULL, "counts", json_object_get(report, "counts"));
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(out);
cleanup:
    json_decref(report);
    if (lock_fd >= 0)
        close(lock_fd);
    if (err) {
        /* Leave nothing half-made behind: the staging copy is ours alone. */
        if (made_staging)
            rl_error_free(rl_fs_remove_tree(staging));
        return cmd_report(err);
    }
    return CMD_OK;
}
