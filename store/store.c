#include "store/store.h"

#include "common/rl_fs.h"
#include "common/rl_log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const rl_cf_names[RL_CF_COUNT] = {
    [RL_CF_META] = "default", /* RocksDB's own default family doubles as meta */
    [RL_CF_RECORDS] = "records",
    [RL_CF_VERSIONS] = "versions",
    [RL_CF_SRCKEY] = "srckey",
    [RL_CF_IDENT] = "ident",
    [RL_CF_GOLDEN] = "golden",
    [RL_CF_LINKS] = "links",
    [RL_CF_BLOCKING] = "blocking",
    [RL_CF_NOMATCH] = "nomatch",
    [RL_CF_REVIEW] = "review",
    [RL_CF_REVIEW_OPEN] = "review_open",
    [RL_CF_HISTORY] = "history",
    [RL_CF_AUDIT] = "audit",
    [RL_CF_AUDIT_SUBJECT] = "audit_subject",
    [RL_CF_TEMPLATES] = "templates",
    [RL_CF_FEATURES] = "features",
    [RL_CF_SEARCH] = "search",
    [RL_CF_TOKENS] = "tokens",
};

static const char rl_schema_key[] = "schema_version";

/* Families whose keys are "group \0 member" and that are read one group at a
 * time (rl_store_iter_group): their bloom filters and memtable blooms hold the
 * group, so that a seek for a group skips every table file without it instead
 * of reading a block in each. */
static bool rl_cf_grouped(int cf) { return cf == RL_CF_IDENT; }

/* The group of a key: up to and including its first NUL. */
static char *rl_group_transform(void *state, const char *key, size_t len, size_t *out_len)
{
    const char *nul = memchr(key, '\0', len);
    *out_len = nul ? (size_t)(nul - key) + 1 : len;
    return (char *)key;
}

static unsigned char rl_group_in_domain(void *state, const char *key, size_t len)
{
    return memchr(key, '\0', len) != NULL;
}

static unsigned char rl_group_in_range(void *state, const char *key, size_t len) { return 0; }

/* The name is kept in each table file: one written under another extractor is
 * read without its prefix filter (correct, only slower). */
static const char *rl_group_name(void *state) { return "ridgeline.group.v1"; }

static void rl_group_destroy(void *state) {}

/* Table files: bloom filters (on whole keys, else only on the prefix), with
 * index and filter blocks in the shared block cache, pinned for level 0; or,
 * without index_in_cache, held in memory with each open table file (for a
 * family read without filling the cache, which would otherwise read them
 * back at every lookup). */
static rocksdb_block_based_table_options_t *rl_table_options(rocksdb_cache_t *cache, bool whole_keys,
                                                             bool index_in_cache)
{
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_block_based_options_set_whole_key_filtering(t, whole_keys);
    rocksdb_block_based_options_set_block_cache(t, cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, index_in_cache);
    if (!index_in_cache)
        return t;
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    /* Index and filter in partitions of a few KiB, under a small top level
     * kept in the cache: at a million records a table file's whole index is
     * hundreds of KiB, and once the indexes of all files outgrew the cache
     * every lookup read one back (a tenth of the CPU of the last 100,000
     * registrations of bench match). Table files written before keep their
     * layout; both are read alike. */
    rocksdb_block_based_options_set_index_type(t, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(t, 1);
    rocksdb_block_based_options_set_metadata_block_size(t, 4096);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
    return t;
}

enum { RL_STORE_PATH_MAX = 4096 };

struct rl_store {
    rocksdb_t *db;
    bool sync;
    bool must_exist; /* opened to read an existing store: nothing is made */
    /* group commit: one thread at a time syncs the WAL for everyone waiting */
    pthread_mutex_t sync_lock;
    pthread_cond_t synced;
    bool syncing;
    int waiters;
    int group_commit_us;
    uint64_t durable_seq;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *block_cache;
    rocksdb_options_t *options;
    rocksdb_options_t *append_options;
    rocksdb_options_t *grouped_options;
    rocksdb_options_t *biometric_options;
    rocksdb_block_based_table_options_t *grouped_table_options;
    rocksdb_block_based_table_options_t *biometric_table_options;
    rocksdb_writeoptions_t *write_options;
    rocksdb_readoptions_t *read_options;
    rocksdb_readoptions_t *read_once_options; /* rl_store_read_once: no block cache fill */
    rocksdb_column_family_handle_t *cf[RL_CF_COUNT];
    char *path;
    int schema_version;
};

struct rl_store_batch {
    rl_store *store;
    rocksdb_writebatch_t *wb;
};

/* RocksDB reports errors as malloc'd strings; turn one into an rl_error and free it. */
static rl_error *rl_store_error(char *rocks_err, const char *file, int line, const char *doing)
{
    rl_code code = RL_ESTORE;
    /* RocksDB's own words for a held LOCK file (another process; this one).
     * Not any "lock": a damaged table file says "block checksum mismatch",
     * and damage taken for a running server was refused as such by restore. */
    if (strstr(rocks_err, "While lock file") || strstr(rocks_err, "lock hold by current process"))
        code = RL_ECONFLICT;
    else if (strncmp(rocks_err, "IO error", 8) == 0)
        code = RL_EIO;
    rl_error *err = rl_error_new(code, file, line, "%s: %s%s", doing, rocks_err,
                                 code == RL_ECONFLICT ? " (is another ridgeline using this folder?)" : "");
    rocksdb_free(rocks_err);
    return err;
}
#define RL_STORE_CHECK(rocks_err, doing)                                          \
    do {                                                                          \
        if (rocks_err) {                                                          \
            err = rl_store_error((rocks_err), __FILE__, __LINE__, (doing));       \
            goto cleanup;                                                         \
        }                                                                         \
    } while (0)

static rl_error *rl_store_mkdirs(const char *dir)
{
    rl_error *err = NULL;
    char *path = strdup(dir);
    if (!path)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            /* 0700: the folder will hold patient data. */
            if (mkdir(path, 0700) != 0 && errno != EEXIST)
                RL_FAIL(RL_EIO, "cannot create folder %s: %s", path, strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        RL_FAIL(RL_EIO, "%s is not a folder", dir);
cleanup:
    free(path);
    return err;
}

/* Refuses stores holding column families this version does not know: they
 * were made by a newer Ridgeline, and opening them would hide its data. */
static rl_error *rl_store_check_families(rocksdb_options_t *options, const char *dir, bool must_exist)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(options, dir, &n, &rocks_err);
    if (rocks_err) {
        /* A brand new folder has no database yet; that is fine. */
        rocksdb_free(rocks_err);
        if (must_exist)
            RL_FAIL(RL_ENOTFOUND, "the folder holds no Ridgeline store (none was made)");
        goto cleanup;
    }
    /* Another program's RocksDB database is not a store to add families to:
     * every Ridgeline store has its records family. */
    bool ours = false;
    for (size_t i = 0; i < n; i++)
        ours = ours || strcmp(names[i], rl_cf_names[RL_CF_RECORDS]) == 0;
    if (must_exist && !ours)
        RL_FAIL(RL_ENOTFOUND, "the folder holds a RocksDB database that is not a Ridgeline store (nothing was "
                "written to it)");
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (int c = 0; c < RL_CF_COUNT; c++)
            known = known || strcmp(names[i], rl_cf_names[c]) == 0;
        if (!known)
            RL_FAIL(RL_EUNSUPPORTED,
                    "store %s has a column family \"%s\" unknown to this version: "
                    "it was written by a newer Ridgeline",
                    dir, names[i]);
    }
cleanup:
    if (names)
        rocksdb_list_column_families_destroy(names, n);
    return err;
}

static rl_error *rl_store_check_schema(rl_store *s)
{
    rl_error *err = NULL;
    char *value = NULL;
    size_t len = 0;
    bool found = false;
    rl_store_batch *batch = NULL;
    RL_TRY(rl_store_get(s, RL_CF_META, rl_schema_key, sizeof rl_schema_key - 1, &value, &len, &found));
    long v = 0;
    if (found) {
        char *end = NULL;
        v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || v <= 0)
            RL_FAIL(RL_ESTORE, "store %s: unreadable schema version", s->path);
        if (v > RL_STORE_SCHEMA_VERSION)
            RL_FAIL(RL_EUNSUPPORTED,
                    "store %s has schema version %ld, newer than this Ridgeline's %d: upgrade Ridgeline",
                    s->path, v, RL_STORE_SCHEMA_VERSION);
    }
    if (!found && s->must_exist)
        RL_FAIL(RL_ENOTFOUND, "store %s has no schema version: its making was interrupted, or it is not a "
                "Ridgeline store", s->path);
    if (v < RL_STORE_SCHEMA_VERSION) {
        /* New, or older. 1 -> 2 and 2 -> 3 change nothing the store knows:
         * the registry rewrites its families at open under a marker of its
         * own, which an interruption leaves unset, and version 3 features are
         * written only from now on; the number keeps earlier versions out. */
        char text[16];
        int n = snprintf(text, sizeof text, "%d", RL_STORE_SCHEMA_VERSION);
        RL_TRY(rl_store_batch_new(s, &batch));
        rl_store_batch_put(batch, RL_CF_META, rl_schema_key, sizeof rl_schema_key - 1, text, (size_t)n);
        RL_TRY(rl_store_write(s, batch));
        if (v > 0)
            rl_log(RL_LOG_INFO, "store", "schema upgraded", "from=%ld to=%d", v, RL_STORE_SCHEMA_VERSION);
    }
    s->schema_version = RL_STORE_SCHEMA_VERSION;
cleanup:
    free(value);
    rl_store_batch_destroy(batch);
    return err;
}

rl_error *rl_store_open(const char *dir, const rl_store_options *opts, rl_store **out)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    rocksdb_options_t *cf_options[RL_CF_COUNT] = {0};
    *out = NULL;
    rl_store *s = calloc(1, sizeof *s);
    if (!s)
        RL_FAIL(RL_ENOMEM, "out of memory");
    s->path = strdup(dir);
    if (!s->path)
        RL_FAIL(RL_ENOMEM, "out of memory");
    pthread_mutex_init(&s->sync_lock, NULL);
    pthread_cond_init(&s->synced, NULL);
    s->sync = opts && opts->sync;
    s->group_commit_us = opts ? opts->group_commit_us : 0;
    bool must_exist = opts && opts->must_exist;
    s->must_exist = must_exist;
    if (must_exist) {
        /* Every RocksDB database has CURRENT; looking first keeps a mistyped
         * folder from gaining RocksDB's LOCK and log files. */
        char current[4200];
        snprintf(current, sizeof current, "%s/CURRENT", dir);
        if (access(current, F_OK) != 0)
            RL_FAIL(RL_ENOTFOUND, "the folder holds no Ridgeline store (none was made)");
    } else {
        RL_TRY(rl_store_mkdirs(dir));
    }

    s->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->options, !must_exist);
    rocksdb_options_set_create_missing_column_families(s->options, 1);
    rocksdb_options_set_paranoid_checks(s->options, 1);
    rocksdb_options_increase_parallelism(s->options, 2);
    /* Keep RocksDB's own info log small; it holds no record contents. */
    rocksdb_options_set_max_log_file_size(s->options, 4 << 20);
    rocksdb_options_set_keep_log_file_num(s->options, 4);
    /* Most lookups on the write path miss (a new source key, no not-a-match
     * pair): bloom filters answer those without reading data blocks, in the
     * memtable and in table files alike. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->options, 0.05);
    rocksdb_options_set_memtable_whole_key_filtering(s->options, 1);
    s->block_cache = rocksdb_cache_create_lru(opts && opts->cache_bytes ? opts->cache_bytes : (64u << 20));
    s->table_options = rl_table_options(s->block_cache, true, true);
    rocksdb_options_set_block_based_table_factory(s->options, s->table_options);
    RL_TRY(rl_store_check_families(s->options, dir, must_exist));

    /* Append-mostly families that are written on every registration and read
     * only by operator queries keep their memtable as a plain vector: an
     * append instead of a skip-list insert (sorted when a query reads it). */
    rocksdb_options_set_allow_concurrent_memtable_write(s->options, 0);
    s->append_options = rocksdb_options_create_copy(s->options);
    rocksdb_options_set_memtable_vector_rep(s->append_options);
    /* Only operator queries read such a memtable a key at a time (an audit
     * entry, a history event), for keys that are there, where a bloom answers
     * "maybe" anyway: without it each key is a plain append. Measured on bench
     * match at 200k (here and for the blocking family), the RocksDB write
     * of a registration, done in the registry's one-at-a-time step: 52-57 ->
     * 44-49 us of CPU. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->append_options, 0);
    /* Posting families are only ever read a group at a time (and scanned
     * whole by check): filters on the group, none on whole keys. */
    s->grouped_options = rocksdb_options_create_copy(s->options);
    rocksdb_options_set_prefix_extractor(
        s->grouped_options, rocksdb_slicetransform_create(NULL, rl_group_destroy, rl_group_transform,
                                                          rl_group_in_domain, rl_group_in_range, rl_group_name));
    rocksdb_options_set_memtable_whole_key_filtering(s->grouped_options, 0);
    s->grouped_table_options = rl_table_options(s->block_cache, false, true);
    rocksdb_options_set_block_based_table_factory(s->grouped_options, s->grouped_table_options);
    /* Fingerprint templates and features, read back thousands a 1:N search
     * (rl_store_read_once, which leaves the block cache alone): LZ4, whose
     * decompression is the cheapest (Snappy's was 28% of the CPU of reading
     * 6,400 fingers; LZ4 adds some 10 ms to that, where no compression would
     * take 2.5 times the disk and page cache); and the index and
     * filter of each table file held with it in memory (some 40 MB at a
     * million fingers), not in the block cache, where such reads would have
     * to read them back every time. (Debian's librocksdb links LZ4; a library
     * built without it refuses to open the store and says why.) */
    s->biometric_table_options = rl_table_options(s->block_cache, true, false);
    s->biometric_options = rocksdb_options_create_copy(s->options);
    rocksdb_options_set_compression(s->biometric_options, rocksdb_lz4_compression);
    rocksdb_options_set_block_based_table_factory(s->biometric_options, s->biometric_table_options);
    const char *names[RL_CF_COUNT];
    for (int c = 0; c < RL_CF_COUNT; c++) {
        names[c] = rl_cf_names[c];
        /* The blocking and search families too: read whole, the registry
         * keeps its copy in memory (registry_postings.c). */
        bool append = c == RL_CF_AUDIT || c == RL_CF_AUDIT_SUBJECT || c == RL_CF_HISTORY || c == RL_CF_VERSIONS ||
                      c == RL_CF_BLOCKING || c == RL_CF_SEARCH;
        cf_options[c] = append                ? s->append_options
                        : rl_cf_grouped(c)    ? s->grouped_options
                        : c == RL_CF_TEMPLATES ? s->biometric_options
                                              : s->options;
    }
    s->db = rocksdb_open_column_families(s->options, dir, RL_CF_COUNT, names,
                                         (const rocksdb_options_t *const *)cf_options, s->cf,
                                         &rocks_err);
    RL_STORE_CHECK(rocks_err, "opening store");

    /* Writes go to the WAL unsynced; rl_store_sync() makes them durable in groups. */
    s->write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_options, 0);
    s->read_options = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->read_options, 1);
    s->read_once_options = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->read_once_options, 1);
    rocksdb_readoptions_set_fill_cache(s->read_once_options, 0);

    RL_TRY(rl_store_check_schema(s));
    *out = s;
    s = NULL;
cleanup:
    if (err)
        err = rl_error_wrap(err, "store %s", dir);
    rl_store_close(s);
    return err;
}

void rl_store_close(rl_store *s)
{
    if (!s)
        return;
    if (s->db) {
        /* Flush memtables so the next open does not replay the whole WAL. */
        char *rocks_err = NULL;
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        for (int c = 0; c < RL_CF_COUNT; c++) {
            rocksdb_flush_cf(s->db, fo, s->cf[c], &rocks_err);
            if (rocks_err) {
                rocksdb_free(rocks_err); /* the WAL still has it; replayed at next open */
                rocks_err = NULL;
            }
        }
        rocksdb_flushoptions_destroy(fo);
        for (int c = 0; c < RL_CF_COUNT; c++)
            if (s->cf[c])
                rocksdb_column_family_handle_destroy(s->cf[c]);
        rocksdb_close(s->db);
    }
    if (s->write_options)
        rocksdb_writeoptions_destroy(s->write_options);
    if (s->read_options)
        rocksdb_readoptions_destroy(s->read_options);
    if (s->read_once_options)
        rocksdb_readoptions_destroy(s->read_once_options);
    if (s->options)
        rocksdb_options_destroy(s->options);
    if (s->append_options)
        rocksdb_options_destroy(s->append_options);
    if (s->grouped_options)
        rocksdb_options_destroy(s->grouped_options);
    if (s->biometric_options)
        rocksdb_options_destroy(s->biometric_options);
    if (s->grouped_table_options)
        rocksdb_block_based_options_destroy(s->grouped_table_options);
    if (s->biometric_table_options)
        rocksdb_block_based_options_destroy(s->biometric_table_options);
    if (s->table_options)
        rocksdb_block_based_options_destroy(s->table_options);
    if (s->block_cache)
        rocksdb_cache_destroy(s->block_cache);
    pthread_mutex_destroy(&s->sync_lock);
    pthread_cond_destroy(&s->synced);
    free(s->path);
    free(s);
}

const char *rl_store_path(const rl_store *s) { return s->path; }

int rl_store_schema_version(const rl_store *s) { return s->schema_version; }

rl_error *rl_store_get(rl_store *s, rl_cf cf, const void *key, size_t key_len, char **value,
                       size_t *value_len, bool *found)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    *value = NULL;
    *value_len = 0;
    *found = false;
    size_t len = 0;
    char *raw = rocksdb_get_cf(s->db, s->read_options, s->cf[cf], key, key_len, &len, &rocks_err);
    RL_STORE_CHECK(rocks_err, "reading store");
    if (!raw)
        goto cleanup;
    /* Copy into our allocator with a NUL so callers can parse text directly. */
    char *copy = malloc(len + 1);
    if (!copy) {
        rocksdb_free(raw);
        RL_FAIL(RL_ENOMEM, "out of memory reading %zu bytes", len);
    }
    memcpy(copy, raw, len);
    copy[len] = '\0';
    rocksdb_free(raw);
    *value = copy;
    *value_len = len;
    *found = true;
cleanup:
    return err;
}

rl_error *rl_store_read_once(rl_store *s, rl_cf cf, const void *key, size_t key_len, rl_store_view_fn fn, void *ctx,
                             bool *found)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    *found = false;
    rocksdb_pinnableslice_t *pinned =
        rocksdb_get_pinned_cf(s->db, s->read_once_options, s->cf[cf], key, key_len, &rocks_err);
    RL_STORE_CHECK(rocks_err, "reading store");
    if (!pinned)
        goto cleanup;
    size_t len = 0;
    const char *value = rocksdb_pinnableslice_value(pinned, &len);
    *found = true;
    RL_TRY(fn(ctx, value, len));
cleanup:
    rocksdb_pinnableslice_destroy(pinned);
    return err;
}

rl_error *rl_store_batch_new(rl_store *s, rl_store_batch **out)
{
    *out = NULL;
    rl_store_batch *b = calloc(1, sizeof *b);
    if (!b)
        return RL_ERR(RL_ENOMEM, "out of memory");
    b->store = s;
    b->wb = rocksdb_writebatch_create();
    *out = b;
    return NULL;
}

void rl_store_batch_put(rl_store_batch *b, rl_cf cf, const void *key, size_t key_len,
                        const void *value, size_t value_len)
{
    rocksdb_writebatch_put_cf(b->wb, b->store->cf[cf], key, key_len, value, value_len);
}

void rl_store_batch_delete(rl_store_batch *b, rl_cf cf, const void *key, size_t key_len)
{
    rocksdb_writebatch_delete_cf(b->wb, b->store->cf[cf], key, key_len);
}

void rl_store_batch_destroy(rl_store_batch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

rl_error *rl_store_apply(rl_store *s, rl_store_batch *b, uint64_t *ticket)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    rocksdb_write(s->db, s->write_options, b->wb, &rocks_err);
    RL_STORE_CHECK(rocks_err, "writing store");
    /* Every write up to this sequence number, ours included, is in the WAL. */
    *ticket = rocksdb_get_latest_sequence_number(s->db);
cleanup:
    return err;
}

uint64_t rl_store_ticket_now(rl_store *s) { return rocksdb_get_latest_sequence_number(s->db); }

rl_error *rl_store_sync(rl_store *s, uint64_t ticket)
{
    rl_error *err = NULL;
    if (!s->sync)
        return NULL;
    pthread_mutex_lock(&s->sync_lock);
    while (s->durable_seq < ticket && !err) {
        if (s->syncing) {
            /* Someone is syncing; their fsync may or may not cover us: re-check after. */
            s->waiters++;
            pthread_cond_wait(&s->synced, &s->sync_lock);
            s->waiters--;
            continue;
        }
        s->syncing = true;
        bool busy = s->waiters > 0;
        pthread_mutex_unlock(&s->sync_lock);
        if (busy && s->group_commit_us > 0) {
            /* Others are queued behind us: give the writers still applying a
             * moment to join this fsync rather than pay for one each. */
            struct timespec ts = {0, (long)s->group_commit_us * 1000L};
            nanosleep(&ts, NULL);
        }
        uint64_t target = rocksdb_get_latest_sequence_number(s->db);
        char *rocks_err = NULL;
        rocksdb_flush_wal(s->db, 1, &rocks_err);
        if (rocks_err)
            err = rl_store_error(rocks_err, __FILE__, __LINE__, "syncing the write-ahead log");
        pthread_mutex_lock(&s->sync_lock);
        s->syncing = false;
        if (!err && target > s->durable_seq)
            s->durable_seq = target;
        pthread_cond_broadcast(&s->synced);
    }
    pthread_mutex_unlock(&s->sync_lock);
    return err;
}

rl_error *rl_store_flush(rl_store *s)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    rocksdb_flush_wal(s->db, 1, &rocks_err);
    RL_STORE_CHECK(rocks_err, "syncing the write-ahead log");
cleanup:
    return err;
}

rl_error *rl_store_write(rl_store *s, rl_store_batch *b)
{
    rl_error *err = NULL;
    uint64_t ticket = 0;
    RL_TRY(rl_store_apply(s, b, &ticket));
    RL_TRY(rl_store_sync(s, ticket));
cleanup:
    return err;
}

struct rl_store_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    char *lower, *upper; /* bounds must outlive the iterator */
};

/* An iterator not yet created, with its read options: checksums verified;
 * in key order over the whole family (bounds, not prefix filters, say where
 * it ends), or else within the group it was sought to. */
static rl_store_iter *rl_store_iter_alloc(bool total_order)
{
    rl_store_iter *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(it->ro, 1);
    if (total_order)
        rocksdb_readoptions_set_total_order_seek(it->ro, 1);
    else
        rocksdb_readoptions_set_prefix_same_as_start(it->ro, 1);
    return it;
}

rl_error *rl_store_iter_new(rl_store *s, rl_cf cf, const void *lower, size_t lower_len,
                            const void *upper, size_t upper_len, rl_store_iter **out)
{
    rl_error *err = NULL;
    *out = NULL;
    rl_store_iter *it = rl_store_iter_alloc(true);
    if (!it)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (lower) {
        it->lower = malloc(lower_len ? lower_len : 1);
        if (!it->lower)
            RL_FAIL(RL_ENOMEM, "out of memory");
        memcpy(it->lower, lower, lower_len);
        rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lower, lower_len);
    }
    if (upper) {
        it->upper = malloc(upper_len ? upper_len : 1);
        if (!it->upper)
            RL_FAIL(RL_ENOMEM, "out of memory");
        memcpy(it->upper, upper, upper_len);
        rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->upper, upper_len);
    }
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
    if (lower)
        rocksdb_iter_seek(it->it, it->lower, lower_len);
    else
        rocksdb_iter_seek_to_first(it->it);
    *out = it;
    it = NULL;
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

rl_error *rl_store_iter_prefix(rl_store *s, rl_cf cf, const void *prefix, size_t prefix_len,
                               rl_store_iter **out)
{
    rl_error *err = NULL;
    /* Upper bound: the prefix with its last byte below 0xff incremented, the rest cut. */
    unsigned char *upper = malloc(prefix_len ? prefix_len : 1);
    if (!upper)
        RL_FAIL(RL_ENOMEM, "out of memory");
    memcpy(upper, prefix, prefix_len);
    size_t n = prefix_len;
    while (n > 0 && upper[n - 1] == 0xff)
        n--;
    if (n > 0)
        upper[n - 1]++;
    RL_TRY(rl_store_iter_new(s, cf, prefix, prefix_len, n > 0 ? upper : NULL, n, out));
cleanup:
    free(upper);
    return err;
}

rl_error *rl_store_iter_group(rl_store *s, rl_cf cf, rl_store_iter **out)
{
    rl_error *err = NULL;
    *out = NULL;
    if (!rl_cf_grouped(cf))
        RL_FAIL(RL_EINTERNAL, "family %s is not read by group", rl_cf_names[cf]);
    rl_store_iter *it = rl_store_iter_alloc(false);
    if (!it)
        RL_FAIL(RL_ENOMEM, "out of memory");
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
    *out = it;
cleanup:
    return err;
}

void rl_store_iter_seek(rl_store_iter *it, const void *key, size_t key_len)
{
    rocksdb_iter_seek(it->it, key, key_len);
}

void rl_store_iter_seek_last(rl_store_iter *it) { rocksdb_iter_seek_to_last(it->it); }

bool rl_store_iter_valid(const rl_store_iter *it) { return rocksdb_iter_valid(it->it) != 0; }

void rl_store_iter_next(rl_store_iter *it) { rocksdb_iter_next(it->it); }

const char *rl_store_iter_key(const rl_store_iter *it, size_t *len)
{
    return rocksdb_iter_key(it->it, len);
}

const char *rl_store_iter_value(const rl_store_iter *it, size_t *len)
{
    return rocksdb_iter_value(it->it, len);
}

rl_error *rl_store_iter_status(const rl_store_iter *it)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    rocksdb_iter_get_error(it->it, &rocks_err);
    RL_STORE_CHECK(rocks_err, "iterating store");
cleanup:
    return err;
}

void rl_store_iter_destroy(rl_store_iter *it)
{
    if (!it)
        return;
    if (it->it)
        rocksdb_iter_destroy(it->it);
    if (it->ro)
        rocksdb_readoptions_destroy(it->ro);
    free(it->lower);
    free(it->upper);
    free(it);
}

/* Makes every file in dir, and dir, its owner's only (a checkpoint's hard
 * links share their inode with the store's own files, which go 0600 too). */
static rl_error *rl_store_owner_only(const char *dir)
{
    rl_error *err = NULL;
    DIR *d = opendir(dir);
    if (!d)
        RL_FAIL(RL_EIO, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fchmodat(dirfd(d), e->d_name, 0600, 0) != 0)
            RL_FAIL(RL_EIO, "cannot make %s/%s private: %s", dir, e->d_name, strerror(errno));
    }
    if (chmod(dir, 0700) != 0 || fsync(dirfd(d)) != 0)
        RL_FAIL(RL_EIO, "cannot make %s private: %s", dir, strerror(errno));
cleanup:
    if (d)
        closedir(d);
    return err;
}

/* Refuses a backup folder inside the store's: RocksDB leaves it there, and
 * it would go wherever the store goes (aside at a restore, away with it when
 * the disk or the folder is lost), so it would be no backup. */
static rl_error *rl_store_outside(rl_store *s, const char *dir)
{
    rl_error *err = NULL;
    char parent[RL_STORE_PATH_MAX], real_parent[PATH_MAX], real_store[PATH_MAX];
    rl_fs_parent(dir, parent, sizeof parent);
    if (!realpath(parent, real_parent))
        RL_FAIL(RL_EINVAL, "backup folder %s: cannot use %s: %s", dir, parent, strerror(errno));
    if (!realpath(s->path, real_store))
        RL_FAIL(RL_EIO, "cannot resolve the store folder %s: %s", s->path, strerror(errno));
    size_t n = strlen(real_store);
    if (strncmp(real_parent, real_store, n) == 0 && (real_parent[n] == '\0' || real_parent[n] == '/'))
        RL_FAIL(RL_EINVAL, "backup folder %s is inside the store folder %s: name one outside it", dir, s->path);
cleanup:
    return err;
}

rl_error *rl_store_checkpoint(rl_store *s, const char *dir)
{
    rl_error *err = NULL;
    char *rocks_err = NULL;
    rocksdb_checkpoint_t *cp = NULL;
    char partial[RL_STORE_PATH_MAX], inner[RL_STORE_PATH_MAX + 8];
    bool made = false; /* partial is a folder of ours: removed, whatever it holds, at the end */
    struct stat st;
    if (stat(dir, &st) == 0)
        RL_FAIL(RL_ECONFLICT, "backup folder %s already exists; name a new one", dir);
    /* RocksDB makes the folder 0755 and the files it copies 0644: patient
     * data readable by every user. The copy is made inside a folder of ours
     * (mkdtemp: 0700), made private, then renamed into place: DIR appears
     * whole and private, or not at all (an interruption leaves DIR.partial-*). */
    RL_TRY(rl_store_outside(s, dir));
    if (snprintf(partial, sizeof partial, "%s.partial-XXXXXX", dir) >= (int)sizeof partial)
        RL_FAIL(RL_EINVAL, "backup folder name too long");
    if (!mkdtemp(partial))
        RL_FAIL(RL_EIO, "cannot create a folder beside %s: %s", dir, strerror(errno));
    made = true;
    snprintf(inner, sizeof inner, "%s/store", partial);
    cp = rocksdb_checkpoint_object_create(s->db, &rocks_err);
    RL_STORE_CHECK(rocks_err, "starting checkpoint");
    /* log_size_for_flush 0: flush memtables so the copy needs no WAL replay. */
    rocksdb_checkpoint_create(cp, inner, 0, &rocks_err);
    RL_STORE_CHECK(rocks_err, "writing checkpoint");
    RL_TRY(rl_store_owner_only(inner));
    if (stat(dir, &st) == 0)
        RL_FAIL(RL_ECONFLICT, "backup folder %s appeared meanwhile; name a new one", dir);
    if (rename(inner, dir) != 0)
        RL_FAIL(RL_EIO, "cannot move the backup into %s: %s", dir, strerror(errno));
    RL_TRY(rl_fs_sync_parent(dir));
cleanup:
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    /* Empty once the copy moved into place; else a failed copy, removed. */
    if (made)
        rl_error_free(rl_fs_remove_tree(partial));
    return err;
}

rl_error *rl_store_disk_bytes(rl_store *s, uint64_t *bytes)
{
    rl_error *err = NULL;
    *bytes = 0;
    DIR *d = opendir(s->path);
    if (!d)
        RL_FAIL(RL_EIO, "cannot list %s: %s", s->path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[RL_STORE_PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", s->path, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
cleanup:
    return err;
}
