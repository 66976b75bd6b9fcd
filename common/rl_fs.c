#include "common/rl_fs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>

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
