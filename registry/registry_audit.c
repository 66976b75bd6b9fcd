/* Audit queries: by time range, or by subject (record or golden id) within a time range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_time.h"
#include "registry/registry_internal.h"

static void reg_bound(int64_t ms, bool upper, char out[REG_TIMEKEY_LEN + 1])
{
    snprintf(out, REG_TIMEKEY_LEN + 1, "%016llx%s", (unsigned long long)ms, upper ? "ffffffff" : "00000000");
}

rl_error *rl_registry_audit_query(rl_registry *reg, const rl_audit_query *q, json_t **out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *entries = json_array();
    *out = NULL;
    if (!entries)
        RL_FAIL(RL_ENOMEM, "out of memory");
    int limit = q->limit > 0 && q->limit <= 100000 ? q->limit : 1000;
    int64_t until = q->until_ms > 0 ? q->until_ms : rl_time_wall_ms() + 1;
    if (q->since_ms < 0)
        RL_FAIL(RL_EINVAL, "audit: since must not be before 1970");
    if (until < q->since_ms)
        until = q->since_ms; /* an empty range: no entries */
    char lo[REG_TIMEKEY_LEN + 1], hi[REG_TIMEKEY_LEN + 1];
    reg_bound(q->since_ms, false, lo);
    reg_bound(until, true, hi);
    bool by_subject = q->subject && *q->subject;
    if (by_subject) {
        if (!rl_registry_id_valid(q->subject))
            RL_FAIL(RL_EINVAL, "audit: record must be an id of 1 to 64 letters, digits, '-' or '.'");
        char lkey[REG_KEY_MAX], ukey[REG_KEY_MAX];
        int ln = snprintf(lkey, sizeof lkey, "%s%c%s", q->subject, '\0', lo);
        int un = snprintf(ukey, sizeof ukey, "%s%c%s", q->subject, '\0', hi);
        RL_TRY(rl_store_iter_new(reg->store, RL_CF_AUDIT_SUBJECT, lkey, (size_t)ln, ukey, (size_t)un, &it));
    } else {
        RL_TRY(rl_store_iter_new(reg->store, RL_CF_AUDIT, lo, REG_TIMEKEY_LEN, hi, REG_TIMEKEY_LEN, &it));
    }
    for (; rl_store_iter_valid(it) && (int)json_array_size(entries) < limit; rl_store_iter_next(it)) {
        json_t *entry = NULL;
        if (by_subject) {
            size_t klen;
            const char *k = rl_store_iter_key(it, &klen);
            RL_TRY(reg_get_json(reg, RL_CF_AUDIT, k + klen - REG_TIMEKEY_LEN, REG_TIMEKEY_LEN, &entry));
        } else {
            size_t vlen;
            const char *v = rl_store_iter_value(it, &vlen);
            entry = json_loadb(v, vlen, 0, NULL);
        }
        if (!entry)
            RL_FAIL(RL_ESTORE, "audit entry missing or not JSON: the store is damaged");
        json_array_append_new(entries, entry);
    }
    RL_TRY(rl_store_iter_status(it));
    *out = json_pack("{s:o}", "entries", entries);
    entries = NULL;
cleanup:
    rl_store_iter_destroy(it);
    json_decref(entries);
    return err;
}
