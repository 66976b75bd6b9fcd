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
#include <stdint.h>

#include "common/rl_error.h"

/* Column families. The names on disk are in store.c; append, never renumber.
 * What each key and value holds is the registry's business (registry_keys.h). */
typedef enum rl_cf {
    RL_CF_META = 0,     /* schema version and store-wide settings */
    RL_CF_RECORDS,      /* source records (FHIR Patient JSON), by record id */
    RL_CF_VERSIONS,     /* earlier versions of source records */
    RL_CF_SRCKEY,       /* source key (system|value) -> record id, unique */
    RL_CF_IDENT,        /* every identifier -> records carrying it */
    RL_CF_GOLDEN,       /* golden records (the persons), by golden id */
    RL_CF_LINKS,        /* record id -> its link to a golden record */
    RL_CF_BLOCKING,     /* record id -> its blocking keys; written every registration, read whole (the
                         * registry keeps the postings in memory): a key-at-a-time read sorts its memtable */
    RL_CF_NOMATCH,      /* record pairs a reviewer declared different people */
    RL_CF_REVIEW,       /* review queue items */
    RL_CF_REVIEW_OPEN,  /* open items by (record, candidate golden) */
    RL_CF_HISTORY,      /* change events with before/after state, for undo */
    RL_CF_AUDIT,        /* append-only audit trail, by time */
    RL_CF_AUDIT_SUBJECT,/* audit entries by record or golden id */
    RL_CF_TEMPLATES,    /* biometric templates (fingerprint engine) */
    RL_CF_FEATURES,     /* record id -> the matcher's prepared form of the record */
    RL_CF_SEARCH,       /* record id -> its search parameter values (FHIR Patient search); written every
                         * registration, read whole (the registry keeps the index in memory) */
    RL_CF_TOKENS,       /* API bearer tokens by token id: role, system, keyed hash (api/api_auth.c) */
    RL_CF_COUNT,
} rl_cf;

/* 2: the blocking and search families hold an entry a record (the registry
 * rewrites a version 1 store's at open, registry_search.c); earlier Ridgelines,
 * which would read them as empty, refuse such a store.
 * 3: fingerprints enrolled from now on carry matcher features in version 3
 * (bio_features_encode), which earlier Ridgelines cannot decode: they refuse
 * the store at open rather than fail on those fingers at every 1:N search. */
enum { RL_STORE_SCHEMA_VERSION = 3 };

typedef struct rl_store_options {
    bool sync;           /* fsync the WAL before acknowledging a write */
    int group_commit_us; /* when writers queue up, wait this long to share one fsync */
    size_t cache_bytes;  /* block cache; 0: 64 MiB */
    bool must_exist;     /* refuse a folder that holds no store (RL_ENOTFOUND) rather than make one there */
} rl_store_options;

typedef struct rl_store rl_store;
typedef struct rl_store_batch rl_store_batch;

/* Opens (creating if needed, mode 0700, unless opts->must_exist) the store in
 * folder dir. Errors: RL_ENOTFOUND for no store there under must_exist (the
 * file system is left as it was), RL_ECONFLICT when another process holds it,
 * RL_EUNSUPPORTED for a newer schema, RL_ESTORE for damage, RL_EIO for the
 * file system. */
rl_error *rl_store_open(const char *dir, const rl_store_options *opts, rl_store **out);
void rl_store_close(rl_store *store);
const char *rl_store_path(const rl_store *store);
int rl_store_schema_version(const rl_store *store);

/* Looks key up; *found says whether it exists. On found, *value (malloc'd,
 * NUL-terminated for convenience, len excludes the NUL) belongs to the caller. */
rl_error *rl_store_get(rl_store *store, rl_cf cf, const void *key, size_t key_len, char **value,
                       size_t *value_len, bool *found);

/* Reads a value the caller looks at once and does not keep (a finger's
 * features for a 1:N re-rank, thousands a search): fn sees the bytes in
 * place (borrowed, valid only during the call; no copy is made) and its error
 * is returned. The read does not fill the block cache, where a stream of
 * such values would push out the index and filter partitions every other
 * read needs; the templates family keeps its own index and filters in memory
 * with its table files, so that such reads find them without the cache.
 * *found says whether the key exists (fn is called only then). */
typedef rl_error *(*rl_store_view_fn)(void *ctx, const void *value, size_t len);
rl_error *rl_store_read_once(rl_store *store, rl_cf cf, const void *key, size_t key_len, rl_store_view_fn fn,
                             void *ctx, bool *found);

/* A batch collects puts and deletes to apply atomically; it refers to the
 * store's column families, so it must not outlive the store. */
rl_error *rl_store_batch_new(rl_store *store, rl_store_batch **out);
void rl_store_batch_put(rl_store_batch *batch, rl_cf cf, const void *key, size_t key_len,
                        const void *value, size_t value_len);
void rl_store_batch_delete(rl_store_batch *batch, rl_cf cf, const void *key, size_t key_len);
void rl_store_batch_destroy(rl_store_batch *batch);

/* Applies the batch atomically (durably when the store syncs). The batch stays the caller's. */
rl_error *rl_store_write(rl_store *store, rl_store_batch *batch);

/*
 * Group commit, in two steps, for callers that serialise their
 * read-modify-write under a lock of their own: rl_store_apply() makes the
 * batch visible (not yet durable) and returns a ticket; after releasing the
 * lock, rl_store_sync() blocks until that ticket is on disk. Threads waiting
 * at once share one fsync. With sync off, rl_store_sync() returns at once.
 */
rl_error *rl_store_apply(rl_store *store, rl_store_batch *batch, uint64_t *ticket);
rl_error *rl_store_sync(rl_store *store, uint64_t ticket);
/* A ticket covering every write applied so far (by any thread): for an answer
 * that rests on state another request wrote and may not have synced yet. */
uint64_t rl_store_ticket_now(rl_store *store);

/* Makes everything written so far durable now, whatever the sync policy
 * (bulk loads run with sync off and call this before they record progress). */
rl_error *rl_store_flush(rl_store *store);

/* Iterates the keys of a family in order, within [lower, upper) (either may be
 * NULL: unbounded). Key and value pointers stay valid until the next move. */
typedef struct rl_store_iter rl_store_iter;
rl_error *rl_store_iter_new(rl_store *store, rl_cf cf, const void *lower, size_t lower_len,
                            const void *upper, size_t upper_len, rl_store_iter **out);
/* All keys starting with prefix. */
rl_error *rl_store_iter_prefix(rl_store *store, rl_cf cf, const void *prefix, size_t prefix_len,
                               rl_store_iter **out);
/* An iterator over one group at a time of a posting family (RL_CF_IDENT,
 * keys "group \0 member"): seek it to "group \0" and it walks
 * that group's keys, then stops (invalid). Reseek it for the next group. Bloom
 * filters on the group make a seek skip the table files without it, which a
 * general iterator cannot. RL_EINTERNAL for another family. */
rl_error *rl_store_iter_group(rl_store *store, rl_cf cf, rl_store_iter **out);
/* Repositions at the first key >= key (within the iterator's bounds). One
 * iterator reseeked is much cheaper than a new iterator per lookup. */
void rl_store_iter_seek(rl_store_iter *it, const void *key, size_t key_len);
/* Repositions at the last key (within the iterator's bounds). */
void rl_store_iter_seek_last(rl_store_iter *it);
bool rl_store_iter_valid(const rl_store_iter *it);
void rl_store_iter_next(rl_store_iter *it);
const char *rl_store_iter_key(const rl_store_iter *it, size_t *len);
const char *rl_store_iter_value(const rl_store_iter *it, size_t *len);
/* An I/O or corruption error met while iterating (check once iteration stops). */
rl_error *rl_store_iter_status(const rl_store_iter *it);
void rl_store_iter_destroy(rl_store_iter *it);

/* A consistent copy of the live store into dir (which must not exist), taken
 * while the store keeps serving: RocksDB checkpoint, hard links where possible.
 * dir appears whole or not at all, owner-only (0700, files 0600). */
rl_error *rl_store_checkpoint(rl_store *store, const char *dir);

/* Total size on disk of the store's files, in bytes. */
rl_error *rl_store_disk_bytes(rl_store *store, uint64_t *bytes);

#endif
