/* rl_fs: file system chores the commands share. Reentrant; no state. */
#ifndef RL_FS_H
#define RL_FS_H

#include "common/rl_error.h"

/* Removes path and everything below it, without a shell (any character may be
 * in the path) and without following symbolic links (a link goes, not what it
 * points to). A path that is already gone is no error. RL_EIO names what could
 * not be removed. */
rl_error *rl_fs_remove_tree(const char *path);

#endif
