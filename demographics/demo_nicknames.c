#include "demographics/demo_nicknames.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demographics/demo_normalize.h"

enum { DEMO_NICK_LEN = 48, DEMO_NICK_LINE = 512 };

/* One entry per listed relation and direction. */
typedef struct demo_nick_entry {
    char name[DEMO_NICK_LEN];
    char other[DEMO_NICK_LEN];
} demo_nick_entry;

struct demo_nicknames {
    demo_nick_entry *entries; /* sorted by name, then other; no duplicates */
    int n, cap;
};

static int demo_nick_cmp(const void *a, const void *b)
{
    const demo_nick_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->other, y->other);
}

static rl_error *demo_nick_add(demo_nicknames *t, const char *name, const char *other)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 1024;
        if (cap > 2 * DEMO_NICKNAMES_MAX_ROWS + 16)
            return RL_ERR(RL_ETOOBIG, "nickname table: more than %d rows", DEMO_NICKNAMES_MAX_ROWS);
        demo_nick_entry *grown = realloc(t->entries, (size_t)cap * sizeof *grown);
        if (!grown)
            return RL_ERR(RL_ENOMEM, "out of memory");
        t->entries = grown;
        t->cap = cap;
    }
    snprintf(t->entries[t->n].name, DEMO_NICK_LEN, "%s", name);
    snprintf(t->entries[t->n].other, DEMO_NICK_LEN, "%s", other);
    t->n++;
    return NULL;
}

static rl_error *demo_nick_field(char *field, int line, const char *what, char *out)
{
    rl_error *err = demo_text_normalize(field, out, DEMO_NICK_LEN);
    if (err)
        return rl_error_wrap(err, "nickname file line %d, %s", line, what);
    if (!out[0])
        return RL_ERR(RL_EINVAL, "nickname file line %d: %s is empty", line, what);
    return NULL;
}

rl_error *demo_nicknames_load(const char *path, demo_nicknames **out)
{
    rl_error *err = NULL;
    *out = NULL;
    demo_nicknames *t = calloc(1, sizeof *t);
    FILE *f = NULL;
    if (!t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    f = fopen(path, "r");
    if (!f)
        RL_FAIL(RL_EINVAL, "cannot read nickname file %s", path);
    char line[DEMO_NICK_LINE];
    int lineno = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n')
            RL_FAIL(RL_EINVAL, "nickname file line %d: longer than %d bytes", lineno, DEMO_NICK_LINE - 2);
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || (lineno == 1 && strncmp(line, "name1,", 6) == 0))
            continue;
        char *c1 = strchr(line, ',');
        char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2 || strchr(c2 + 1, ','))
            RL_FAIL(RL_EINVAL, "nickname file line %d: expected name1,relationship,name2", lineno);
        *c1 = *c2 = '\0';
        if (strcmp(c1 + 1, "has_nickname") != 0)
            RL_FAIL(RL_EINVAL, "nickname file line %d: unknown relationship (expected has_nickname)", lineno);
        if (++rows > DEMO_NICKNAMES_MAX_ROWS)
            RL_FAIL(RL_ETOOBIG, "nickname file: more than %d rows", DEMO_NICKNAMES_MAX_ROWS);
        char formal[DEMO_NICK_LEN], nick[DEMO_NICK_LEN];
        RL_TRY(demo_nick_field(line, lineno, "name1", formal));
        RL_TRY(demo_nick_field(c2 + 1, lineno, "name2", nick));
        RL_TRY(demo_nick_add(t, formal, nick));
        RL_TRY(demo_nick_add(t, nick, formal));
    }
    if (ferror(f))
        RL_FAIL(RL_EIO, "reading nickname file %s failed", path);
    qsort(t->entries, (size_t)t->n, sizeof *t->entries, demo_nick_cmp);
    int w = 0;
    for (int r = 0; r < t->n; r++)
        if (w == 0 || demo_nick_cmp(&t->entries[w - 1], &t->entries[r]) != 0)
            t->entries[w++] = t->entries[r];
    t->n = w;
    *out = t;
    t = NULL;
cleanup:
    if (f)
        fclose(f);
    demo_nicknames_free(t);
    return err;
}

void demo_nicknames_free(demo_nicknames *t)
{
    if (!t)
        return;
    free(t->entries);
    free(t);
}

int demo_nicknames_size(const demo_nicknames *t) { return t ? t->n : 0; }

bool demo_nicknames_equivalent(const demo_nicknames *t, const char *a, const char *b)
{
    if (!a[0] || !b[0])
        return false;
    if (strcmp(a, b) == 0)
        return true;
    if (!t || strlen(a) >= DEMO_NICK_LEN || strlen(b) >= DEMO_NICK_LEN)
        return false;
    demo_nick_entry key;
    snprintf(key.name, sizeof key.name, "%s", a);
    snprintf(key.other, sizeof key.other, "%s", b);
    return bsearch(&key, t->entries, (size_t)t->n, sizeof *t->entries, demo_nick_cmp) != NULL;
}
