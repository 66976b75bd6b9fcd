/*
 * registry: the identity layer. It decides what a submitted Patient is (a
 * new source record, an update) and keeps records in the store.
 *
 * Today it stores and reads source records as FHIR R4 Patient JSON; the
 * golden records, links, matching, review queue and audit of the registry
 * core build on these entry points without changing their callers.
 *
 * Invariants: record ids are opaque, random, never reused, and valid FHIR ids
 * ([A-Za-z0-9-.]{1,64}); every stored record carries id, meta.versionId and
 * meta.lastUpdated; every change is one atomic, durable store write.
 *
 * Threads: one rl_registry serves all HTTP workers; its functions are
 * thread-safe. Ownership: the registry borrows the store (which must outlive
 * it); JSON passed in stays the caller's; JSON handed out is a new reference
 * the caller json_decref()s.
 */
#ifndef RL_REGISTRY_H
#define RL_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_error.h"
#include "store/store.h"

typedef struct rl_registry rl_registry;

rl_error *rl_registry_open(rl_store *store, rl_registry **out);
void rl_registry_close(rl_registry *reg);

/* Validates and stores a new Patient (any id in it is replaced by a new one).
 * Errors: RL_EINVAL naming the offending element. *stored: the record as kept. */
rl_error *rl_registry_patient_create(rl_registry *reg, const json_t *patient, json_t **stored);

/* Reads a record. Errors: RL_EINVAL for an id that cannot exist, RL_ENOTFOUND. */
rl_error *rl_registry_patient_read(rl_registry *reg, const char *id, json_t **out);

/* True when id has the FHIR id syntax. */
bool rl_registry_id_valid(const char *id);

/* Checks a Patient resource's structure: resourceType, known elements and
 * the types of the elements the registry reads. Errors name the element and
 * never quote its value. */
rl_error *rl_registry_patient_validate(const json_t *patient);

#endif
