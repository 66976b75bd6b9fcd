#include "registry/registry.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_json.h"
#include "common/rl_time.h"

struct rl_registry {
    rl_store *store;
};

enum { RL_ID_BYTES = 16, RL_ID_MAX = 64 };

rl_error *rl_registry_open(rl_store *store, rl_registry **out)
{
    *out = NULL;
    /* Ids come from libsodium's CSPRNG; sodium_init is idempotent and thread-safe. */
    if (sodium_init() < 0)
        return RL_ERR(RL_EINTERNAL, "libsodium failed to initialise");
    rl_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return RL_ERR(RL_ENOMEM, "out of memory");
    reg->store = store;
    *out = reg;
    return NULL;
}

void rl_registry_close(rl_registry *reg) { free(reg); }

bool rl_registry_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > RL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

static void rl_registry_new_id(char out[2 * RL_ID_BYTES + 1])
{
    unsigned char raw[RL_ID_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, 2 * RL_ID_BYTES + 1, raw, sizeof raw);
}

rl_error *rl_registry_patient_create(rl_registry *reg, const json_t *patient, json_t **stored)
{
    rl_error *err = NULL;
    json_t *record = NULL;
    char *text = NULL;
    rl_store_batch *batch = NULL;
    *stored = NULL;

    RL_TRY(rl_registry_patient_validate(patient));
    char id[2 * RL_ID_BYTES + 1];
    rl_registry_new_id(id);
    char updated[32];
    rl_time_format_instant(rl_time_wall_ms(), updated, sizeof updated);
    /* The server owns id and meta on create (FHIR create semantics); they go
     * first, as FHIR servers conventionally write them. */
    record = json_pack("{s:s, s:s, s:{s:s, s:s}}", "resourceType", "Patient", "id", id, "meta",
                       "versionId", "1", "lastUpdated", updated);
    if (!record)
        RL_FAIL(RL_ENOMEM, "out of memory building the record");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)patient, key, value) {
        if (strcmp(key, "id") == 0 || strcmp(key, "meta") == 0 || strcmp(key, "resourceType") == 0)
            continue;
        if (json_object_set(record, key, value) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory building the record");
    }

    RL_TRY(rl_json_dump(record, &text));
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    rl_store_batch_put(batch, RL_CF_RECORDS, id, strlen(id), text, strlen(text));
    RL_TRY(rl_store_write(reg->store, batch));
    *stored = record;
    record = NULL;
cleanup:
    json_decref(record);
    free(text);
    rl_store_batch_destroy(batch);
    return err;
}

rl_error *rl_registry_patient_read(rl_registry *reg, const char *id, json_t **out)
{
    rl_error *err = NULL;
    char *value = NULL;
    size_t len = 0;
    bool found = false;
    *out = NULL;
    if (!rl_registry_id_valid(id))
        RL_FAIL(RL_EINVAL, "a Patient id is 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(rl_store_get(reg->store, RL_CF_RECORDS, id, strlen(id), &value, &len, &found));
    if (!found)
        RL_FAIL(RL_ENOTFOUND, "no Patient with this id");
    json_error_t jerr;
    *out = json_loadb(value, len, 0, &jerr);
    if (!*out)
        RL_FAIL(RL_ESTORE, "stored record is not valid JSON (line %d): the store is damaged",
                jerr.line);
cleanup:
    free(value);
    return err;
}
