/*
 * store: Ridgeline's persistent state, in one RocksDB database.
 *
 * The store knows bytes, column families and atomic batches; what the bytes
 * mean belongs to the registry. Invariants it keeps:
 *  - every change goes through rl_store_write() with a batch, so a logical
 *    operation lands whole or not at all (a crash never shows half of one);
 *  - with sync on, rl_store_write() returns only after the write-ahead log is
 *    on disk, so an acknowledged write survives kill -9 and power loss;
 *    concurrent writers share one fsync (RocksDB's group commit);
 *  - the schema version in the meta family is checked at open: a store made
 *    by a newer Ridgeline is refused, never half-understood.
 *
 * Threads: an rl_store is shared by all threads; get and write are
 * thread-safe. Ownership: rl_store_open() gives the caller the handle, closed
 * with rl_store_close() (NULL allowed) once no thread uses it. Values from
 * rl_store_get() are malloc'd and owned by the caller.
 */
#ifndef RL_STORE_H
#define RL_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/rl_error.h"

/* Column families. The names on disk are in store.c; append, never renumber. */
typedef enum rl_cf {
    RL_CF_META = 0, /* schema version and store-wide settings */
    RL_CF_RECORDS,  /* source records, by record id */
    RL_CF_COUNT,
} rl_cf;

enum { RL_STORE_SCHEMA_VERSION = 1 };

typedef struct rl_store_options {
    bool sync; /* fsync the WAL before acknowledging a write */
} rl_store_options;

typedef struct rl_store rl_store;
typedef struct rl_store_batch rl_store_batch;

/* Opens (creating if needed, mode 0700) the store in folder dir. Errors:
 * RL_ECONFLICT when another process holds it, RL_EUNSUPPORTED for a newer
 * schema, RL_ESTORE for damage, RL_EIO for the file system. */
rl_error *rl_store_open(const char *dir, const rl_store_options *opts, rl_store **out);
void rl_store_close(rl_store *store);
const char *rl_store_path(const rl_store *store);
int rl_store_schema_version(const rl_store *store);

/* Looks key up; *found says whether it exists. On found, *value (malloc'd,
 * NUL-terminated for convenience, len excludes the NUL) belongs to the caller. */
rl_error *rl_store_get(rl_store *store, rl_cf cf, const void *key, size_t key_len, char **value,
                       size_t *value_len, bool *found);

/* A batch collects puts and deletes to apply atomically; it refers to the
 * store's column families, so it must not outlive the store. */
rl_error *rl_store_batch_new(rl_store *store, rl_store_batch **out);
void rl_store_batch_put(rl_store_batch *batch, rl_cf cf, const void *key, size_t key_len,
                        const void *value, size_t value_len);
void rl_store_batch_delete(rl_store_batch *batch, rl_cf cf, const void *key, size_t key_len);
void rl_store_batch_destroy(rl_store_batch *batch);

/* Applies the batch atomically (durably when the store syncs). The batch stays the caller's. */
rl_error *rl_store_write(rl_store *store, rl_store_batch *batch);

#endif
