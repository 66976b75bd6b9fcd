#include "ingest/ingest_line.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

rl_error *ingest_open_file(const char *path, FILE **out)
{
    rl_error *err = NULL;
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        RL_FAIL(RL_EINVAL, "cannot open it: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        RL_FAIL(RL_EIO, "cannot read it: %s", strerror(errno));
    /* Linux opens a directory for reading and fails only at the first read. */
    if (S_ISDIR(st.st_mode))
        RL_FAIL(RL_EINVAL, "it is a directory: expected a file");
    *out = f;
    f = NULL;
cleanup:
    if (f)
        fclose(f);
    return err;
}

rl_error *ingest_read_line(FILE *f, char *dst, size_t room, size_t *len, bool *too_long, bool *eof,
                           ingest_drop_fn *dropped, void *ctx)
{
    size_t n = 0;
    bool any = false;
    *too_long = false;
    *eof = false;
    int ch;
    /* Byte by byte without the stream lock: fgets and strlen would stop at a NUL and getline would
     * hold the whole line, however long. A reader is used by one thread. */
    while ((ch = getc_unlocked(f)) != EOF) {
        any = true;
        if (ch == '\n')
            break;
        if (n + 1 < room) {
            dst[n++] = (char)ch;
            continue;
        }
        if (ch == '\r' && !*too_long) {
            /* A CRLF (or a last '\r') just past a full line ends it: the
             * line holds as much as the same line with LF. */
            int next = getc_unlocked(f);
            if (next == '\n' || next == EOF) {
                ch = next;
                break;
            }
            ungetc(next, f);
        }
        *too_long = true;
        if (dropped)
            dropped(ctx, (char)ch);
    }
    dst[n] = '\0';
    *len = n;
    if (ch == EOF && ferror(f))
        return RL_ERR(RL_EIO, "read failed: %s", strerror(errno));
    *eof = !any;
    return NULL;
}

void ingest_strip_bom(char *line, size_t *len)
{
    if (*len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        memmove(line, line + 3, *len - 3 + 1);
        *len -= 3;
    }
}
