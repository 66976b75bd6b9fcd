/*
 * api_auth: who may call the API. Bearer tokens per client system, the roles
 * they carry and what each role may do, and the request rate per token.
 *
 * A token reads "rl1_<id>_<secret>": the id (16 hex digits) names its entry in
 * the store's tokens family; the secret (43 base64url characters, 256 random
 * bits from libsodium) proves it. The store keeps only a keyed BLAKE2b hash of
 * the whole token, under a 32-byte key made once per store (meta family), and
 * compares it in constant time. A slow password hash would buy nothing for
 * 256-bit random secrets and would cost every request; the key means that a
 * dump of the tokens family alone cannot be checked offline.
 *
 * Roles are cumulative: reader < registrar < reviewer < admin (the table in
 * api_auth.c). A token may be bound to a source system (an identifier system
 * URI): the registry then lets it write only records whose source key is in
 * that system (rl_actor.bound_system; 403 otherwise).
 *
 * Tokens are never logged, never audited and never stored in clear: the
 * secret exists once, in the answer to its creation. A revoked token stays in
 * the store (audit entries name it) but no longer authenticates.
 *
 * Threads: one api_auth serves every worker thread; authentication reads the
 * store (thread-safe), the rate buckets take a mutex of their own.
 * Ownership: api_auth_open() borrows the store, which must outlive it.
 */
#ifndef RL_API_AUTH_H
#define RL_API_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/rl_config.h"
#include "common/rl_error.h"
#include "store/store.h"

typedef enum api_role {
    API_ROLE_NONE = 0,
    API_ROLE_READER,    /* read, search, $match, PIXm, history; /metrics */
    API_ROLE_REGISTRAR, /* + create, update, delete Patients (and enrol biometrics) */
    API_ROLE_REVIEWER,  /* + review queue, record/golden views, link, unlink, merge, unmerge, undo */
    API_ROLE_ADMIN,     /* + tokens, audit trail, backup, check, train, rematch */
} api_role;

/* What a route needs (api_route.perm); a role grants a set of these. */
enum {
    API_PERM_PUBLIC = 0,    /* no token needed: /health, /fhir/metadata, /openapi.json */
    API_PERM_READ = 1u << 0,
    API_PERM_WRITE = 1u << 1,
    API_PERM_REVIEW = 1u << 2,
    API_PERM_ADMIN = 1u << 3,
};

unsigned api_role_perms(api_role role);
const char *api_role_name(api_role role);
/* "reader", "registrar", "reviewer", "admin"; false for anything else. */
bool api_role_parse(const char *name, api_role *out);
/* The lowest role holding perm ("reader" for API_PERM_READ), for messages. */
const char *api_perm_role_name(unsigned perm);

/* Who a request comes from, once authenticated. */
typedef struct api_principal {
    char id[17];        /* the token id (not secret) */
    char actor[96];     /* "token:<name>" or "token:<id>": audit, history, links */
    char system[256];   /* the source system the token writes for; "" when unbound */
    api_role role;
} api_principal;

typedef struct api_auth api_auth;

/* Loads (or makes, the first time) the store's hashing key. */
rl_error *api_auth_open(rl_store *store, const rl_config *cfg, api_auth **out);
void api_auth_close(api_auth *auth);

/*
 * Checks an Authorization header value ("Bearer rl1_..."; NULL when absent).
 * RL_EUNAUTHENTICATED when it is missing, malformed, unknown or revoked (the
 * message never quotes it); out->id then holds the id the token claims when it
 * has the shape of one (for the audit trail; the id is no secret), else "".
 */
rl_error *api_auth_authenticate(api_auth *auth, const char *authorization, api_principal *out);

/* RL_EUNAUTHENTICATED when who's token was revoked (or is gone) since its
 * request was let in. For requests that wait long before they act (a capture
 * at a reader, up to minutes): checked again once the wait is over, so that a
 * revocation stops them too. NULL who (no token: auth.mode "open") passes. */
rl_error *api_auth_recheck(api_auth *auth, const api_principal *who);

/* Takes one request from the principal's bucket: true when allowed, else
 * false and *retry_after_s (>= 1) says when one will be available. */
bool api_auth_rate_take(api_auth *auth, const api_principal *who, int *retry_after_s);

/* The same for a request without a valid token, from the one bucket all of
 * them share (10 a second, bursts of 100), whatever http.rate_limit_per_s
 * says: each is audited, so a flood must not write without end. */
bool api_auth_rate_take_refused(api_auth *auth, int *retry_after_s);

/*
 * Makes a token. role: a role name; system: the bound source system or
 * NULL/"" for none; name: [A-Za-z0-9._-]{1,64}, unique, or NULL/"" (the id
 * then names it). *out = {"id","name","role","system","created","created_by",
 * "token"}: "token" is the secret, shown this once. Errors: RL_EINVAL naming
 * the field, RL_ECONFLICT for a name already used.
 */
rl_error *api_auth_token_create(api_auth *auth, const char *role, const char *system, const char *name,
                                const char *created_by, json_t **out);
/* Every token, revoked ones included, without secrets or hashes: {"tokens":[...]}. */
rl_error *api_auth_token_list(api_auth *auth, json_t **out);
/* Revokes a token by id (kept, marked "revoked"); *out is its entry. RL_ENOTFOUND when unknown. */
rl_error *api_auth_token_revoke(api_auth *auth, const char *id, const char *revoked_by, json_t **out);
/* Withdraws a token just made (made: api_auth_token_create's answer) whose
 * creation could not be audited: nobody was told of it and the trail never
 * names it, so it is revoked and its name is free again. A failure to revoke
 * is logged (by component comp), not returned: the caller reports the audit's. */
void api_auth_token_withdraw(api_auth *auth, const json_t *made, const char *comp);
/* Tokens that still authenticate. */
rl_error *api_auth_token_count(api_auth *auth, size_t *active);

#endif
