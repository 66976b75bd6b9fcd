#include "api/api_auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/rl_log.h"
#include "common/rl_time.h"

enum {
    API_TOKEN_ID_BYTES = 8,                         /* 16 hex digits */
    API_TOKEN_ID_LEN = API_TOKEN_ID_BYTES * 2,
    API_TOKEN_SECRET_BYTES = 32,                    /* 256 bits */
    API_TOKEN_SECRET_LEN = 43,                      /* base64url, no padding */
    API_TOKEN_LEN = 4 + API_TOKEN_ID_LEN + 1 + API_TOKEN_SECRET_LEN, /* "rl1_" id "_" secret */
    API_TOKEN_HASH_BYTES = 32,
    API_TOKEN_NAME_MAX = 64,
    API_TOKEN_SYSTEM_MAX = 255,
    API_RATE_SLOTS = 1024, /* distinct tokens tracked at once; more: the oldest slot is reused */
    API_TOKEN_CACHE_MAX = 4096, /* token entries kept parsed in memory; more are read from the store */
    /* Requests without a valid token share one bucket: each 401 is an audit
     * entry, and with no token there is no per-token limit to stop a flood
     * of them filling the disk. A desk that lost its token meets it only
     * after a hundred quick tries. */
    API_REFUSED_RATE_PER_S = 10,
    API_REFUSED_BURST = 100,
};

static const char api_token_key_name[] = "api_token_key";

/* Buckets are per token id; a slot is reused by probing, never freed. */
typedef struct api_rate_slot {
    char id[API_TOKEN_ID_LEN + 1];
    double tokens;
    uint64_t last_ns;
} api_rate_slot;

struct api_auth {
    rl_store *store;
    unsigned char key[crypto_generichash_KEYBYTES];
    double rate_per_s; /* 0: no limit */
    double burst;
    pthread_mutex_t rate_lock;
    api_rate_slot slots[API_RATE_SLOTS];
    api_rate_slot refused; /* requests without a valid token (id "" until the first) */
    /* Token id -> its stored entry, parsed: every request reads one. Entries
     * are changed only through api_token_put, in this process (the command
     * line goes through the server's API while it runs), which drops them. */
    pthread_mutex_t cache_lock;
    json_t *cache;
    uint64_t cache_gen; /* advanced by every change: an entry read before one is not cached */
    /* Creations one at a time: a name's uniqueness check and the write that takes it. */
    pthread_mutex_t create_lock;
};

/* ---- roles ---- */

static const struct {
    api_role role;
    const char *name;
    unsigned perms;
} api_roles[] = {
    {API_ROLE_READER, "reader", API_PERM_READ},
    {API_ROLE_REGISTRAR, "registrar", API_PERM_READ | API_PERM_WRITE},
    {API_ROLE_REVIEWER, "reviewer", API_PERM_READ | API_PERM_WRITE | API_PERM_REVIEW},
    {API_ROLE_ADMIN, "admin", API_PERM_READ | API_PERM_WRITE | API_PERM_REVIEW | API_PERM_ADMIN},
};
enum { API_NROLES = sizeof api_roles / sizeof *api_roles };

unsigned api_role_perms(api_role role)
{
    for (int i = 0; i < API_NROLES; i++)
        if (api_roles[i].role == role)
            return api_roles[i].perms;
    return 0;
}

const char *api_role_name(api_role role)
{
    for (int i = 0; i < API_NROLES; i++)
        if (api_roles[i].role == role)
            return api_roles[i].name;
    return "none";
}

bool api_role_parse(const char *name, api_role *out)
{
    for (int i = 0; name && i < API_NROLES; i++)
        if (strcmp(api_roles[i].name, name) == 0) {
            *out = api_roles[i].role;
            return true;
        }
    return false;
}

const char *api_perm_role_name(unsigned perm)
{
    for (int i = 0; i < API_NROLES; i++)
        if ((api_roles[i].perms & perm) == perm)
            return api_roles[i].name;
    return "admin";
}

/* ---- opening ---- */

rl_error *api_auth_open(rl_store *store, const rl_config *cfg, api_auth **out)
{
    rl_error *err = NULL;
    char *value = NULL;
    rl_store_batch *batch = NULL;
    *out = NULL;
    if (sodium_init() < 0)
        return RL_ERR(RL_EINTERNAL, "libsodium failed to initialise");
    api_auth *auth = calloc(1, sizeof *auth);
    if (!auth)
        return RL_ERR(RL_ENOMEM, "out of memory");
    pthread_mutex_init(&auth->rate_lock, NULL);
    pthread_mutex_init(&auth->cache_lock, NULL);
    pthread_mutex_init(&auth->create_lock, NULL);
    auth->cache = json_object();
    if (!auth->cache) {
        api_auth_close(auth);
        return RL_ERR(RL_ENOMEM, "out of memory");
    }
    auth->store = store;
    auth->rate_per_s = cfg ? cfg->http_rate_limit_per_s : 0;
    auth->burst = cfg && cfg->http_rate_limit_burst > 0 ? cfg->http_rate_limit_burst : 1;
    size_t len = 0;
    bool found = false;
    RL_TRY(rl_store_get(store, RL_CF_META, api_token_key_name, strlen(api_token_key_name), &value, &len, &found));
    if (found) {
        if (len != sizeof auth->key)
            RL_FAIL(RL_ESTORE, "the store's token key has the wrong size: the store is damaged");
        memcpy(auth->key, value, sizeof auth->key);
    } else {
        /* First use of this store: the key that every token hash is made under. */
        crypto_generichash_keygen(auth->key);
        RL_TRY(rl_store_batch_new(store, &batch));
        rl_store_batch_put(batch, RL_CF_META, api_token_key_name, strlen(api_token_key_name), auth->key,
                           sizeof auth->key);
        RL_TRY(rl_store_write(store, batch));
    }
    *out = auth;
    auth = NULL;
cleanup:
    if (value)
        sodium_memzero(value, len);
    free(value);
    rl_store_batch_destroy(batch);
    api_auth_close(auth);
    return err;
}

void api_auth_close(api_auth *auth)
{
    if (!auth)
        return;
    sodium_memzero(auth->key, sizeof auth->key);
    pthread_mutex_destroy(&auth->rate_lock);
    pthread_mutex_destroy(&auth->cache_lock);
    pthread_mutex_destroy(&auth->create_lock);
    json_decref(auth->cache);
    free(auth);
}

/* ---- tokens ---- */

static void api_token_hash(const api_auth *auth, const char *token, size_t len,
                           unsigned char hash[API_TOKEN_HASH_BYTES])
{
    crypto_generichash(hash, API_TOKEN_HASH_BYTES, (const unsigned char *)token, len, auth->key, sizeof auth->key);
}

static bool api_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool api_is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static rl_error *api_token_get(api_auth *auth, const char *id, json_t **out)
{
    rl_error *err = NULL;
    char *value = NULL;
    size_t len = 0;
    bool found = false;
    *out = NULL;
    RL_TRY(rl_store_get(auth->store, RL_CF_TOKENS, id, strlen(id), &value, &len, &found));
    if (!found)
        goto cleanup;
    *out = json_loadb(value, len, 0, NULL);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        RL_FAIL(RL_ESTORE, "a token entry is not JSON: the store is damaged");
    }
cleanup:
    free(value);
    return err;
}

/* The entry of token id from the cache, or read and cached; *out is shared
 * (NULL when there is no such token): read it, never change it. */
static rl_error *api_token_get_shared(api_auth *auth, const char *id, json_t **out)
{
    rl_error *err = NULL;
    pthread_mutex_lock(&auth->cache_lock);
    *out = json_incref(json_object_get(auth->cache, id));
    uint64_t gen = auth->cache_gen;
    pthread_mutex_unlock(&auth->cache_lock);
    if (*out)
        return NULL;
    RL_TRY(api_token_get(auth, id, out));
    if (*out) {
        pthread_mutex_lock(&auth->cache_lock);
        if (auth->cache_gen == gen && json_object_size(auth->cache) < API_TOKEN_CACHE_MAX)
            json_object_set(auth->cache, id, *out);
        pthread_mutex_unlock(&auth->cache_lock);
    }
cleanup:
    return err;
}

static rl_error *api_token_put(api_auth *auth, const char *id, const json_t *entry)
{
    rl_error *err = NULL;
    rl_store_batch *batch = NULL;
    char *text = json_dumps(entry, JSON_COMPACT);
    if (!text)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_batch_new(auth->store, &batch));
    rl_store_batch_put(batch, RL_CF_TOKENS, id, strlen(id), text, strlen(text));
    /* Dropped, and the generation advanced, before and after the write: a
     * request that read the old entry meanwhile does not cache it. */
    pthread_mutex_lock(&auth->cache_lock);
    json_object_del(auth->cache, id);
    auth->cache_gen++;
    pthread_mutex_unlock(&auth->cache_lock);
    err = rl_store_write(auth->store, batch);
    pthread_mutex_lock(&auth->cache_lock);
    json_object_del(auth->cache, id);
    auth->cache_gen++;
    pthread_mutex_unlock(&auth->cache_lock);
cleanup:
    rl_store_batch_destroy(batch);
    free(text);
    return err;
}

rl_error *api_auth_recheck(api_auth *auth, const api_principal *who)
{
    rl_error *err = NULL;
    json_t *entry = NULL;
    if (!auth || !who || !who->id[0])
        return NULL;
    RL_TRY(api_token_get_shared(auth, who->id, &entry));
    if (!entry || json_string_value(json_object_get(entry, "revoked")))
        RL_FAIL(RL_EUNAUTHENTICATED, "the bearer token was revoked while this request waited: nothing was done");
cleanup:
    json_decref(entry);
    return err;
}

rl_error *api_auth_authenticate(api_auth *auth, const char *authorization, api_principal *out)
{
    rl_error *err = NULL;
    json_t *entry = NULL;
    char id[API_TOKEN_ID_LEN + 1] = "";
    memset(out, 0, sizeof *out);
    if (!authorization || !*authorization)
        RL_FAIL(RL_EUNAUTHENTICATED, "this endpoint needs a bearer token (Authorization: Bearer ...)");
    const char *p = authorization;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer ", 7) != 0)
        RL_FAIL(RL_EUNAUTHENTICATED, "Authorization: expected the Bearer scheme");
    p += 7;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    if (n != API_TOKEN_LEN || strncmp(p, "rl1_", 4) != 0 || !api_is_hex(p + 4, API_TOKEN_ID_LEN) ||
        p[4 + API_TOKEN_ID_LEN] != '_' || !api_is_b64url(p + 5 + API_TOKEN_ID_LEN, API_TOKEN_SECRET_LEN))
        RL_FAIL(RL_EUNAUTHENTICATED, "the bearer token is malformed");
    memcpy(id, p + 4, API_TOKEN_ID_LEN);
    id[API_TOKEN_ID_LEN] = '\0';
    RL_TRY(api_token_get_shared(auth, id, &entry));
    unsigned char want[API_TOKEN_HASH_BYTES], got[API_TOKEN_HASH_BYTES];
    const char *hex = json_string_value(json_object_get(entry, "hash"));
    size_t bin_len = 0;
    bool ok = entry && hex &&
              sodium_hex2bin(want, sizeof want, hex, strlen(hex), NULL, &bin_len, NULL) == 0 &&
              bin_len == sizeof want;
    api_token_hash(auth, p, n, got);
    /* Compared even when the entry is missing, so that timing tells nothing. */
    bool same = sodium_memcmp(want, got, sizeof want) == 0;
    if (!ok || !same)
        RL_FAIL(RL_EUNAUTHENTICATED, "the bearer token is not valid (unknown or mistyped)");
    if (json_string_value(json_object_get(entry, "revoked")))
        RL_FAIL(RL_EUNAUTHENTICATED, "the bearer token was revoked");
    if (!api_role_parse(json_string_value(json_object_get(entry, "role")), &out->role))
        RL_FAIL(RL_ESTORE, "a token entry has no valid role: the store is damaged");
    snprintf(out->id, sizeof out->id, "%s", id);
    const char *name = json_string_value(json_object_get(entry, "name"));
    snprintf(out->actor, sizeof out->actor, "token:%s", name && *name ? name : id);
    const char *system = json_string_value(json_object_get(entry, "system"));
    snprintf(out->system, sizeof out->system, "%s", system ? system : "");
cleanup:
    json_decref(entry);
    if (err) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", id);
    }
    return err;
}

/* Refills slot for the time since it was last used and takes one request:
 * true when allowed, else false with *retry_after_s (>= 1). rate_lock held. */
static bool api_bucket_take(api_rate_slot *slot, double rate_per_s, double burst, uint64_t now, int *retry_after_s)
{
    slot->tokens += (double)(now - slot->last_ns) / 1e9 * rate_per_s;
    if (slot->tokens > burst)
        slot->tokens = burst;
    slot->last_ns = now;
    if (slot->tokens >= 1.0) {
        slot->tokens -= 1.0;
        return true;
    }
    double wait = (1.0 - slot->tokens) / rate_per_s;
    *retry_after_s = wait < 1.0 ? 1 : (int)(wait + 0.999);
    return false;
}

bool api_auth_rate_take(api_auth *auth, const api_principal *who, int *retry_after_s)
{
    *retry_after_s = 0;
    if (auth->rate_per_s <= 0)
        return true;
    /* FNV-1a of the id picks the first slot; linear probing after it. */
    uint32_t h = 2166136261u;
    for (const char *c = who->id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    uint64_t now = rl_time_mono_ns();
    pthread_mutex_lock(&auth->rate_lock);
    api_rate_slot *slot = NULL;
    for (int i = 0; i < 8 && !slot; i++) {
        api_rate_slot *s = &auth->slots[(h + (uint32_t)i) % API_RATE_SLOTS];
        if (strcmp(s->id, who->id) == 0 || s->id[0] == '\0')
            slot = s;
    }
    if (!slot) {
        /* Eight tokens collide here: reuse the first slot (that token starts a full bucket). */
        slot = &auth->slots[h % API_RATE_SLOTS];
        slot->id[0] = '\0';
    }
    if (slot->id[0] == '\0') {
        snprintf(slot->id, sizeof slot->id, "%s", who->id);
        slot->tokens = auth->burst;
        slot->last_ns = now;
    }
    bool allowed = api_bucket_take(slot, auth->rate_per_s, auth->burst, now, retry_after_s);
    pthread_mutex_unlock(&auth->rate_lock);
    return allowed;
}

bool api_auth_rate_take_refused(api_auth *auth, int *retry_after_s)
{
    *retry_after_s = 0;
    uint64_t now = rl_time_mono_ns();
    pthread_mutex_lock(&auth->rate_lock);
    if (auth->refused.id[0] == '\0') {
        snprintf(auth->refused.id, sizeof auth->refused.id, "-");
        auth->refused.tokens = API_REFUSED_BURST;
        auth->refused.last_ns = now;
    }
    bool allowed = api_bucket_take(&auth->refused, API_REFUSED_RATE_PER_S, API_REFUSED_BURST, now, retry_after_s);
    pthread_mutex_unlock(&auth->rate_lock);
    return allowed;
}

static bool api_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > API_TOKEN_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '_' || *c == '-'))
            return false;
    return true;
}

static bool api_system_valid(const char *system)
{
    size_t n = strlen(system);
    if (n == 0 || n > API_TOKEN_SYSTEM_MAX || strchr(system, '|'))
        return false;
    for (const unsigned char *c = (const unsigned char *)system; *c; c++)
        if (*c < 0x21 || *c == 0x7f)
            return false;
    return true;
}

/* Calls visit for every entry of the tokens family, in id order. */
static rl_error *api_token_each(api_auth *auth, rl_error *(*visit)(void *cls, json_t *entry), void *cls)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    RL_TRY(rl_store_iter_new(auth->store, RL_CF_TOKENS, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t vlen;
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *entry = json_loadb(v, vlen, 0, NULL);
        if (!json_is_object(entry)) {
            json_decref(entry);
            RL_FAIL(RL_ESTORE, "a token entry is not JSON: the store is damaged");
        }
        err = visit(cls, entry);
        json_decref(entry);
        if (err)
            goto cleanup;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* revoked_by of a withdrawn token (api_auth_token_withdraw). */
#define API_TOKEN_WITHDRAWN_BY "ridgeline: its creation could not be audited"

static rl_error *api_token_name_taken(void *cls, json_t *entry)
{
    const char *name = cls;
    const char *other = json_string_value(json_object_get(entry, "name"));
    const char *revoked_by = json_string_value(json_object_get(entry, "revoked_by"));
    if (other && strcmp(other, name) == 0 && !(revoked_by && strcmp(revoked_by, API_TOKEN_WITHDRAWN_BY) == 0))
        return RL_ERR(RL_ECONFLICT, "a token named %s exists already (names must be unique: they name the actor "
                      "in the audit trail)", name);
    return NULL;
}

rl_error *api_auth_token_create(api_auth *auth, const char *role, const char *system, const char *name,
                                const char *created_by, json_t **out)
{
    rl_error *err = NULL;
    json_t *entry = NULL;
    char token[API_TOKEN_LEN + 1];
    bool locked = false;
    *out = NULL;
    api_role r;
    if (!api_role_parse(role, &r))
        RL_FAIL(RL_EINVAL, "role must be reader, registrar, reviewer or admin");
    if (system && *system && !api_system_valid(system))
        RL_FAIL(RL_EINVAL, "system must be a URI of 1 to %d printable characters without spaces or '|'",
                API_TOKEN_SYSTEM_MAX);
    if (name && *name && !api_name_valid(name))
        RL_FAIL(RL_EINVAL, "name must be 1 to %d letters, digits, '.', '_' or '-'", API_TOKEN_NAME_MAX);
    /* Two creations with one name at once must not both pass the check before either writes. */
    pthread_mutex_lock(&auth->create_lock);
    locked = true;
    if (name && *name)
        RL_TRY(api_token_each(auth, api_token_name_taken, (void *)name));
    unsigned char id_raw[API_TOKEN_ID_BYTES], secret_raw[API_TOKEN_SECRET_BYTES];
    char id[API_TOKEN_ID_LEN + 1], secret[API_TOKEN_SECRET_LEN + 1];
    json_t *existing = NULL;
    /* 64 random bits: a clash is next to impossible, but checked (an overwrite would revive nothing). */
    do {
        json_decref(existing);
        existing = NULL;
        randombytes_buf(id_raw, sizeof id_raw);
        sodium_bin2hex(id, sizeof id, id_raw, sizeof id_raw);
        RL_TRY(api_token_get(auth, id, &existing));
    } while (existing);
    randombytes_buf(secret_raw, sizeof secret_raw);
    sodium_bin2base64(secret, sizeof secret, secret_raw, sizeof secret_raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret_raw, sizeof secret_raw);
    snprintf(token, sizeof token, "rl1_%s_%s", id, secret);
    sodium_memzero(secret, sizeof secret);
    unsigned char hash[API_TOKEN_HASH_BYTES];
    char hash_hex[API_TOKEN_HASH_BYTES * 2 + 1];
    api_token_hash(auth, token, strlen(token), hash);
    sodium_bin2hex(hash_hex, sizeof hash_hex, hash, sizeof hash);
    char now[32];
    rl_time_format_instant(rl_time_wall_ms(), now, sizeof now);
    entry = json_pack("{s:s, s:s?, s:s, s:s?, s:s, s:s, s:s, s:n}", "id", id, "name", name && *name ? name : NULL,
                      "role", api_role_name(r), "system", system && *system ? system : NULL, "created", now,
                      "created_by", created_by ? created_by : "unknown", "hash", hash_hex, "revoked");
    if (!entry)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_token_put(auth, id, entry));
    json_object_del(entry, "hash");
    json_object_del(entry, "revoked");
    if (json_object_set_new(entry, "token", json_string(token)) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");
    *out = entry;
    entry = NULL;
cleanup:
    if (locked)
        pthread_mutex_unlock(&auth->create_lock);
    sodium_memzero(token, sizeof token);
    json_decref(entry);
    return err;
}

static rl_error *api_token_list_add(void *cls, json_t *entry)
{
    json_object_del(entry, "hash");
    if (json_array_append(cls, entry) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

rl_error *api_auth_token_list(api_auth *auth, json_t **out)
{
    rl_error *err = NULL;
    json_t *list = json_array();
    *out = NULL;
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_token_each(auth, api_token_list_add, list));
    *out = json_pack("{s:o}", "tokens", list);
    list = NULL;
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    json_decref(list);
    return err;
}

rl_error *api_auth_token_revoke(api_auth *auth, const char *id, const char *revoked_by, json_t **out)
{
    rl_error *err = NULL;
    json_t *entry = NULL;
    *out = NULL;
    if (strlen(id) != API_TOKEN_ID_LEN || !api_is_hex(id, API_TOKEN_ID_LEN))
        RL_FAIL(RL_EINVAL, "a token id is 16 hexadecimal digits (see ridgeline token list)");
    RL_TRY(api_token_get(auth, id, &entry));
    if (!entry)
        RL_FAIL(RL_ENOTFOUND, "no token with this id");
    if (!json_string_value(json_object_get(entry, "revoked"))) {
        char now[32];
        rl_time_format_instant(rl_time_wall_ms(), now, sizeof now);
        if (json_object_set_new(entry, "revoked", json_string(now)) != 0 ||
            json_object_set_new(entry, "revoked_by", json_string(revoked_by ? revoked_by : "unknown")) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(api_token_put(auth, id, entry));
    }
    json_object_del(entry, "hash");
    *out = entry;
    entry = NULL;
cleanup:
    json_decref(entry);
    return err;
}

void api_auth_token_withdraw(api_auth *auth, const json_t *made, const char *comp)
{
    json_t *gone = NULL;
    rl_error *err = api_auth_token_revoke(auth, json_string_value(json_object_get(made, "id")),
                                          API_TOKEN_WITHDRAWN_BY, &gone);
    json_decref(gone);
    if (err) {
        rl_log_error(RL_LOG_ERROR, comp, "an unaudited token could not be withdrawn", err);
        rl_error_free(err);
    }
}

static rl_error *api_token_count_active(void *cls, json_t *entry)
{
    if (!json_string_value(json_object_get(entry, "revoked")))
        (*(size_t *)cls)++;
    return NULL;
}

rl_error *api_auth_token_count(api_auth *auth, size_t *active)
{
    *active = 0;
    return api_token_each(auth, api_token_count_active, active);
}
