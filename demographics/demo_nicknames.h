/*
 * demo_nicknames: given-name equivalence ("bob" is "robert", "bobby" is "rob").
 *
 * Loaded from a CSV of `name1,relationship,name2` rows (the format of the
 * shared nicknames_names.csv: name2 is a nickname of name1). Two names are
 * equivalent when they are equal or when one is listed as a nickname of the
 * other, in either direction. Equivalence is not made transitive: "bill" is
 * listed under both "robert" and "william", and robert is not william.
 * Names are normalised on load (demo_text_normalize), so lookups take
 * normalised names.
 *
 * A table is immutable once loaded and may be shared by any number of
 * threads. The loader caps file size and row count and names the line of any
 * malformed row. demo_nicknames_free(NULL) is fine.
 */
#ifndef RL_DEMO_NICKNAMES_H
#define RL_DEMO_NICKNAMES_H

#include <stdbool.h>

#include "common/rl_error.h"

enum { DEMO_NICKNAMES_MAX_ROWS = 200000 };

typedef struct demo_nicknames demo_nicknames;

rl_error *demo_nicknames_load(const char *path, demo_nicknames **out);
void demo_nicknames_free(demo_nicknames *table);

/* Number of (name, related name) entries held, both directions counted. */
int demo_nicknames_size(const demo_nicknames *table);

bool demo_nicknames_equivalent(const demo_nicknames *table, const char *a, const char *b);

#endif
