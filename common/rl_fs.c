#include "common/rl_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* nftw gives its callback no context: a failure comes back as the callback's
 * return value, errno, which nftw then returns. The path is not kept, to stay
 * reentrant; the message names the tree. */
static int rl_fs_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        return errno ? errno : EIO;
    return 0;
}

rl_error *rl_fs_remove_tree(const char *path)
{
    int rc = nftw(path, rl_fs_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc == 0 || (rc == -1 && errno == ENOENT))
        return NULL;
    return RL_ERR(RL_EIO, "cannot remove %s: %s", path, strerror(rc > 0 ? rc : errno));
}

struct rl_fs_output {
    FILE *f;
    bool direct;   /* path is no regular file: written in place */
    char *path;
    char *tmp;     /* the temporary file beside path; NULL when direct */
};

rl_error *rl_fs_output_open(const char *path, rl_fs_output **out)
{
    rl_error *err = NULL;
    rl_fs_output *o = calloc(1, sizeof *o);
    *out = NULL;
    if (!o || !(o->path = strdup(path)))
        RL_FAIL(RL_ENOMEM, "out of memory");
    struct stat st;
    o->direct = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    if (o->direct) {
        if (S_ISDIR(st.st_mode))
            RL_FAIL(RL_EINVAL, "cannot write %s: it is a directory", path);
        if (!(o->f = fopen(path, "w")))
            RL_FAIL(RL_EINVAL, "cannot write %s: %s", path, strerror(errno));
    } else {
        size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
        if (!(o->tmp = malloc(n)))
            RL_FAIL(RL_ENOMEM, "out of memory");
        snprintf(o->tmp, n, "%s.tmp-XXXXXX", path);
        int fd = mkstemp(o->tmp);
        if (fd < 0) {
            free(o->tmp);
            o->tmp = NULL;
            RL_FAIL(RL_EINVAL, "cannot create %s: %s", path, strerror(errno));
        }
        if (!(o->f = fdopen(fd, "w"))) {
            close(fd);
            RL_FAIL(RL_ENOMEM, "out of memory");
        }
    }
    *out = o;
    o = NULL;
cleanup:
    rl_fs_output_abort(o);
    return err;
}

FILE *rl_fs_output_file(rl_fs_output *o) { return o->f; }

void rl_fs_output_abort(rl_fs_output *o)
{
    if (!o)
        return;
    if (o->f)
        fclose(o->f);
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o);
}

rl_error *rl_fs_output_commit(rl_fs_output *o)
{
    rl_error *err = NULL;
    int e = 0;
    if (ferror(o->f)) /* a write that failed earlier (a full disk) */
        e = EIO;
    else if (fflush(o->f) != 0 || (!o->direct && fsync(fileno(o->f)) != 0))
        e = errno;
    if (fclose(o->f) != 0 && !e)
        e = errno;
    o->f = NULL;
    if (e)
        RL_FAIL(RL_EIO, "writing %s: %s", o->path, strerror(e));
    if (!o->direct) {
        if (rename(o->tmp, o->path) != 0)
            RL_FAIL(RL_EIO, "cannot write %s: %s", o->path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
    }
cleanup:
    rl_fs_output_abort(o);
    return err;
}

rl_error *rl_fs_write_file(const char *path, const void *data, size_t len)
{
    rl_error *err = NULL;
    rl_fs_output *o = NULL;
    RL_TRY(rl_fs_output_open(path, &o));
    if (fwrite(data, 1, len, rl_fs_output_file(o)) != len)
        RL_FAIL(RL_EIO, "writing %s: %s", path, strerror(errno));
    err = rl_fs_output_commit(o);
    o = NULL;
cleanup:
    rl_fs_output_abort(o);
    return err;
}

void rl_fs_parent(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

rl_error *rl_fs_sync_parent(const char *path)
{
    rl_error *err = NULL;
    char parent[PATH_MAX];
    rl_fs_parent(path, parent, sizeof parent);
    int fd = open(parent, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0)
        RL_FAIL(RL_EIO, "cannot sync folder %s: %s", parent, strerror(errno));
cleanup:
    if (fd >= 0)
        close(fd);
    return err;
}
