/* Unit tests of store/: open, atomic batches, persistence, schema and lock checks. */
#include <dirent.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "tests/harness.h"

static const rl_store_options sync_on = {.sync = true};

static int setup(void **state)
{
    *state = rl_test_tmpdir("store");
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    rl_test_rmtree(*state);
    free(*state);
    return 0;
}

static char *sub(const char *dir, const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static void put(rl_store *s, const char *k, const char *v)
{
    rl_store_batch *b = NULL;
    assert_null(rl_store_batch_new(s, &b));
    rl_store_batch_put(b, RL_CF_RECORDS, k, strlen(k), v, strlen(v));
    assert_null(rl_store_write(s, b));
    rl_store_batch_destroy(b);
}

static void check_value(rl_store *s, const char *k, const char *want)
{
    char *v = NULL;
    size_t len = 0;
    bool found = false;
    assert_null(rl_store_get(s, RL_CF_RECORDS, k, strlen(k), &v, &len, &found));
    if (!want) {
        assert_false(found);
        assert_null(v);
        return;
    }
    assert_true(found);
    assert_int_equal(len, strlen(want));
    assert_string_equal(v, want);
    free(v);
}

static void test_create_put_get_reopen(void **state)
{
    char *dir = sub(*state, "nested/store"); /* parents are created too */
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    assert_int_equal(rl_store_schema_version(s), RL_STORE_SCHEMA_VERSION);
    assert_string_equal(rl_store_path(s), dir);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    put(s, "a", "{\"x\":1}");
    check_value(s, "a", "{\"x\":1}");
    check_value(s, "missing", NULL);
    rl_store_close(s);
    s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    check_value(s, "a", "{\"x\":1}");
    rl_store_close(s);
    rl_store_close(NULL);
    free(dir);
}

/* A store (made by rl_store_open if new) opened with the plain RocksDB C API,
 * every family with options o: what another version of Ridgeline would have
 * written, as tests simulate it. */
typedef struct raw_db {
    rocksdb_t *db;
    char **names;
    size_t n;
    rocksdb_column_family_handle_t *cf[64];
} raw_db;

static void raw_open(const char *dir, rocksdb_options_t *o, raw_db *r)
{
    rl_store *s = NULL; /* a store as this Ridgeline makes it, first */
    assert_null(rl_store_open(dir, &sync_on, &s));
    rl_store_close(s);
    char *rerr = NULL;
    r->names = rocksdb_list_column_families(o, dir, &r->n, &rerr);
    assert_null(rerr);
    assert_true(r->n <= 64);
    const rocksdb_options_t *opts[64];
    for (size_t i = 0; i < r->n; i++)
        opts[i] = o;
    r->db = rocksdb_open_column_families(o, dir, (int)r->n, (const char *const *)r->names, opts, r->cf, &rerr);
    assert_null(rerr);
}

static void raw_close(raw_db *r)
{
    for (size_t i = 0; i < r->n; i++)
        rocksdb_column_family_handle_destroy(r->cf[i]);
    rocksdb_close(r->db);
    rocksdb_list_column_families_destroy(r->names, r->n);
}

/* rl_store_read_once's callback: keeps a copy of what it saw, or fails when asked to. */
typedef struct seen {
    char bytes[16384];
    size_t len;
    int calls;
    bool fail;
} seen;

static rl_error *look(void *ctx, const void *value, size_t len)
{
    seen *w = ctx;
    w->calls++;
    if (w->fail)
        return RL_ERR(RL_EINVAL, "the callback's own error");
    assert_true(len <= sizeof w->bytes);
    memcpy(w->bytes, value, len);
    w->len = len;
    return NULL;
}

/* n bytes (malloc'd, the caller frees them) that compress, so that a table
 * file holds them compressed, as feature records do: runs of a few byte values. */
static char *finger_like(size_t n)
{
    char *out = malloc(n);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((i / 24) % 7 == 0 ? 0xff : (i * 2654435761u) >> 29);
    return out;
}

/* Reads "F1" once and checks it is want (n bytes), "F2" is missing, and a
 * callback's error comes back. */
static void check_read_once(rl_store *s, const char *want, size_t n)
{
    seen *w = calloc(1, sizeof *w);
    assert_non_null(w);
    bool found = false;
    assert_null(rl_store_read_once(s, RL_CF_TEMPLATES, "F1", 2, look, w, &found));
    assert_true(found);
    assert_int_equal(w->calls, 1);
    assert_int_equal(w->len, n);
    assert_memory_equal(w->bytes, want, n);
    memset(w, 0, sizeof *w);
    found = true;
    assert_null(rl_store_read_once(s, RL_CF_TEMPLATES, "F2", 2, look, w, &found));
    assert_false(found);
    assert_int_equal(w->calls, 0);
    memset(w, 0, sizeof *w);
    w->fail = true;
    rl_error *err = rl_store_read_once(s, RL_CF_TEMPLATES, "F1", 2, look, w, &found);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_true(found);
    rl_error_free(err);
    free(w);
}

/* A value read once, in place: the same bytes as were written, from the
 * memtable and from a table file (the templates family's, LZ4-compressed). */
static void test_read_once(void **state)
{
    char *dir = sub(*state, "once");
    enum { N = 9000 };
    char *value = finger_like(N);
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    rl_store_batch *b = NULL;
    assert_null(rl_store_batch_new(s, &b));
    rl_store_batch_put(b, RL_CF_TEMPLATES, "F1", 2, value, N);
    assert_null(rl_store_write(s, b));
    rl_store_batch_destroy(b);
    check_read_once(s, value, N); /* the memtable */
    rl_store_close(s);            /* flushed: a table file */
    s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    check_read_once(s, value, N);
    rl_store_close(s);
    free(value);
    free(dir);
}

/* A templates family written before (RocksDB's default compression, Snappy,
 * and the shared table options) still reads, by rl_store_get and read once. */
static void test_templates_written_before(void **state)
{
    char *dir = sub(*state, "snappy");
    rl_store *s = NULL;
    enum { N = 9000 };
    char *value = finger_like(N);
    char *rerr = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_compression(o, rocksdb_snappy_compression);
    raw_db r;
    raw_open(dir, o, &r);
    size_t templates = r.n;
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.names[i], "templates") == 0)
            templates = i;
    assert_true(templates < r.n);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(r.db, wo, r.cf[templates], "F1", 2, value, N, &rerr);
    assert_null(rerr);
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush_cf(r.db, fo, r.cf[templates], &rerr);
    assert_null(rerr);
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writeoptions_destroy(wo);
    raw_close(&r);
    rocksdb_options_destroy(o);

    assert_null(rl_store_open(dir, &sync_on, &s));
    check_read_once(s, value, N);
    char *got = NULL;
    size_t len = 0;
    bool found = false;
    assert_null(rl_store_get(s, RL_CF_TEMPLATES, "F1", 2, &got, &len, &found));
    assert_true(found);
    assert_int_equal(len, N);
    assert_memory_equal(got, value, N);
    free(got);
    rl_store_close(s);
    free(value);
    free(dir);
}

static void test_batch_is_atomic_and_ordered(void **state)
{
    char *dir = sub(*state, "batch");
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    put(s, "gone", "1");
    rl_store_batch *b = NULL;
    assert_null(rl_store_batch_new(s, &b));
    rl_store_batch_put(b, RL_CF_RECORDS, "k1", 2, "v1", 2);
    rl_store_batch_put(b, RL_CF_RECORDS, "k2", 2, "v2", 2);
    rl_store_batch_put(b, RL_CF_RECORDS, "k1", 2, "v1b", 3); /* later op in a batch wins */
    rl_store_batch_delete(b, RL_CF_RECORDS, "gone", 4);
    /* nothing is visible before the write */
    check_value(s, "k1", NULL);
    check_value(s, "gone", "1");
    assert_null(rl_store_write(s, b));
    rl_store_batch_destroy(b);
    rl_store_batch_destroy(NULL);
    check_value(s, "k1", "v1b");
    check_value(s, "k2", "v2");
    check_value(s, "gone", NULL);
    rl_store_close(s);
    free(dir);
}

static void test_second_open_conflicts(void **state)
{
    char *dir = sub(*state, "locked");
    rl_store *a = NULL, *b = NULL;
    assert_null(rl_store_open(dir, &sync_on, &a));
    rl_error *err = rl_store_open(dir, &sync_on, &b);
    assert_non_null(err);
    assert_null(b);
    assert_int_equal(rl_error_code(err), RL_ECONFLICT);
    assert_non_null(strstr(rl_error_message(err), "another ridgeline"));
    rl_error_free(err);
    rl_store_close(a);
    free(dir);
}

/* Damage is not a lock: RocksDB's "block checksum mismatch" once read as one
 * ("b-lock"), so a damaged store was reported as in use by another ridgeline,
 * check asked a server that was not there, and restore refused to replace it. */
static void test_damage_is_not_a_conflict(void **state)
{
    char *dir = sub(*state, "damaged");
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    put(s, "k1", "v1");
    rl_store_close(s); /* flushed: every family's data is in table files */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int damaged = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sst") != 0)
            continue;
        char *file = sub(dir, e->d_name);
        FILE *f = fopen(file, "r+");
        assert_non_null(f);
        assert_int_equal(fseek(f, 20, SEEK_SET), 0); /* inside the first data block */
        assert_int_equal(fwrite("XXXX", 1, 4, f), 4);
        fclose(f);
        free(file);
        damaged++;
    }
    closedir(d);
    assert_true(damaged > 0);
    rl_error *err = rl_store_open(dir, &sync_on, &s);
    assert_non_null(err);
    assert_null(s);
    assert_int_equal(rl_error_code(err), RL_ESTORE);
    assert_null(strstr(rl_error_message(err), "another ridgeline"));
    rl_error_free(err);
    free(dir);
}

/* A backup holds patient data: RocksDB's checkpoint made its folder 0755 and
 * copied files 0644, readable by every user of the machine. A backup inside
 * the store folder was made there, to go wherever the store goes. */
static void test_checkpoint_is_owner_only(void **state)
{
    char *dir = sub(*state, "live"), *copy = sub(*state, "copy");
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    put(s, "k1", "v1");
    assert_null(rl_store_checkpoint(s, copy));
    rl_error *err = rl_store_checkpoint(s, copy);
    assert_int_equal(rl_error_code(err), RL_ECONFLICT); /* never into an existing folder */
    rl_error_free(err);
    /* Nor inside the store's own folder, where it would be no backup. */
    char *inside = sub(dir, "backup");
    err = rl_store_checkpoint(s, inside);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_non_null(strstr(rl_error_message(err), "inside the store folder"));
    rl_error_free(err);
    struct stat st;
    assert_int_not_equal(stat(inside, &st), 0);
    free(inside);
    rl_store_close(s);
    assert_int_equal(stat(copy, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    DIR *d = opendir(copy);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *file = sub(copy, e->d_name);
        assert_int_equal(stat(file, &st), 0);
        if (st.st_mode & 077)
            fail_msg("%s is mode %o", file, st.st_mode & 0777);
        free(file);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
    /* Nothing left beside it, and the copy opens with its data. */
    d = opendir(*state);
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".partial-"));
    closedir(d);
    assert_null(rl_store_open(copy, &sync_on, &s));
    check_value(s, "k1", "v1");
    rl_store_close(s);
    free(dir);
    free(copy);
}

/* A store in dir whose meta says schema version `version`. */
static void store_with_schema(const char *dir, const char *version)
{
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    rl_store_batch *b = NULL;
    assert_null(rl_store_batch_new(s, &b));
    rl_store_batch_put(b, RL_CF_META, "schema_version", 14, version, strlen(version));
    assert_null(rl_store_write(s, b));
    rl_store_batch_destroy(b);
    rl_store_close(s);
}

static void test_newer_schema_is_refused(void **state)
{
    char *dir = sub(*state, "newer");
    store_with_schema(dir, "99");
    rl_store *s = NULL;
    rl_error *err = rl_store_open(dir, &sync_on, &s);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
    assert_non_null(strstr(rl_error_message(err), "schema version 99"));
    assert_null(s);
    rl_error_free(err);
    free(dir);
}

/* An older schema is brought up to this one at open (and stays so). */
static void test_older_schema_is_upgraded(void **state)
{
    char *dir = sub(*state, "older");
    store_with_schema(dir, "1");
    for (int open = 0; open < 2; open++) {
        rl_store *s = NULL;
        assert_null(rl_store_open(dir, &sync_on, &s));
        assert_int_equal(rl_store_schema_version(s), RL_STORE_SCHEMA_VERSION);
        char *value = NULL;
        size_t len = 0;
        bool found = false;
        assert_null(rl_store_get(s, RL_CF_META, "schema_version", 14, &value, &len, &found));
        assert_true(found);
        assert_int_equal(strtol(value, NULL, 10), RL_STORE_SCHEMA_VERSION);
        free(value);
        rl_store_close(s);
    }
    free(dir);
}

static void test_unknown_column_family_is_refused(void **state)
{
    char *dir = sub(*state, "future");
    rl_store *s = NULL;
    /* Simulate a newer Ridgeline that added a column family. */
    char *rerr = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    raw_db r;
    raw_open(dir, o, &r);
    rocksdb_column_family_handle_t *extra = rocksdb_create_column_family(r.db, o, "fingerprints_v9", &rerr);
    assert_null(rerr);
    rocksdb_column_family_handle_destroy(extra);
    raw_close(&r);
    rocksdb_options_destroy(o);

    rl_error *err = rl_store_open(dir, &sync_on, &s);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
    assert_non_null(strstr(rl_error_message(err), "fingerprints_v9"));
    rl_error_free(err);
    free(dir);
}

/* The members of one group ("group \0 member" keys) read by a group iterator, as a string "a,b,". */
static void group_members(rl_store *s, rl_store_iter *it, const char *group, char *out, size_t size)
{
    char seek[64];
    int n = snprintf(seek, sizeof seek, "%s%c", group, '\0');
    out[0] = '\0';
    rl_store_iter_seek(it, seek, (size_t)n);
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        assert_true(klen > (size_t)n && memcmp(k, seek, (size_t)n) == 0); /* never past its group */
        snprintf(out + strlen(out), size - strlen(out), "%.*s,", (int)(klen - (size_t)n), k + n);
    }
    assert_null(rl_store_iter_status(it));
}

/* Posting families are read a group at a time, through filters on the group:
 * the same answers from memtables and from table files, and general iterators
 * still see the whole family in order. */
static void test_group_iterator(void **state)
{
    char *dir = sub(*state, "g");
    rl_store *s = NULL;
    assert_null(rl_store_open(dir, &sync_on, &s));
    static const char *const keys[][2] = {{"fs1|smith", "r2"}, {"fs1|smith", "r1"}, {"fs1|smithe", "r3"},
                                          {"fs1|smit", "r4"}, {"fs2|1970", "r1"}};
    for (int round = 0; round < 2; round++) {
        rl_store_batch *b = NULL;
        assert_null(rl_store_batch_new(s, &b));
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            char k[64];
            int n = snprintf(k, sizeof k, "%s%c%s", keys[i][0], '\0', keys[i][1]);
            rl_store_batch_put(b, RL_CF_IDENT, k, (size_t)n, "", 0);
        }
        assert_null(rl_store_write(s, b));
        rl_store_batch_destroy(b);
        if (round == 1) {
            /* Again from table files (and the written-twice keys from both). */
            rl_store_close(s);
            s = NULL;
            assert_null(rl_store_open(dir, &sync_on, &s));
        }
        rl_store_iter *it = NULL;
        char got[256];
        assert_null(rl_store_iter_group(s, RL_CF_IDENT, &it));
        group_members(s, it, "fs1|smith", got, sizeof got);
        assert_string_equal(got, "r1,r2,");
        group_members(s, it, "fs1|smit", got, sizeof got);
        assert_string_equal(got, "r4,");
        group_members(s, it, "fs1|nobody", got, sizeof got);
        assert_string_equal(got, "");
        group_members(s, it, "fs2|1970", got, sizeof got);
        assert_string_equal(got, "r1,");
        rl_store_iter_destroy(it);
        size_t count = 0;
        assert_null(rl_store_iter_new(s, RL_CF_IDENT, NULL, 0, NULL, 0, &it));
        for (; rl_store_iter_valid(it); rl_store_iter_next(it))
            count++;
        assert_int_equal(count, 5);
        rl_store_iter_destroy(it);
    }
    rl_store_iter *it = NULL;
    /* Families of one entry a record are no posting families. */
    const rl_cf others[2] = {RL_CF_RECORDS, RL_CF_BLOCKING};
    for (int i = 0; i < 2; i++) {
        rl_error *err = rl_store_iter_group(s, others[i], &it);
        assert_non_null(err);
        assert_int_equal(rl_error_code(err), RL_EINTERNAL);
        assert_null(it);
        rl_error_free(err);
    }
    rl_store_close(s);
    free(dir);
}

static void test_unusable_path(void **state)
{
    char *file = sub(*state, "plainfile");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    char *dir = sub(file, "store"); /* a folder under a regular file */
    rl_store *s = NULL;
    rl_error *err = rl_store_open(dir, &sync_on, &s);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EIO);
    rl_error_free(err);
    free(dir);
    free(file);
}

/* Opened to read (must_exist), a folder without a store, or with another program's RocksDB
 * database, is refused and left as it was; a store is opened as usual. */
static void test_must_exist_makes_nothing(void **state)
{
    static const rl_store_options read_only = {.must_exist = true};
    rl_store *s = NULL;
    char *empty = sub(*state, "nothing-here");
    rl_error *err = rl_store_open(empty, &read_only, &s);
    assert_int_equal(rl_error_code(err), RL_ENOTFOUND);
    rl_error_free(err);
    struct stat st;
    assert_int_not_equal(stat(empty, &st), 0); /* not even the folder */

    char *foreign = sub(*state, "foreign");
    rl_test_foreign_rocksdb(foreign);
    err = rl_store_open(foreign, &read_only, &s);
    assert_int_equal(rl_error_code(err), RL_ENOTFOUND);
    rl_error_free(err);
    char *rerr = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    size_t n = 0;
    char **names = rocksdb_list_column_families(o, foreign, &n, &rerr);
    assert_null(rerr);
    assert_int_equal(n, 1); /* no families added */
    rocksdb_list_column_families_destroy(names, n);
    rocksdb_options_destroy(o);

    char *ours = sub(*state, "ours");
    assert_null(rl_store_open(ours, &sync_on, &s));
    rl_store_close(s);
    assert_null(rl_store_open(ours, &read_only, &s));
    rl_store_close(s);
    free(empty);
    free(foreign);
    free(ours);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_put_get_reopen),
        cmocka_unit_test(test_batch_is_atomic_and_ordered),
        cmocka_unit_test(test_read_once),
        cmocka_unit_test(test_templates_written_before),
        cmocka_unit_test(test_second_open_conflicts),
        cmocka_unit_test(test_damage_is_not_a_conflict),
        cmocka_unit_test(test_checkpoint_is_owner_only),
        cmocka_unit_test(test_newer_schema_is_refused),
        cmocka_unit_test(test_older_schema_is_upgraded),
        cmocka_unit_test(test_unknown_column_family_is_refused),
        cmocka_unit_test(test_unusable_path),
        cmocka_unit_test(test_group_iterator),
        cmocka_unit_test(test_must_exist_makes_nothing),
    };
    return cmocka_run_group_tests_name("store", tests, setup, teardown);
}
