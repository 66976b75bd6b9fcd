/*
 * ridgeline import: a patient list into the registry, through the same
 * register-and-match path as the API (POST /fhir/Patient, in-process on a
 * stopped store or over HTTP to a running server). CSV with a mapping file,
 * FHIR NDJSON, or a FHIR Bundle. A bad row is reported (row, reason) and the
 * rest go on; progress is recorded every few hundred rows, after the rows
 * before it are durable, so an interrupted import resumes where it stopped
 * (into the same target, under the same format and mapping only). Rows sent
 * twice are harmless because a known source key updates its record; that is
 * why a Patient without an identifier is a rejected row, not a new record.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_json.h"
#include "common/rl_time.h"
#include "ingest/ingest_csv.h"
#include "ingest/ingest_fhir.h"

enum {
    IMPORT_CHECKPOINT_ROWS = 500,
    IMPORT_WAIT_MAX_S = 60,      /* one wait, whatever Retry-After asks */
    IMPORT_ROW_WAIT_MAX_S = 600, /* all the waits of one row: past that the server is not coming back soon */
    IMPORT_WAIT_NOTE_S = 10,     /* a wait is mentioned again at most this often */
};

void cmd_import_help(void)
{
    printf("usage: ridgeline import FILE [--format csv|ndjson|bundle] [--mapping MAP.json]\n"
           "                        [--source-system URI] [--rejects OUT.ndjson] [--state STATE]\n"
           "                        [--restart] [--data DIR] [--config FILE] [--server HOST:PORT]\n"
           "\n"
           "Registers every row of FILE through the registration path the API uses (matching\n"
           "included). --format defaults from the name: .ndjson, .json (a Bundle), else CSV,\n"
           "which needs --mapping (see ingest/mappings). Rows that cannot be registered go to\n"
           "OUT.ndjson (default FILE.rejects.ndjson) with their row number and reason; the rest\n"
           "go on. A Patient needs an identifier (system and value) of the system that sends\n"
           "it: without one a second sending could not be recognised, so such a row is rejected.\n"
           "NDJSON and Bundle rows are recognised by their identifier of --source-system URI\n"
           "(over HTTP, by default, the token's bound system), put first for the registry;\n"
           "a row without one is rejected. Without either, by their first identifier.\n"
           "Progress is kept in STATE (default FILE.import-state): run the same command again\n"
           "after an interruption and it resumes, if it imports the same file, with the same\n"
           "format and mapping, into the same store or server; otherwise it says why and starts\n"
           "over (--restart starts over anyway; rows sent twice only update). A resume goes on\n"
           "in the rejects file it wrote to (from any folder) and refuses another. From a\n"
           "read-only folder, name both --state and --rejects elsewhere. Over HTTP, a server\n"
           "that asks to wait (429, 503) is waited for as its Retry-After says; a refused token\n"
           "(401, 403), a server failure (5xx) or no answer stops the import, progress kept.\n"
           "A progress line on stderr shows the rate and the time left. Exit status: 0 when\n"
           "the whole file was processed (rejected rows included), 1 on a failure, 2 on bad\n"
           "usage or a token the server refuses.\n");
}

/* What a run resumes: the state is used only when everything but done and
 * rejects_bytes is the same, since rows counted as done in another store, or
 * read under another mapping or format, are not done in this one. */
typedef struct import_state {
    char file[PATH_MAX];   /* FILE's real path */
    long long size, mtime; /* FILE's, when the progress was recorded */
    long long mtime_nsec;  /* and the nanoseconds of its mtime (-1: a state written before they were kept) */
    char target[PATH_MAX + 16]; /* "store:" and the store folder's real path, or "server:" and HOST:PORT */
    char format[8];
    char mapping[crypto_hash_sha256_BYTES * 2 + 1]; /* SHA-256 of the mapping file, hex; "" without one */
    long done;                  /* rows read, every one of them durable in the target */
    long long rejects_bytes;    /* the rejects file's length when done was recorded */
    char rejects[PATH_MAX];     /* that rejects file: its real path (as typed in a state before version 4) */
    bool rejects_known;         /* and what it is, device and inode (not in a state before version 4) */
    long long rejects_dev, rejects_ino;
    char last_stored[80];       /* the id of the last record stored before done was recorded ("" none) */
    long long last_version;     /* and its version then (meta.versionId; 0 unknown) */
    char source_system[256];    /* rows keyed on their identifier of this system ("" the first one) */
} import_state;

static void import_copy(char *out, size_t size, const json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));
    snprintf(out, size, "%s", v ? v : "");
}

/* False when there is no state to use; *unreadable when a file is there but cannot be read as one. */
static bool import_state_load(const char *path, import_state *st, bool *unreadable)
{
    *unreadable = false;
    json_t *j = json_load_file(path, 0, NULL);
    if (!j) {
        *unreadable = access(path, F_OK) == 0;
        return false;
    }
    memset(st, 0, sizeof *st);
    import_copy(st->file, sizeof st->file, j, "file");
    st->size = json_integer_value(json_object_get(j, "size"));
    st->mtime = json_integer_value(json_object_get(j, "mtime"));
    const json_t *nsec = json_object_get(j, "mtime_nsec");
    st->mtime_nsec = json_is_integer(nsec) ? json_integer_value(nsec) : -1;
    import_copy(st->target, sizeof st->target, j, "target");
    import_copy(st->format, sizeof st->format, j, "format");
    import_copy(st->mapping, sizeof st->mapping, j, "mapping_sha256");
    st->done = (long)json_integer_value(json_object_get(j, "done_rows"));
    st->rejects_bytes = json_integer_value(json_object_get(j, "rejects_bytes"));
    import_copy(st->rejects, sizeof st->rejects, j, "rejects");
    const json_t *ino = json_object_get(j, "rejects_ino");
    st->rejects_known = json_is_integer(ino);
    st->rejects_ino = json_integer_value(ino);
    st->rejects_dev = json_integer_value(json_object_get(j, "rejects_dev"));
    import_copy(st->last_stored, sizeof st->last_stored, j, "last_stored");
    st->last_version = json_integer_value(json_object_get(j, "last_version"));
    import_copy(st->source_system, sizeof st->source_system, j, "source_system");
    json_decref(j);
    return true;
}

/* Whether saved can be resumed by the run described by cur, the rows' keying
 * (source_system) apart; when not, why in why. */
static bool import_state_matches(const import_state *saved, const import_state *cur, char *why, size_t size)
{
    if (!saved->target[0] || !saved->file[0] || !saved->format[0])
        snprintf(why, size, "it does not say what it was for (an earlier ridgeline wrote it)");
    else if (strcmp(saved->file, cur->file) != 0)
        snprintf(why, size, "it was for another input file, %s", saved->file);
    else if (saved->size != cur->size || saved->mtime != cur->mtime ||
             (saved->mtime_nsec >= 0 && saved->mtime_nsec != cur->mtime_nsec))
        snprintf(why, size, "the input file changed since");
    else if (strcmp(saved->target, cur->target) != 0)
        snprintf(why, size, "it was for %s, not %s", saved->target, cur->target);
    else if (strcmp(saved->format, cur->format) != 0)
        snprintf(why, size, "it was for --format %s, not %s", saved->format, cur->format);
    else if (strcmp(saved->mapping, cur->mapping) != 0)
        snprintf(why, size, "the mapping is not the one it was read with");
    else if (saved->done < 0 || saved->rejects_bytes < 0)
        snprintf(why, size, "it is damaged");
    else
        return true;
    return false;
}

/* Writes beside path and renames, so that a kill leaves the old state or the new, never half of one. */
static rl_error *import_state_save(const char *path, const import_state *st)
{
    rl_error *err = NULL;
    char tmp[PATH_MAX + 8];
    json_t *j = NULL;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        RL_FAIL(RL_EINVAL, "path too long: %s", path);
    j = json_pack("{s:i, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:s, s:I, s:s}", "version", 4,
                  "file", st->file, "size", (json_int_t)st->size, "mtime", (json_int_t)st->mtime, "mtime_nsec",
                  (json_int_t)st->mtime_nsec, "target", st->target, "format", st->format, "mapping_sha256",
                  st->mapping, "done_rows", (json_int_t)st->done, "rejects_bytes", (json_int_t)st->rejects_bytes,
                  "rejects", st->rejects, "rejects_dev", (json_int_t)st->rejects_dev, "rejects_ino",
                  (json_int_t)st->rejects_ino, "last_stored", st->last_stored, "last_version",
                  (json_int_t)st->last_version, "source_system", st->source_system);
    if (!j)
        RL_FAIL(RL_ENOMEM, "out of memory");
    errno = 0;
    /* Synced before the rename and the folder after it: a power cut leaves
     * the old state or the new, not an empty file that restarts from row 1. */
    FILE *f = fopen(tmp, "w");
    bool written = f && json_dumpf(j, f, JSON_COMPACT) == 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (f && fclose(f) != 0 && written) {
        written = false;
        e = errno;
    }
    if (!written) {
        unlink(tmp);
        RL_FAIL(RL_EIO, "cannot record progress in %s: %s (--state PATH puts it elsewhere)", tmp,
                e ? strerror(e) : "write failed");
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        RL_FAIL(RL_EIO, "cannot record progress in %s: %s (--state PATH puts it elsewhere)", path, strerror(e));
    }
    char folder[PATH_MAX];
    snprintf(folder, sizeof folder, "%s", path);
    char *slash = strrchr(folder, '/');
    if (slash)
        *(slash == folder ? slash + 1 : slash) = '\0';
    else
        snprintf(folder, sizeof folder, ".");
    int fd = open(folder, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse a folder's fsync, and the rename is done */
        close(fd);
    }
cleanup:
    json_decref(j);
    return err;
}

/* The rejects and state files are written, cut and removed: each must be a
 * regular file (or not be there yet) and neither the input nor the mapping
 * (`--rejects data.ndjson` cut the input to nothing, and `--state /dev/null`
 * renamed a file over the device). */
static rl_error *import_path_safe(const char *what, const char *path, const struct stat *input,
                                  const struct stat *mapping, bool regular)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? NULL : RL_ERR(RL_EINVAL, "%s %s: %s", what, path, strerror(errno));
    if (regular && !S_ISREG(st.st_mode))
        return RL_ERR(RL_EINVAL, "%s %s: not a regular file, and it would be written, cut and removed (%s PATH "
                      "puts it elsewhere)", what, path, what);
    if ((st.st_dev == input->st_dev && st.st_ino == input->st_ino) ||
        (mapping && st.st_dev == mapping->st_dev && st.st_ino == mapping->st_ino))
        return RL_ERR(RL_EINVAL, "%s %s is the %s itself (%s PATH puts it elsewhere)", what, path,
                      st.st_ino == input->st_ino && st.st_dev == input->st_dev ? "input" : "mapping", what);
    return NULL;
}

/* A path as the file system resolves it, whether the file is there or not:
 * its folder's real path and its name (so two spellings of one file compare equal). */
static void import_canonical(const char *path, char *out, size_t size)
{
    char folder[PATH_MAX], real[PATH_MAX];
    if (strlen(path) >= sizeof folder) {
        snprintf(out, size, "%s", path);
        return;
    }
    snprintf(folder, sizeof folder, "%s", path);
    char *slash = strrchr(folder, '/');
    const char *name = slash ? path + (slash - folder) + 1 : path; /* from path: cutting folder may empty it */
    if (slash)
        *(slash == folder ? slash + 1 : slash) = '\0';
    else
        snprintf(folder, sizeof folder, ".");
    if (realpath(folder, real))
        snprintf(out, size, "%s/%s", strcmp(real, "/") == 0 ? "" : real, name);
    else
        snprintf(out, size, "%s", path);
}

/* Fails when the state cannot be written where it goes, before a store is opened (or made) for nothing. */
static rl_error *import_state_writable(const char *path)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return RL_ERR(RL_EINVAL, "path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return RL_ERR(RL_EIO, "cannot record progress in %s: %s (--state PATH puts it elsewhere)", tmp,
                      strerror(errno));
    fclose(f);
    unlink(tmp);
    return NULL;
}

/* Opens the rejects file to add to, making it when it is not there (*made), before a store is opened (or
 * made) for nothing. Not cut yet: whether this run resumes, and keeps its first part, is known later. */
static rl_error *import_rejects_open(const char *path, FILE **out, bool *made)
{
    rl_error *err = NULL;
    *out = NULL;
    *made = false;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_CREAT | O_EXCL, 0666);
        *made = fd >= 0;
    }
    if (fd < 0)
        RL_FAIL(RL_EINVAL, "cannot write %s: %s (--rejects PATH puts it elsewhere)", path, strerror(errno));
    if (!(*out = fdopen(fd, "a"))) {
        close(fd);
        RL_FAIL(RL_ENOMEM, "out of memory");
    }
cleanup:
    if (err && *made)
        unlink(path);
    return err;
}

/* What a resume keeps of the rejects file this run opened (cur's): it cuts that file back to the checkpoint
 * (*keep bytes), so it must be the file the saved state wrote. That is known by device and inode, however
 * and from wherever it is named: a path as typed named another file from another folder. When that file is
 * gone and this run made one (made), there is nothing to cut. Anything else is refused, never cut. */
static rl_error *import_rejects_resumable(const import_state *saved, const import_state *cur, bool made,
                                          const char *state_path, long long *keep)
{
    if (!saved->rejects_known && saved->rejects[0] != '/')
        return RL_ERR(RL_EINVAL,
                      "the progress in %s names its rejects file only as %s, relative to a folder it does not "
                      "name, so it cannot be told from another: start over with --restart (rows sent again only "
                      "update)", state_path, saved->rejects);
    struct stat was;
    bool there = saved->rejects[0] == '/' && stat(saved->rejects, &was) == 0;
    bool same = saved->rejects_known
                    ? saved->rejects_dev == cur->rejects_dev && saved->rejects_ino == cur->rejects_ino
                    : there && (long long)was.st_dev == cur->rejects_dev && (long long)was.st_ino == cur->rejects_ino;
    bool gone = made && (!there || strcmp(saved->rejects, cur->rejects) == 0);
    if (!same && !gone)
        return RL_ERR(RL_EINVAL,
                      "the progress in %s wrote its rejected rows to %s, and %s is another file: name that one "
                      "with --rejects to resume, or start over with --restart (rows sent again only update)",
                      state_path, saved->rejects, cur->rejects);
    *keep = same ? saved->rejects_bytes : 0;
    return NULL;
}

/* SHA-256 of a file's bytes, as hex in out (65 bytes). */
static rl_error *import_file_digest(const char *path, char *out, size_t size)
{
    rl_error *err = NULL;
    unsigned char digest[crypto_hash_sha256_BYTES];
    unsigned char buf[65536];
    crypto_hash_sha256_state h;
    FILE *f = fopen(path, "rb");
    if (!f)
        RL_FAIL(RL_EINVAL, "cannot read %s", path);
    crypto_hash_sha256_init(&h);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&h, buf, n);
    if (ferror(f))
        RL_FAIL(RL_EIO, "reading %s failed", path);
    crypto_hash_sha256_final(&h, digest);
    if (size < sizeof digest * 2 + 1)
        RL_FAIL(RL_EINTERNAL, "digest buffer too small");
    sodium_bin2hex(out, size, digest, sizeof digest);
cleanup:
    if (f)
        fclose(f);
    return err;
}

static long import_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

/* total < 0: unknown (a Bundle is not counted before it is read): no time left then. */
static void import_progress(long done, long total, double secs)
{
    if (!isatty(STDERR_FILENO))
        return; /* a log wants the summary, not a redrawn line */
    double rate = secs > 0 ? (double)done / secs : 0;
    if (total < 0) {
        fprintf(stderr, "\rimport: %ld rows  %.0f rows/s   ", done, rate);
        return;
    }
    double left = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\rimport: %ld/%ld rows  %.0f rows/s  %.0f s left   ", done, total, rate, left);
}

/* What an answer to a row's POST means for the import. */
typedef enum import_verdict {
    IMPORT_STORED,   /* 200, 201 */
    IMPORT_REJECTED, /* the row itself is wrong: 400, 409, 412, 413, 422; the next row may do */
    IMPORT_WAIT,     /* the server asks to send it again later: 429, 503 (over HTTP) */
    IMPORT_STOP,     /* no row can go in as things are: 401, 403 (the token), 404, 405, 415 (not this
                      * registry's API), other 5xx (the server), anything else unexpected */
} import_verdict;

static import_verdict import_judge(long status, bool remote)
{
    switch (status) {
    case 200:
    case 201: return IMPORT_STORED;
    case 400:
    case 409:
    case 412:
    case 413:
    case 422: return IMPORT_REJECTED;
    case 429:
    case 503: return remote ? IMPORT_WAIT : IMPORT_STOP; /* in-process, nobody will have more room later */
    default: return IMPORT_STOP;
    }
}

static const char *import_diagnostics(const json_t *answer)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(answer, "issue"), 0), "diagnostics"));
}

/* With a source system: its identifier moved first, where the registry keys a
 * re-sent row on it (an export listing a national number first would have
 * keyed every patient sharing a placeholder number on one record); false when
 * the Patient has none. */
static bool import_key_first(json_t *patient, const char *system)
{
    json_t *idents = json_object_get(patient, "identifier");
    size_t i;
    json_t *ident;
    json_array_foreach(idents, i, ident) {
        const char *s = json_string_value(json_object_get(ident, "system"));
        const char *v = json_string_value(json_object_get(ident, "value"));
        if (!s || strcmp(s, system) != 0 || !v || !*v)
            continue;
        if (i > 0) {
            json_incref(ident);
            json_array_remove(idents, i);
            json_array_insert_new(idents, 0, ident);
        }
        return true;
    }
    return false;
}

static void import_sleep_s(int secs)
{
    struct timespec ts = {secs, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A server that does not sync each write (store.sync off, for bulk loads)
 * answers rows that a power cut may still lose, while the progress counts
 * them as done: said before the first row. */
static rl_error *import_warn_unsynced(cmd_session *session)
{
    if (!session->remote)
        return NULL;
    long status = 0;
    json_t *answer = NULL;
    rl_error *err = cmd_session_call(session, "GET", "/health", NULL, &status, &answer);
    const char *sync = json_string_value(json_object_get(json_object_get(answer, "store"), "sync"));
    if (!err && status == 200 && sync && strcmp(sync, "off") == 0)
        fprintf(stderr, "import: the server does not sync each write (store.sync off): after a power cut, rows "
                        "the progress counts as done may be missing; run the import again with --restart then "
                        "(rows sent twice only update)\n");
    json_decref(answer);
    return err;
}

/* The system a server token is bound to ("" none, or not over HTTP). */
static rl_error *import_token_system(cmd_session *session, char *out, size_t size)
{
    rl_error *err = NULL;
    json_t *answer = NULL;
    long status = 0;
    out[0] = '\0';
    if (!session->remote)
        return NULL;
    /* A server that asks to wait is waited for a little, as rows are. */
    for (int tries = 0;; tries++) {
        RL_TRY(cmd_session_call(session, "GET", "/whoami", NULL, &status, &answer));
        if ((status != 429 && status != 503) || tries >= 3)
            break;
        json_decref(answer);
        answer = NULL;
        import_sleep_s(session->retry_after_s > 0 && session->retry_after_s <= IMPORT_WAIT_MAX_S
                           ? session->retry_after_s
                           : 1);
    }
    /* A token the server does not know stores nothing: its first row stops the import, as it says. A
     * server without /whoami (older than it) binds no token to a system either. */
    if (status == 401 || status == 404)
        goto cleanup;
    if (status != 200)
        RL_FAIL(status < 500 ? RL_EINVAL : RL_EIO,
                "GET /whoami: HTTP %ld: which system this token writes for is not known, and rows would be keyed "
                "on another: try again", status);
    const char *system = json_string_value(json_object_get(answer, "system"));
    if (system)
        snprintf(out, size, "%s", system);
cleanup:
    json_decref(answer);
    return err;
}

/* True when the Patient carries an identifier the registry keys a re-send on (system and value). */
static bool import_has_source_key(const json_t *patient)
{
    size_t i;
    const json_t *ident;
    json_array_foreach(json_object_get(patient, "identifier"), i, ident) {
        const char *system = json_string_value(json_object_get(ident, "system"));
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (system && *system && value && *value)
            return true;
    }
    return false;
}

static rl_error *import_reject(FILE *rejects, long line, long status, const char *why)
{
    /* A reason cut with %.Ns may end in half a character: repaired, not
     * taken for an allocation failure that would stop every resume here. */
    char reason[512];
    snprintf(reason, sizeof reason, "%s", why ? why : "");
    rl_json_text_repair(reason);
    json_t *r = status ? json_pack("{s:I, s:I, s:s}", "row", (json_int_t)line, "status", (json_int_t)status,
                                   "reason", reason)
                       : json_pack("{s:I, s:s}", "row", (json_int_t)line, "reason", reason);
    if (!r)
        return RL_ERR(RL_ENOMEM, "out of memory");
    int rc = json_dumpf(r, rejects, JSON_COMPACT);
    json_decref(r);
    if (rc != 0 || fputc('\n', rejects) == EOF)
        return RL_ERR(RL_EIO, "cannot write the rejects file");
    return NULL;
}

/* Whether the target holds record id at least at version (answered, even as
 * deactivated or merged): a 404 means it never did, an older version that it
 * is a copy from before (a backup restored). Other answers (a server down)
 * are left for the rows to meet. */
static bool import_target_holds(cmd_session *session, const char *id, long long version)
{
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    long status = 0;
    json_t *answer = NULL;
    rl_error *err = cmd_session_call(session, "GET", path, NULL, &status, &answer);
    bool unanswered = err != NULL;
    const char *v = status == 200 ? json_string_value(json_object_get(json_object_get(answer, "meta"), "versionId"))
                                  : NULL;
    bool older = v && version > 0 && atoll(v) < version;
    json_decref(answer);
    rl_error_free(err);
    return unanswered || (status != 404 && !older);
}

/* Where the rows go, as the state names it: the real path of a store folder
 * (however --data or the settings spell it), or the server named. */
static void import_target(const cmd_session *session, const char *server, char *out, size_t size)
{
    if (server) {
        snprintf(out, size, "server:%s", server);
        return;
    }
    char real[PATH_MAX];
    snprintf(out, size, "store:%s", realpath(session->cfg.data_dir, real) ? real : session->cfg.data_dir);
}

int cmd_import(int argc, char **argv)
{
    const char *format = NULL, *mapping_path = NULL, *rejects_path = NULL, *state_arg = NULL, *data = NULL,
               *config = NULL, *server = NULL, *source_system = NULL;
    bool restart = false;
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"mapping", required_argument, NULL, 'm'},
        {"rejects", required_argument, NULL, 'r'}, {"state", required_argument, NULL, 'S'},
        {"restart", no_argument, NULL, 'R'},      {"data", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'}, {"server", required_argument, NULL, 's'},
        {"source-system", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'm': mapping_path = optarg; break;
        case 'r': rejects_path = optarg; break;
        case 'S': state_arg = optarg; break;
        case 'R': restart = true; break;
        case 'd': data = optarg; break;
        case 'c': config = optarg; break;
        case 's': server = optarg; break;
        case 'k': source_system = optarg; break;
        case 'h': cmd_import_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline import --help\n"); return CMD_USAGE;
        }
    }
    if (argc - optind != 1) {
        cmd_import_help();
        return CMD_USAGE;
    }
    const char *path = argv[optind];
    if (!format) {
        size_t n = strlen(path);
        format = n > 7 && strcmp(path + n - 7, ".ndjson") == 0 ? "ndjson"
                 : n > 5 && strcmp(path + n - 5, ".json") == 0 ? "bundle"
                                                              : "csv";
    }
    bool csv_format = strcmp(format, "csv") == 0;
    if (!csv_format && strcmp(format, "ndjson") != 0 && strcmp(format, "bundle") != 0) {
        fprintf(stderr, "ridgeline import: --format is csv, ndjson or bundle\n");
        return CMD_USAGE;
    }
    if (csv_format && !mapping_path) {
        fprintf(stderr, "ridgeline import: a CSV needs --mapping (see ingest/mappings)\n");
        return CMD_USAGE;
    }
    if (source_system && (csv_format || !*source_system || strlen(source_system) >= 256 || strchr(source_system, '|'))) {
        fprintf(stderr, "ridgeline import: --source-system is a system URI without '|', for NDJSON and Bundle rows "
                        "(a CSV's rows are keyed on its mapping's source_system)\n");
        return CMD_USAGE;
    }

    rl_error *err = NULL;
    json_t *mapping = NULL;
    ingest_csv *csv = NULL;
    ingest_fhir *fhir = NULL;
    FILE *rejects = NULL;
    bool rejects_ours = false; /* made or taken by this run: removed when it ends empty */
    long rows = 0, skip = 0, last_line = 0; /* last_line: as rejects and messages number rows */
    cmd_session session;
    memset(&session, 0, sizeof session);
    char state_path[PATH_MAX], default_rejects[PATH_MAX];
    int state_len = state_arg ? snprintf(state_path, sizeof state_path, "%s", state_arg)
                              : snprintf(state_path, sizeof state_path, "%s.import-state", path);
    if (state_len >= (int)sizeof state_path ||
        snprintf(default_rejects, sizeof default_rejects, "%s.rejects.ndjson", path) >= (int)sizeof default_rejects)
        RL_FAIL(RL_EINVAL, "path too long: %s", state_arg ? state_arg : path);
    if (!rejects_path)
        rejects_path = default_rejects;

    /* The state and what it is for; both on the stack (two copies of a few paths). */
    import_state state, saved;
    memset(&state, 0, sizeof state);
    struct stat st;
    if (stat(path, &st) != 0 || !realpath(path, state.file))
        RL_FAIL(RL_EINVAL, "cannot read %s", path);
    state.size = (long long)st.st_size;
    /* To the nanosecond: a file rewritten to the same length within a second is another file. */
    state.mtime = (long long)st.st_mtim.tv_sec;
    state.mtime_nsec = (long long)st.st_mtim.tv_nsec;
    snprintf(state.format, sizeof state.format, "%s", format);
    struct stat mapping_st;
    if (mapping_path && stat(mapping_path, &mapping_st) != 0)
        RL_FAIL(RL_EINVAL, "cannot read the mapping %s: %s", mapping_path, strerror(errno));
    {
        /* The state is written beside itself (STATE.tmp) and renamed: that file is checked too. */
        char state_tmp[PATH_MAX + 8], c_rejects[2 * PATH_MAX], c_state[2 * PATH_MAX], c_tmp[2 * PATH_MAX];
        snprintf(state_tmp, sizeof state_tmp, "%s.tmp", state_path);
        RL_TRY(import_path_safe("--rejects", rejects_path, &st, mapping_path ? &mapping_st : NULL, true));
        RL_TRY(import_path_safe("--state", state_path, &st, mapping_path ? &mapping_st : NULL, true));
        /* (what else is in its way, import_state_writable says) */
        RL_TRY(import_path_safe("--state", state_tmp, &st, mapping_path ? &mapping_st : NULL, false));
        import_canonical(rejects_path, c_rejects, sizeof c_rejects);
        import_canonical(state_path, c_state, sizeof c_state);
        import_canonical(state_tmp, c_tmp, sizeof c_tmp);
        struct stat rs, ss;
        if (strcmp(c_rejects, c_state) == 0 || strcmp(c_rejects, c_tmp) == 0 ||
            (stat(rejects_path, &rs) == 0 && stat(state_path, &ss) == 0 && rs.st_dev == ss.st_dev &&
             rs.st_ino == ss.st_ino))
            RL_FAIL(RL_EINVAL, "--rejects and --state name one file: name two");
    }
    RL_TRY(import_state_writable(state_path));
    if (csv_format) {
        json_error_t jerr;
        mapping = json_load_file(mapping_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!mapping)
            RL_FAIL(RL_EINVAL, "mapping %s: line %d: %s", mapping_path, jerr.line, jerr.text);
        RL_TRY(import_file_digest(mapping_path, state.mapping, sizeof state.mapping));
        RL_TRY(ingest_csv_open(path, mapping, &csv));
    } else {
        /* The file is read (a Bundle whole, NDJSON's first resource) before a
         * store is opened, so that a file that is no import makes no store either. */
        rl_config cfg;
        RL_TRY(cmd_config_build(config, data, &cfg));
        rl_json_limits limits = {.max_depth = cfg.http_max_json_depth,
                                 .max_string_bytes = (size_t)cfg.http_max_string_bytes};
        RL_TRY(ingest_fhir_open(path, strcmp(format, "bundle") == 0, &limits, &fhir));
    }
    RL_TRY(import_rejects_open(rejects_path, &rejects, &rejects_ours));
    struct stat opened;
    if (fstat(fileno(rejects), &opened) != 0)
        RL_FAIL(RL_EIO, "cannot write %s: %s", rejects_path, strerror(errno));
    state.rejects_known = true;
    state.rejects_dev = (long long)opened.st_dev;
    state.rejects_ino = (long long)opened.st_ino;
    if (!realpath(rejects_path, state.rejects))
        snprintf(state.rejects, sizeof state.rejects, "%s", rejects_path);
    RL_TRY(cmd_session_open_bulk(&session, config, data, server));
    import_target(&session, server, state.target, sizeof state.target);
    if (!csv_format) {
        /* A bound token's rows are keyed on its system whatever is asked: the two must agree. */
        char bound[256];
        RL_TRY(import_token_system(&session, bound, sizeof bound));
        if (source_system && bound[0] && strcmp(source_system, bound) != 0)
            RL_FAIL(RL_EINVAL, "--source-system %s: this token writes for %s, and the registry keys its rows on "
                    "that system's identifier", source_system, bound);
        snprintf(state.source_system, sizeof state.source_system, "%s", source_system ? source_system : bound);
    }
    if (!csv_format && !state.source_system[0])
        fprintf(stderr, "import: rows are recognised by their first identifier (--source-system URI names the "
                        "sending system's)\n");
    RL_TRY(import_warn_unsynced(&session));

    bool unreadable = false;
    if (!restart && import_state_load(state_path, &saved, &unreadable)) {
        char why[2 * PATH_MAX + 64];
        bool same = import_state_matches(&saved, &state, why, sizeof why);
        if (same && strcmp(saved.source_system, state.source_system) != 0) {
            const char *was = saved.source_system[0] ? saved.source_system : "their first identifier";
            const char *now = state.source_system[0] ? state.source_system : "their first identifier";
            /* Rows it stored keyed one way would be created again as new records keyed the other. */
            if (saved.last_stored[0])
                RL_FAIL(RL_EINVAL, "the progress in %s recognised rows by %s, this run by %s: run with the same "
                        "--source-system (and token) to resume, or --restart to send every row again knowingly",
                        state_path, was, now);
            snprintf(why, sizeof why, "its rows were recognised by %s, not %s", was, now);
            same = false;
        }
        if (!same) {
            fprintf(stderr, "import: the progress in %s is not used: %s; it is replaced, starting from row 1\n",
                    state_path, why);
        } else if (saved.done > 0 && saved.last_stored[0] &&
                   !import_target_holds(&session, saved.last_stored, saved.last_version)) {
            /* The same path, another store (made anew, or a backup restored into it): the rows the
             * progress counts are not there, and skipping them would leave them out without a word. */
            fprintf(stderr, "import: the progress in %s is not used: the target does not hold the last record it "
                            "says was stored (a new or restored store?); starting from row 1\n",
                    state_path);
        } else {
            RL_TRY(import_rejects_resumable(&saved, &state, rejects_ours, state_path, &state.rejects_bytes));
            skip = saved.done;
            snprintf(state.last_stored, sizeof state.last_stored, "%s", saved.last_stored);
            state.last_version = saved.last_version;
        }
    } else if (unreadable) {
        fprintf(stderr, "import: the progress in %s cannot be read (damaged); it is replaced, starting from row 1\n",
                state_path);
    }
    /* Recorded now, before any row: a state that cannot be written fails here, not 500 rows in. */
    state.done = skip;
    RL_TRY(import_state_save(state_path, &state));

    long total = strcmp(format, "bundle") == 0 ? -1 : import_count_lines(path) - (csv_format ? 1 : 0);
    if (skip && total >= 0)
        fprintf(stderr, "import: resuming after row %ld (of %ld)\n", skip, total);
    else if (skip)
        fprintf(stderr, "import: resuming after row %ld\n", skip);
    /* A run from row 1 replaces the rejects; a resume cuts off those written after the checkpoint, which
     * belong to rows it sends again, and a line a kill left half written. */
    if (fstat(fileno(rejects), &opened) != 0 ||
        (opened.st_size > state.rejects_bytes && ftruncate(fileno(rejects), (off_t)state.rejects_bytes) != 0))
        RL_FAIL(RL_EIO, "cannot cut %s to %lld bytes: %s", rejects_path, state.rejects_bytes, strerror(errno));
    rejects_ours = true;
    /* Where the checkpoints' ftell starts: the end as cut, not the end the stream was opened at. */
    if (fseek(rejects, 0, SEEK_END) != 0)
        RL_FAIL(RL_EIO, "cannot write %s: %s", rejects_path, strerror(errno));

    long created = 0, updated = 0, rejected = 0, since_checkpoint = 0, waits = 0, left_out = 0;
    char stored_id[sizeof state.last_stored] = ""; /* the last record stored: recorded at each checkpoint */
    long long stored_version = 0;
    uint64_t t0 = rl_time_mono_ns(), last_note = 0;
    for (;;) {
        ingest_row row;
        bool done = false;
        if (csv)
            RL_TRY(ingest_csv_next(csv, NULL, &row, &done));
        else
            RL_TRY(ingest_fhir_next(fhir, &row, &done));
        if (done)
            break;
        rows++;
        last_line = row.line;
        if (rows <= skip) {
            ingest_row_clear(&row);
            continue;
        }
        if (row.patient && state.source_system[0] && !csv && !import_key_first(row.patient, state.source_system)) {
            json_decref(row.patient);
            row.patient = NULL;
            snprintf(row.problem, sizeof row.problem,
                     "no identifier of the sending system %.160s: a second sending could not be recognised",
                     state.source_system);
        }
        if (row.patient && !import_has_source_key(row.patient)) {
            /* The registry recognises a re-sent row by its source identifier: without one, every
             * resume or second import would register the same person again. */
            json_decref(row.patient);
            row.patient = NULL;
            snprintf(row.problem, sizeof row.problem,
                     "no identifier with a system and a value: a second sending could not be recognised "
                     "(give each Patient its sending system's identifier)");
        }
        if (!row.patient) {
            rejected++;
            err = import_reject(rejects, row.line, 0, row.problem);
        } else {
            int waited_s = 0;
            for (;;) {
                long status = 0;
                json_t *answer = NULL;
                err = cmd_session_call(&session, "POST", "/fhir/Patient", row.patient, &status, &answer);
                if (err)
                    break;
                import_verdict verdict = import_judge(status, session.remote);
                const char *diag = import_diagnostics(answer);
                if (verdict == IMPORT_STORED) {
                    created += status == 201;
                    updated += status == 200;
                    const char *id = json_string_value(json_object_get(answer, "id"));
                    if (id && strlen(id) < sizeof stored_id) {
                        snprintf(stored_id, sizeof stored_id, "%s", id);
                        const char *v = json_string_value(
                            json_object_get(json_object_get(answer, "meta"), "versionId"));
                        stored_version = v ? atoll(v) : 0;
                    }
                    /* Stored with a value the mapping says to leave out ("invalid_birth_date": "leave_out"). */
                    left_out += row.problem[0] != '\0';
                } else if (verdict == IMPORT_REJECTED) {
                    rejected++;
                    err = import_reject(rejects, row.line, status, diag ? diag : "refused");
                } else if (verdict == IMPORT_WAIT && waited_s < IMPORT_ROW_WAIT_MAX_S) {
                    int wait = session.retry_after_s > 0 ? session.retry_after_s : 1;
                    if (wait > IMPORT_WAIT_MAX_S)
                        wait = IMPORT_WAIT_MAX_S;
                    waits++;
                    uint64_t now = rl_time_mono_ns();
                    if (waits == 1 || now - last_note >= (uint64_t)IMPORT_WAIT_NOTE_S * 1000000000u) {
                        if (isatty(STDERR_FILENO))
                            fputc('\n', stderr); /* after the progress line */
                        fprintf(stderr, "import: the server asks to wait (HTTP %ld): row %ld goes again in %d s "
                                        "(waits so far: %ld)\n", status, row.line, wait, waits);
                        last_note = now;
                    }
                    json_decref(answer);
                    import_sleep_s(wait);
                    waited_s += wait;
                    continue;
                } else if (verdict == IMPORT_WAIT) {
                    err = RL_ERR(RL_EIO, "row %ld: the server still asks to wait (HTTP %ld) after %d s: %s",
                                 row.line, status, waited_s, diag ? diag : "no reason given");
                } else {
                    rl_code code = status == 401   ? RL_EUNAUTHENTICATED
                                   : status == 403 ? RL_EDENIED
                                   : status < 500  ? RL_EINVAL
                                                   : RL_EIO;
                    err = RL_ERR(code, "row %ld: the registry refused the import (HTTP %ld): %s", row.line, status,
                                 diag ? diag : "no reason given");
                }
                json_decref(answer);
                break;
            }
        }
        ingest_row_clear(&row);
        if (err)
            goto cleanup;
        if (++since_checkpoint >= IMPORT_CHECKPOINT_ROWS) {
            /* Progress may only move past rows that are on disk, and past the rejects they wrote. */
            RL_TRY(cmd_session_checkpoint(&session));
            if (fflush(rejects) != 0 || fsync(fileno(rejects)) != 0)
                RL_FAIL(RL_EIO, "cannot write %s: %s", rejects_path, strerror(errno));
            long pos = ftell(rejects);
            if (pos < 0)
                RL_FAIL(RL_EIO, "cannot tell the length of %s: %s", rejects_path, strerror(errno));
            state.done = rows;
            state.rejects_bytes = pos;
            if (stored_id[0]) {
                snprintf(state.last_stored, sizeof state.last_stored, "%s", stored_id);
                state.last_version = stored_version;
            }
            RL_TRY(import_state_save(state_path, &state));
            since_checkpoint = 0;
            import_progress(rows - skip, total < 0 ? -1 : total - skip, (double)(rl_time_mono_ns() - t0) / 1e9);
        }
    }
    RL_TRY(cmd_session_checkpoint(&session));
    /* On disk before the progress goes: a crash then must not lose the list of rejected rows. */
    if (fflush(rejects) != 0 || fsync(fileno(rejects)) != 0)
        RL_FAIL(RL_EIO, "cannot write %s: %s", rejects_path, strerror(errno));
    double secs = (double)(rl_time_mono_ns() - t0) / 1e9;
    import_progress(rows - skip, rows - skip, secs);
    if (isatty(STDERR_FILENO))
        fputc('\n', stderr);
    unlink(state_path);
    long processed = rows - skip;
    char see[PATH_MAX + 16] = "";
    if (rejected)
        snprintf(see, sizeof see, " (see %s)", rejects_path);
    char dropped[64] = "";
    if (left_out)
        snprintf(dropped, sizeof dropped, " (%ld with a value left out)", left_out);
    printf("import: %ld rows processed (%ld skipped as done before): %ld created, %ld updated%s, %ld rejected%s, "
           "%.1f s, %.0f rows/s\n",
           processed, skip, created, updated, dropped, rejected, see, secs, secs > 0 ? (double)processed / secs : 0);
    json_t *summary = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "import", path, "rows",
                                (json_int_t)processed, "skipped", (json_int_t)skip, "created", (json_int_t)created,
                                "updated", (json_int_t)updated, "rejected", (json_int_t)rejected, "left_out",
                                (json_int_t)left_out, "waits", (json_int_t)waits, "seconds", secs);
    char *line = json_dumps(summary, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", line ? line : "{}");
    free(line);
    json_decref(summary);
cleanup:
    if (rejects) {
        fclose(rejects);
        struct stat rs;
        if (rejects_ours && stat(rejects_path, &rs) == 0 && rs.st_size == 0)
            unlink(rejects_path);
    }
    ingest_csv_close(csv);
    ingest_fhir_close(fhir);
    cmd_session_close(&session);
    json_decref(mapping);
    if (!err)
        return CMD_OK;
    if (isatty(STDERR_FILENO))
        fputc('\n', stderr); /* after the progress line */
    int status = cmd_report(err);
    if (rows > skip)
        fprintf(stderr, "import: stopped at row %ld; progress up to the last checkpoint is kept in %s: run the same "
                        "command again to resume\n", last_line, state_path);
    return status;
}
