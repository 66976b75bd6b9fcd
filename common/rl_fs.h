/* rl_fs: file system chores the commands share. Reentrant; no state. */
#ifndef RL_FS_H
#define RL_FS_H

#include <stddef.h>
#include <stdio.h>

#include "common/rl_error.h"

/* Removes path and everything below it, without a shell (any character may be
 * in the path) and without following symbolic links (a link goes, not what it
 * points to). A path that is already gone is no error. RL_EIO names what could
 * not be removed. */
rl_error *rl_fs_remove_tree(const char *path);

/* A file the commands write (an export, a template, a captured image) is
 * there whole or not at all: it is written to a temporary file beside it (the
 * same folder, so the rename stays on one file system), synced, and renamed
 * over it on commit; abort, or a commit that fails, removes the temporary
 * file and leaves what was there before. The file is readable by its owner
 * only: what the commands write is patient or biometric data. A path that
 * names something other than a regular file (/dev/stdout, a pipe) is written
 * directly. */
typedef struct rl_fs_output rl_fs_output;

/* *out is the caller's: commit or abort it. RL_EINVAL names the path when it
 * cannot be created. */
rl_error *rl_fs_output_open(const char *path, rl_fs_output **out);
FILE *rl_fs_output_file(rl_fs_output *o);
/* Flushes, syncs and renames; frees o whatever the outcome. */
rl_error *rl_fs_output_commit(rl_fs_output *o);
/* Removes the temporary file; frees o. NULL is a no-op. */
void rl_fs_output_abort(rl_fs_output *o);

/* The folder that holds path ("." for a bare name, "/" for one at the root),
 * into out (cap bytes, cut to fit). */
void rl_fs_parent(const char *path, char *out, size_t cap);

/* Syncs the folder that holds path, so that a rename into it (or out of it)
 * survives a power cut. RL_EIO names the folder. */
rl_error *rl_fs_sync_parent(const char *path);

/* len bytes of data as the whole of path, the same way. */
rl_error *rl_fs_write_file(const char *path, const void *data, size_t len);

#endif
