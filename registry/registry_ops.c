/* Identity operations (link, unlink, merge, unmerge, undo) and the review queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_time.h"
#include "registry/registry_internal.h"

/* The active golden record that review item `item` asks about now: where
 * its candidate record is now, when it names one (the reviewer compares the
 * record with that candidate record, which a hand link or an unlink may have
 * moved out of the person it was in when the item was queued: deciding about
 * that person would link the record to people the reviewer never saw); else
 * its candidate golden record, or where merges took its members (a chain,
 * bounded: a loop is a damaged store). */
static rl_error *reg_current_person(reg_txn *txn, const json_t *item, char out[REG_ID_LEN + 8])
{
    rl_error *err = NULL;
    json_t *g = NULL, *link = NULL;
    const char *golden = json_string_value(json_object_get(item, "candidate_golden"));
    const char *cand_record = json_string_value(json_object_get(item, "candidate_record"));
    snprintf(out, REG_ID_LEN + 8, "%s", golden ? golden : "");
    for (int hops = 0;; hops++) {
        RL_TRY(reg_txn_golden(txn, out, &g));
        const char *into = json_string_value(json_object_get(g, "merged_into"));
        const char *status = json_string_value(json_object_get(g, "status"));
        if (!into || !status || strcmp(status, "merged") != 0)
            break;
        if (hops == 64)
            RL_FAIL(RL_ESTORE, "golden record %s: merges lead in a loop: run `ridgeline check`", golden);
        snprintf(out, REG_ID_LEN + 8, "%s", into);
        json_decref(g);
        g = NULL;
    }
    if (cand_record) {
        RL_TRY(reg_txn_link(txn, cand_record, &link));
        const char *now = json_string_value(json_object_get(link, "golden"));
        if (now)
            snprintf(out, REG_ID_LEN + 8, "%s", now);
    }
cleanup:
    json_decref(g);
    json_decref(link);
    return err;
}

/* The open review items of the people of golden record `golden` (its first
 * REG_REVIEW_PEOPLE_MAX records) that ask about golden record `other` as it
 * is now (reg_current_person: where the item's candidate record is now, or
 * a golden record merged into it), by the review_open index: their ids
 * appended to ids. */
static rl_error *reg_open_items_against(reg_txn *txn, const json_t *golden, const char *other, json_t *ids)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *item = NULL;
    const json_t *members = json_object_get(golden, "members");
    size_t nm = json_array_size(members);
    for (size_t i = 0; i < nm && i < REG_REVIEW_PEOPLE_MAX; i++) {
        char prefix[REG_ID_LEN + 8];
        int plen = snprintf(prefix, sizeof prefix, "%s%c", json_string_value(json_array_get(members, i)), '\0');
        if (plen <= 0 || plen >= (int)sizeof prefix)
            continue; /* not an id: no item names it */
        RL_TRY(rl_store_iter_prefix(txn->reg->store, RL_CF_REVIEW_OPEN, prefix, (size_t)plen, &it));
        for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
            size_t vlen;
            const char *v = rl_store_iter_value(it, &vlen);
            RL_TRY(reg_get_json(txn->reg, RL_CF_REVIEW, v, vlen, &item));
            char person[REG_ID_LEN + 8];
            if (item)
                RL_TRY(reg_current_person(txn, item, person));
            if (item && strcmp(person, other) == 0 && json_array_append_new(ids, json_stringn(v, vlen)) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
            json_decref(item);
            item = NULL;
        }
        RL_TRY(rl_store_iter_status(it));
        rl_store_iter_destroy(it);
        it = NULL;
    }
cleanup:
    rl_store_iter_destroy(it);
    json_decref(item);
    return err;
}

/* Review items that a merge answered ("same person": their two people are one
 * now), resolved by its event (`by`: the operation). An undo of the merge
 * opens them again (reg_undo_closed_reviews). A hand link leaves its items to
 * the reviewer: one may still be decided either way ("same person" pins,
 * "not a match" after an unlink), see test_registry. Rematch closes those its
 * replay answered, without an event. */
rl_error *reg_close_answered(reg_txn *txn, const rl_actor *actor, const json_t *ids, const char *by,
                             const char *event_id)
{
    return reg_close_reviews(txn, actor, ids, "link", by, event_id, NULL);
}

rl_error *reg_close_reviews(reg_txn *txn, const rl_actor *actor, const json_t *ids, const char *decision,
                            const char *by, const char *event_id, const char *of)
{
    rl_error *err = NULL;
    json_t *item = NULL;
    char now[32];
    reg_now(now);
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v) {
        const char *review_id = json_string_value(v);
        json_decref(item);
        item = NULL;
        RL_TRY(reg_get_json(txn->reg, RL_CF_REVIEW, review_id, strlen(review_id), &item));
        const char *status = json_string_value(json_object_get(item, "status"));
        if (!status || strcmp(status, "open") != 0)
            continue;
        json_object_set_new(item, "status", json_string("resolved"));
        json_t *resolution = json_pack("{s:s, s:s, s:s, s:s}", "decision", decision, "by", by, "who",
                                       reg_actor_who(actor), "when", now);
        if (!resolution)
            RL_FAIL(RL_ENOMEM, "out of memory");
        if (event_id)
            json_object_set_new(resolution, "event", json_string(event_id));
        if (of)
            json_object_set_new(resolution, "of", json_string(of));
        json_object_set_new(item, "resolution", resolution);
        reg_put_json(txn->batch, RL_CF_REVIEW, review_id, strlen(review_id), item, &err);
        if (err)
            goto cleanup;
        char okey[2 * REG_ID_LEN + 8];
        size_t oklen = reg_review_open_key(json_string_value(json_object_get(item, "record")),
                                           json_string_value(json_object_get(item, "candidate_golden")), okey);
        rl_store_batch_delete(txn->batch, RL_CF_REVIEW_OPEN, okey, oklen);
        txn->d_open_reviews--;
    }
cleanup:
    json_decref(item);
    return err;
}

/* Runs the common tail of an operation: event, audit, apply, unlock, sync. */
static rl_error *reg_finish(reg_txn *txn, const rl_actor *actor, const char *op, json_t *detail,
                            const char *const *subjects, int nsubjects, json_t **event, bool *locked)
{
    rl_error *err = NULL;
    char event_id[REG_TIMEKEY_LEN + 1];
    uint64_t ticket = 0;
    json_t *ev = NULL;
    RL_TRY(reg_txn_event(txn, actor, op, detail, event_id, &ev));
    RL_TRY(reg_close_answered(txn, actor, json_object_get(detail, "closed_reviews"), op, event_id));
    json_t *audit_detail = json_pack("{s:s}", "event", event_id);
    err = reg_txn_audit(txn, actor, op, subjects, nsubjects, "ok", audit_detail);
    json_decref(audit_detail);
    if (err)
        goto cleanup;
    RL_TRY(reg_txn_apply(txn, &ticket));
    pthread_mutex_unlock(&txn->reg->write_lock);
    *locked = false;
    RL_TRY(rl_store_sync(txn->reg->store, ticket));
    if (event) {
        *event = ev;
        ev = NULL;
    }
cleanup:
    json_decref(ev);
    return err;
}

static rl_error *reg_require_id(const char *id, const char *what)
{
    if (!id || !rl_registry_id_valid(id))
        return RL_ERR(RL_EINVAL, "%s: expected an id of 1 to 64 letters, digits, '-' or '.'", what);
    return NULL;
}

/* Loads a golden record that must exist and be active. */
static rl_error *reg_active_golden(reg_txn *txn, const char *id, json_t **out)
{
    rl_error *err = NULL;
    RL_TRY(reg_txn_golden(txn, id, out));
    if (!*out)
        RL_FAIL(RL_ENOTFOUND, "no golden record %s", id);
    if (!reg_golden_active(*out))
        RL_FAIL(RL_ECONFLICT, "golden record %s is %s, not active", id,
                json_string_value(json_object_get(*out, "status")));
cleanup:
    return err;
}

/* Moves record rid from its golden record to target (which the caller has loaded and owns). */
static rl_error *reg_move_record(reg_txn *txn, const rl_actor *actor, const char *rid, const char *target_id,
                                 json_t *target, const char *method)
{
    rl_error *err = NULL;
    json_t *link = NULL, *from = NULL;
    RL_TRY(reg_txn_link(txn, rid, &link));
    if (!link)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", rid);
    const char *from_id = json_string_value(json_object_get(link, "golden"));
    if (strcmp(from_id, target_id) == 0)
        RL_FAIL(RL_ECONFLICT, "record %s is already linked to golden record %s", rid, target_id);
    RL_TRY(reg_txn_golden(txn, from_id, &from));
    if (from) {
        reg_golden_remove_member(from, rid);
        json_t *f = from;
        from = NULL;
        RL_TRY(reg_txn_put_golden(txn, from_id, f));
    }
    RL_TRY(reg_golden_add_member(target, rid));
    json_t *nl = reg_link_new(target_id, "certain", 1.0, method, actor, json_object_get(link, "index"));
    if (!nl)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_txn_put_link(txn, rid, nl));
cleanup:
    json_decref(link);
    json_decref(from);
    return err;
}

/*
 * A human's "these are one person" covers the whole person they looked at,
 * not only the record they moved: every member of the golden record becomes
 * a manual link, so that rematch keeps them together. (Pinning the moved
 * record alone let rematch replay its partners, which the guards had held
 * apart, into a person of their own: the decision undone.) The links
 * rewritten are the event's, so undo restores them.
 */
static rl_error *reg_pin_members(reg_txn *txn, const rl_actor *actor, const json_t *golden, const char *golden_id)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(golden, "members"), i, m) {
        const char *rid = json_string_value(m);
        RL_TRY(reg_txn_link(txn, rid, &link));
        const char *how = json_string_value(json_object_get(link, "method"));
        if (link && !(how && strcmp(how, "manual") == 0)) {
            json_t *nl = reg_link_new(golden_id, "certain", 1.0, "manual", actor, json_object_get(link, "index"));
            if (!nl)
                RL_FAIL(RL_ENOMEM, "out of memory");
            RL_TRY(reg_txn_put_link(txn, rid, nl));
        }
        json_decref(link);
        link = NULL;
    }
cleanup:
    json_decref(link);
    return err;
}

/*
 * Not-a-match memory holds every decision that said so of a pair: the first
 * at the top level ({"review": id} or {"unlink": id}, who, when), the others
 * in "also". Undoing one decision takes its own tag away and leaves the
 * pair remembered while another decision stands.
 */
static const char *reg_memo_kind(const json_t *memo)
{
    return json_object_get(memo, "review") ? "review" : "unlink";
}

static bool reg_memo_tagged(const json_t *memo, const char *kind, const char *tag)
{
    const char *v = json_string_value(json_object_get(memo, kind));
    if (v && strcmp(v, tag) == 0)
        return true;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(memo, "also"), i, e) {
        v = json_string_value(json_object_get(e, kind));
        if (v && strcmp(v, tag) == 0)
            return true;
    }
    return false;
}

/* True when a decision other than (kind, tag) holds the memory. */
static bool reg_memo_held_by_others(const json_t *memo, const char *kind, const char *tag)
{
    const char *v = json_string_value(json_object_get(memo, kind));
    bool top_is_it = v && strcmp(v, tag) == 0 && !strcmp(reg_memo_kind(memo), kind);
    return !top_is_it || json_array_size(json_object_get(memo, "also")) > 0;
}

/* Remembers a pair as two people for the decision `memo` describes (added to a memory there already). */
static rl_error *reg_remember_different(reg_txn *txn, const char *a, const char *b, json_t *memo)
{
    rl_error *err = NULL;
    json_t *old = NULL;
    char pair[2 * REG_ID_LEN + 8];
    size_t plen = reg_pair_key(a, b, pair, sizeof pair);
    const char *kind = reg_memo_kind(memo);
    RL_TRY(reg_get_json(txn->reg, RL_CF_NOMATCH, pair, plen, &old));
    if (!old) {
        reg_put_json(txn->batch, RL_CF_NOMATCH, pair, plen, memo, &err);
    } else if (!reg_memo_tagged(old, kind, json_string_value(json_object_get(memo, kind)))) {
        json_t *also = json_object_get(old, "also");
        if (!also && json_object_set_new(old, "also", also = json_array()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        if (json_array_append(also, memo) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        reg_put_json(txn->batch, RL_CF_NOMATCH, pair, plen, old, &err);
    }
cleanup:
    json_decref(old);
    return err;
}

/* RL_ECONFLICT when a reviewer's not-a-match memory pairs rid with a member of
 * golden (other than rid): putting them together is undoing that decision,
 * which undo does, saying so. A memory held only by the decision (kind, tag)
 * being undone does not count (both NULL: every memory counts). */
static rl_error *reg_require_no_veto(reg_txn *txn, const char *rid, const json_t *golden, const char *kind,
                                     const char *tag)
{
    rl_error *err = NULL;
    json_t *memo = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(golden, "members"), i, m) {
        const char *other = json_string_value(m);
        if (!other || strcmp(other, rid) == 0)
            continue;
        char pair[2 * REG_ID_LEN + 8];
        size_t plen = reg_pair_key(rid, other, pair, sizeof pair);
        RL_TRY(reg_get_json(txn->reg, RL_CF_NOMATCH, pair, plen, &memo));
        if (memo && (!kind || reg_memo_held_by_others(memo, kind, tag)))
            RL_FAIL(RL_ECONFLICT, "records %s and %s were decided different people (not a match, by %s): undo that "
                    "decision first", rid, other, json_string_value(json_object_get(memo, "who")));
        json_decref(memo);
        memo = NULL;
    }
cleanup:
    json_decref(memo);
    return err;
}

rl_error *rl_registry_link(rl_registry *reg, const rl_actor *actor, const char *record_id,
                           const char *golden_id, json_t **event)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *target = NULL;
    bool locked = false;
    RL_TRY(reg_require_id(record_id, "record"));
    RL_TRY(reg_require_id(golden_id, "golden"));
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_active_golden(&txn, golden_id, &target));
    RL_TRY(reg_require_no_veto(&txn, record_id, target, NULL, NULL));
    RL_TRY(reg_move_record(&txn, actor, record_id, golden_id, target, "manual"));
    RL_TRY(reg_pin_members(&txn, actor, target, golden_id));
    json_t *t = target;
    target = NULL;
    RL_TRY(reg_txn_put_golden(&txn, golden_id, t));
    const char *subjects[2] = {record_id, golden_id};
    RL_TRY(reg_finish(&txn, actor, "link", NULL, subjects, 2, event, &locked));
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(target);
    return err;
}

rl_error *rl_registry_unlink(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **event)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *link = NULL, *from = NULL, *fresh = NULL, *memo = NULL, *detail = NULL;
    bool locked = false;
    RL_TRY(reg_require_id(record_id, "record"));
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_txn_link(&txn, record_id, &link));
    if (!link)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", record_id);
    const char *from_id = json_string_value(json_object_get(link, "golden"));
    RL_TRY(reg_txn_golden(&txn, from_id, &from));
    if (from && json_array_size(json_object_get(from, "members")) <= 1)
        RL_FAIL(RL_ECONFLICT, "record %s is alone in golden record %s already", record_id, from_id);
    char new_id[REG_ID_LEN + 1];
    reg_new_id(new_id);
    /* The new golden record starts empty; the move adds the record. */
    fresh = reg_golden_new(new_id, record_id);
    if (!fresh)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_array_clear(json_object_get(fresh, "members"));
    RL_TRY(reg_move_record(&txn, actor, record_id, new_id, fresh, "manual"));
    /* "Not this person": remembered against each record left in it, so that
     * neither rematch nor a later registration puts them together again
     * (tagged with the new golden id, which undo uses to forget them). */
    char now[32];
    reg_now(now);
    memo = json_pack("{s:s, s:s, s:s}", "who", reg_actor_who(actor), "when", now, "unlink", new_id);
    if (!memo)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(from, "members"), i, m)
        if (strcmp(json_string_value(m), record_id) != 0)
            RL_TRY(reg_remember_different(&txn, record_id, json_string_value(m), memo));
    json_t *f = fresh;
    fresh = NULL;
    RL_TRY(reg_txn_put_golden(&txn, new_id, f));
    const char *subjects[3] = {record_id, from_id, new_id};
    detail = json_pack("{s:s, s:s}", "from", from_id, "golden", new_id);
    RL_TRY(reg_finish(&txn, actor, "unlink", detail, subjects, 3, event, &locked));
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(link);
    json_decref(from);
    json_decref(fresh);
    json_decref(memo);
    json_decref(detail);
    return err;
}

rl_error *rl_registry_merge(rl_registry *reg, const rl_actor *actor, const char *from_golden,
                            const char *into_golden, json_t **event)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *from = NULL, *into = NULL, *link = NULL, *closed = NULL;
    bool locked = false;
    RL_TRY(reg_require_id(from_golden, "from"));
    RL_TRY(reg_require_id(into_golden, "into"));
    if (strcmp(from_golden, into_golden) == 0)
        RL_FAIL(RL_EINVAL, "cannot merge a golden record into itself");
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_active_golden(&txn, from_golden, &from));
    RL_TRY(reg_active_golden(&txn, into_golden, &into));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(from, "members"), i, m) {
        RL_TRY(reg_require_no_veto(&txn, json_string_value(m), into, NULL, NULL));
    }
    RL_TRY(reg_pin_members(&txn, actor, into, into_golden));
    /* Items asking whether these two are one person are answered by the merge. */
    closed = json_array();
    if (!closed)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_open_items_against(&txn, from, into_golden, closed));
    RL_TRY(reg_open_items_against(&txn, into, from_golden, closed));
    json_array_foreach(json_object_get(from, "members"), i, m) {
        const char *rid = json_string_value(m);
        RL_TRY(reg_txn_link(&txn, rid, &link));
        json_t *nl = reg_link_new(into_golden, "certain", 1.0, "manual", actor,
                                  link ? json_object_get(link, "index") : NULL);
        json_decref(link);
        link = NULL;
        if (!nl)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(reg_txn_put_link(&txn, rid, nl));
        RL_TRY(reg_golden_add_member(into, rid));
    }
    json_array_clear(json_object_get(from, "members"));
    json_object_set_new(from, "status", json_string("merged"));
    json_object_set_new(from, "merged_into", json_string(into_golden));
    char now[32];
    reg_now(now);
    json_object_set_new(from, "updated", json_string(now));
    json_object_set_new(from, "version", json_integer(json_integer_value(json_object_get(from, "version")) + 1));
    /* The event id is known only once the event is written: note it after, in detail. */
    json_t *f = from, *t = into;
    from = into = NULL;
    RL_TRY(reg_txn_put_golden(&txn, from_golden, f));
    RL_TRY(reg_txn_put_golden(&txn, into_golden, t));
    json_t *detail = json_pack("{s:s, s:s}", "from", from_golden, "into", into_golden);
    if (detail && json_array_size(closed) > 0)
        json_object_set(detail, "closed_reviews", closed);
    const char *subjects[2] = {from_golden, into_golden};
    err = reg_finish(&txn, actor, "merge", detail, subjects, 2, event, &locked);
    json_decref(detail);
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(from);
    json_decref(into);
    json_decref(link);
    json_decref(closed);
    return err;
}

/* Two links say the same about their record but perhaps for its index (its
 * keys, rewritten by every update of the record, which keeps no event): an
 * update since an event does not stand in the way of undoing it. */
static bool reg_link_same_decision(const json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)a, key, v) if (strcmp(key, "index") != 0 && !json_equal(v, json_object_get(b, key)))
        return false;
    json_object_foreach((json_t *)b, key, v) if (strcmp(key, "index") != 0 && !json_object_get(a, key))
        return false;
    return true;
}

/*
 * The members of golden record `id` as event `event_id` left it (`after`)
 * that an undo or unmerge since took out of it, and whose links are still as
 * that one left them (into `left`, an array): the two merges into one golden
 * record, the first unmerged, say. They are where an earlier state put them,
 * by a change that is itself not undone; undoing the event leaves them there.
 * Reads the history after the event only when a member is missing now.
 */
static rl_error *reg_left_by_undo(reg_txn *txn, const char *id, const char *event_id, const json_t *after,
                                  const json_t *current, json_t *left)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *ev = NULL, *missing = json_array(), *link = NULL;
    const json_t *now = json_object_get(current, "members");
    size_t i;
    json_t *m;
    if (!missing)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_array_foreach(json_object_get(after, "members"), i, m) {
        if (!reg_list_has(now, json_string_value(m), json_string_length(m)) && json_array_append(missing, m) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    if (json_array_size(missing) == 0)
        goto cleanup;
    /* History keys are time keys: the events after this one, in order. */
    RL_TRY(rl_store_iter_new(txn->reg->store, RL_CF_HISTORY, event_id, strlen(event_id), NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t vlen;
        const char *v = rl_store_iter_value(it, &vlen);
        json_decref(ev);
        ev = json_loadb(v, vlen, 0, NULL);
        if (!ev)
            RL_FAIL(RL_ESTORE, "history event is not JSON: the store is damaged");
        const char *op = json_string_value(json_object_get(ev, "op"));
        if (!op || (strcmp(op, "undo") != 0 && strcmp(op, "unmerge") != 0))
            continue;
        const json_t *was = json_object_get(json_object_get(json_object_get(ev, "before"), "goldens"), id);
        const json_t *then = json_object_get(json_object_get(json_object_get(ev, "after"), "goldens"), id);
        const json_t *links = json_object_get(json_object_get(ev, "after"), "links");
        json_array_foreach(json_object_get(was, "members"), i, m) {
            const char *rid = json_string_value(m);
            const json_t *moved = json_object_get(links, rid);
            if (!rid || !moved || !reg_list_has(missing, rid, json_string_length(m)) ||
                reg_list_has(json_object_get(then, "members"), rid, json_string_length(m)) ||
                reg_list_has(left, rid, json_string_length(m)))
                continue;
            RL_TRY(reg_txn_link(txn, rid, &link));
            bool still = link && reg_link_same_decision(link, moved);
            json_decref(link);
            link = NULL;
            if (still && json_array_append(left, m) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
        }
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    json_decref(ev);
    json_decref(missing);
    json_decref(link);
    return err;
}

/*
 * The members a golden record gained since an event by registrations alone
 * (records that joined it automatically, whose links the event did not
 * write), when that, new versions (members' updates) and members that `left`
 * (reg_left_by_undo) are all that changed: the list, empty when none joined;
 * else NULL. Neither stands in the way of undoing a reviewer's decision: the
 * records that joined stay with the person they joined, those that left stay
 * where they went, and the restored golden record takes a newer version.
 */
static json_t *reg_grown_since(const json_t *current, const json_t *after, const json_t *event_links,
                               const json_t *left)
{
    json_t *extra = json_array();
    const char *key;
    json_t *v;
    if (!extra)
        return NULL;
    json_object_foreach((json_t *)current, key, v) {
        if (!strcmp(key, "members") || !strcmp(key, "version") || !strcmp(key, "updated"))
            continue;
        if (!json_equal(v, json_object_get(after, key)))
            goto changed;
    }
    json_object_foreach((json_t *)after, key, v) if (!json_object_get(current, key)) goto changed;
    const json_t *was = json_object_get(after, "members"), *now = json_object_get(current, "members");
    size_t i;
    json_array_foreach(was, i, v) {
        if (!reg_list_has(now, json_string_value(v), json_string_length(v)) &&
            (json_object_get(event_links, json_string_value(v)) ||
             !reg_list_has(left, json_string_value(v), json_string_length(v))))
            goto changed;
    }
    json_array_foreach(now, i, v) {
        if (reg_list_has(was, json_string_value(v), json_string_length(v)))
            continue;
        if (json_object_get(event_links, json_string_value(v)) || json_array_append(extra, v) != 0)
            goto changed;
    }
    return extra; /* maybe empty: only a new version (a member's update since) */
changed:
    json_decref(extra);
    return NULL;
}

/* Undo, with the write lock held: checks the event's "after" is still current (but for the growth, the
 * members undos took out, new versions and the link indexes, above), restores "before": each golden
 * record as a new version of the one there now. */
static rl_error *reg_undo_locked(reg_txn *txn, const rl_actor *actor, json_t *ev, const char *event_id)
{
    rl_error *err = NULL;
    json_t *current = NULL, *grown = json_object(), *left = NULL, *now_golden = NULL;
    if (!grown)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (json_object_get(ev, "undone_by"))
        RL_FAIL(RL_ECONFLICT, "event %s was undone already (by %s)", event_id,
                json_string_value(json_object_get(ev, "undone_by")));
    static const char *const kinds[2] = {"goldens", "links"};
    const json_t *event_links = json_object_get(json_object_get(ev, "after"), "links");
    for (int k = 0; k < 2; k++) {
        const char *id;
        json_t *after;
        json_object_foreach(json_object_get(json_object_get(ev, "after"), kinds[k]), id, after) {
            RL_TRY(k == 0 ? reg_txn_golden(txn, id, &current) : reg_txn_link(txn, id, &current));
            bool same = json_is_null(after) ? current == NULL
                        : k == 1               ? current && reg_link_same_decision(current, after)
                                               : current && json_equal(current, after);
            json_t *extra = NULL;
            if (!same && k == 0 && current && !json_is_null(after)) {
                json_decref(left); /* a golden record's own: its entry in grown keeps it */
                if (!(left = json_array()))
                    RL_FAIL(RL_ENOMEM, "out of memory");
                RL_TRY(reg_left_by_undo(txn, id, event_id, after, current, left));
                extra = reg_grown_since(current, after, event_links, left);
            }
            /* A golden record the event made is retired by the undo: not one that others joined since,
             * but one whose only change is a new version (a member's update since) is. */
            const json_t *before = json_object_get(json_object_get(json_object_get(ev, "before"), "goldens"), id);
            if (extra && (!before || json_is_null(before))) {
                same = json_array_size(extra) == 0;
                json_decref(extra);
                extra = NULL;
            }
            if (extra) {
                json_t *entry = json_pack("{s:o, s:O}", "extra", extra, "left", left);
                if (!entry || json_object_set_new(grown, id, entry) != 0)
                    RL_FAIL(RL_ENOMEM, "out of memory");
                same = true;
            }
            json_decref(current);
            current = NULL;
            if (!same)
                RL_FAIL(RL_ECONFLICT, "%s %s changed since event %s: undo the later changes first",
                        k == 0 ? "golden record" : "link of record", id, event_id);
        }
    }
    for (int k = 0; k < 2; k++) {
        const char *id;
        json_t *before;
        json_object_foreach(json_object_get(json_object_get(ev, "before"), kinds[k]), id, before) {
            if (k == 0)
                RL_TRY(reg_txn_golden(txn, id, &now_golden));
            json_t *value = json_is_null(before) ? NULL : json_deep_copy(before);
            const json_t *g = k == 0 ? json_object_get(grown, id) : NULL;
            if (g && value) {
                /* The state before, with those who joined since and without those an undo took out
                 * since. */
                json_t *members = json_object_get(value, "members");
                size_t i;
                json_t *m;
                json_array_foreach(json_object_get(g, "left"), i, m) {
                    for (size_t j = json_array_size(members); j-- > 0;)
                        if (json_equal(json_array_get(members, j), m))
                            json_array_remove(members, j);
                }
                json_array_extend(members, json_object_get(g, "extra"));
                if (json_array_size(members) == 0) /* every member elsewhere now: no person left here */
                    json_object_set_new(value, "status", json_string("retired"));
            }
            if (k == 1 && value) {
                /* The record's own index as it is now: an update since may have changed its keys. */
                json_t *now_link = NULL;
                RL_TRY(reg_txn_link(txn, id, &now_link));
                const json_t *index = json_object_get(now_link, "index");
                if (index)
                    json_object_set(value, "index", (json_t *)index);
                json_decref(now_link);
            }
            if (k == 0 && !value && now_golden) {
                /* A golden record the event created is retired, never deleted: ids are not reused. */
                value = json_deep_copy(now_golden);
                if (value) {
                    json_array_clear(json_object_get(value, "members"));
                    json_object_set_new(value, "status", json_string("retired"));
                }
            }
            if (k == 0 && value && now_golden) {
                /* The view changes: a new version of the one there now, never an old one again, which
                 * a later change would reuse (a client's ETag would name two views). */
                char now[32];
                reg_now(now);
                json_object_set_new(value, "updated", json_string(now));
                json_object_set_new(value, "version",
                                    json_integer(json_integer_value(json_object_get(now_golden, "version")) + 1));
            }
            json_decref(now_golden);
            now_golden = NULL;
            RL_TRY(k == 0 ? reg_txn_put_golden(txn, id, value) : reg_txn_put_link(txn, id, value));
        }
    }
cleanup:
    json_decref(current);
    json_decref(grown);
    json_decref(left);
    json_decref(now_golden);
    return err;
}

/* Deletes the not-a-match pairs one decision put (memo[member] == tag). The
 * family holds human decisions only, so reading it whole under the write
 * lock stays small. */
static rl_error *reg_forget_tagged(reg_txn *txn, const char *member, const char *tag)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    RL_TRY(rl_store_iter_new(txn->reg->store, RL_CF_NOMATCH, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *memo = json_loadb(v, vlen, 0, NULL);
        json_t *also = json_object_get(memo, "also");
        const char *by = json_string_value(json_object_get(memo, member));
        if (by && strcmp(by, tag) == 0 && !strcmp(reg_memo_kind(memo), member)) {
            if (json_array_size(also) == 0) {
                rl_store_batch_delete(txn->batch, RL_CF_NOMATCH, k, klen);
            } else {
                /* The next decision holding the pair comes up to the top. */
                json_t *next = json_deep_copy(json_array_get(also, 0));
                json_t *rest = json_deep_copy(also);
                if (!next || !rest || json_array_remove(rest, 0) != 0 ||
                    (json_array_size(rest) > 0 && json_object_set(next, "also", rest) != 0))
                    err = RL_ERR(RL_ENOMEM, "out of memory");
                else
                    reg_put_json(txn->batch, RL_CF_NOMATCH, k, klen, next, &err);
                json_decref(next);
                json_decref(rest);
            }
        } else {
            for (size_t i = 0; i < json_array_size(also); i++) {
                const char *a = json_string_value(json_object_get(json_array_get(also, i), member));
                if (a && strcmp(a, tag) == 0) {
                    json_array_remove(also, i);
                    if (json_array_size(also) == 0)
                        json_object_del(memo, "also");
                    reg_put_json(txn->batch, RL_CF_NOMATCH, k, klen, memo, &err);
                    break;
                }
            }
        }
        json_decref(memo);
        if (err)
            goto cleanup;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* Opens a resolved item (review_id, its stored JSON) again, showing who
 * reopened it and by which event; with nothing changed, newer names the item
 * open for its pair meanwhile ("" when none). */
static rl_error *reg_reopen_item(reg_txn *txn, const rl_actor *actor, json_t *item, const char *review_id,
                                 const char *undo_id, char newer[REG_TIMEKEY_LEN + 1])
{
    rl_error *err = NULL;
    const char *record = json_string_value(json_object_get(item, "record"));
    const char *golden = json_string_value(json_object_get(item, "candidate_golden"));
    RL_TRY(reg_open_review_of(txn->reg, record, golden, newer));
    if (newer[0])
        goto cleanup;
    char okey[2 * REG_ID_LEN + 8];
    size_t oklen = reg_review_open_key(record, golden, okey);
    char now[32];
    reg_now(now);
    json_object_set_new(item, "status", json_string("open"));
    json_object_del(item, "resolution");
    json_object_set_new(item, "reopened", json_pack("{s:s, s:s, s:s}", "who", reg_actor_who(actor), "when", now,
                                                    "event", undo_id));
    reg_put_json(txn->batch, RL_CF_REVIEW, review_id, strlen(review_id), item, &err);
    if (err)
        goto cleanup;
    rl_store_batch_put(txn->batch, RL_CF_REVIEW_OPEN, okey, oklen, review_id, strlen(review_id));
    txn->d_open_reviews++;
cleanup:
    return err;
}

/* The review item review_id if the event event_id resolved it (and nothing since), else NULL. */
static rl_error *reg_item_resolved_by(reg_txn *txn, const char *review_id, const char *event_id, json_t **out)
{
    rl_error *err = NULL;
    *out = NULL;
    RL_TRY(reg_get_json(txn->reg, RL_CF_REVIEW, review_id, strlen(review_id), out));
    const char *decided_by = json_string_value(json_object_get(json_object_get(*out, "resolution"), "event"));
    if (!decided_by || strcmp(decided_by, event_id) != 0) {
        json_decref(*out);
        *out = NULL;
    }
cleanup:
    return err;
}

/*
 * Undoing a review decision also takes the decision back: the item is open
 * again (it shows who reopened it) and, for "not a match", the pairs it put in
 * the not-a-match memory are forgotten, so the reviewer can decide afresh.
 * The memory is found by its "review" member: the family holds human
 * decisions only, so reading it whole under the write lock stays small.
 * RL_ECONFLICT when a newer item for the same pair is open already.
 */
static rl_error *reg_undo_review(reg_txn *txn, const rl_actor *actor, const json_t *ev, const char *event_id,
                                 const char *undo_id, json_t **reopened)
{
    rl_error *err = NULL;
    json_t *item = NULL;
    const char *op = json_string_value(json_object_get(ev, "op"));
    const char *review_id = json_string_value(json_object_get(json_object_get(ev, "detail"), "review"));
    if (!op || !review_id || (strcmp(op, "review-link") != 0 && strcmp(op, "review-not-a-match") != 0))
        return NULL;
    RL_TRY(reg_item_resolved_by(txn, review_id, event_id, &item));
    if (!item)
        goto cleanup; /* the item was decided again since, or is gone: nothing to reopen */
    char newer[REG_TIMEKEY_LEN + 1];
    RL_TRY(reg_reopen_item(txn, actor, item, review_id, undo_id, newer));
    if (newer[0])
        RL_FAIL(RL_ECONFLICT, "a newer review item for this pair is open (%s): decide that one", newer);
    if (strcmp(op, "review-not-a-match") == 0)
        RL_TRY(reg_forget_tagged(txn, "review", review_id));
    *reopened = json_incref(item);
cleanup:
    json_decref(item);
    return err;
}

/* Undoing a merge opens again the review items it answered, unless a newer
 * item asks about the same pair meanwhile. */
static rl_error *reg_undo_closed_reviews(reg_txn *txn, const rl_actor *actor, const json_t *ev,
                                        const char *event_id, const char *undo_id)
{
    rl_error *err = NULL;
    json_t *item = NULL;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(json_object_get(ev, "detail"), "closed_reviews"), i, v) {
        const char *review_id = json_string_value(v);
        json_decref(item);
        item = NULL;
        if (review_id)
            RL_TRY(reg_item_resolved_by(txn, review_id, event_id, &item));
        char newer[REG_TIMEKEY_LEN + 1];
        if (item)
            RL_TRY(reg_reopen_item(txn, actor, item, review_id, undo_id, newer)); /* a newer one asks already */
    }
cleanup:
    json_decref(item);
    return err;
}

/* An undo puts records back where they were: not beside a record that a
 * decision made since says is another person (the not-a-match memory). The
 * memory an unlink being undone put itself does not count. Run after
 * reg_undo_locked, on the state it restored (members who joined since
 * included). */
static rl_error *reg_undo_require_no_veto(reg_txn *txn, const json_t *ev)
{
    rl_error *err = NULL;
    json_t *link = NULL, *golden = NULL;
    const char *op = json_string_value(json_object_get(ev, "op"));
    const char *tag = json_string_value(json_object_get(json_object_get(ev, "detail"), "golden"));
    bool unlink = op && strcmp(op, "unlink") == 0 && tag;
    const char *rid;
    json_t *before;
    json_object_foreach(json_object_get(json_object_get(ev, "before"), "links"), rid, before) {
        RL_TRY(reg_txn_link(txn, rid, &link));
        const char *gid = json_string_value(json_object_get(link, "golden"));
        if (gid)
            RL_TRY(reg_txn_golden(txn, gid, &golden));
        if (golden)
            RL_TRY(reg_require_no_veto(txn, rid, golden, unlink ? "unlink" : NULL, unlink ? tag : NULL));
        json_decref(link);
        json_decref(golden);
        link = golden = NULL;
    }
cleanup:
    json_decref(link);
    json_decref(golden);
    return err;
}

/* Undoing an unlink forgets the not-a-match pairs it remembered (tagged with
 * the golden record it made), as undoing a "not a match" decision does. */
static rl_error *reg_undo_unlink_memory(reg_txn *txn, const json_t *ev)
{
    const char *op = json_string_value(json_object_get(ev, "op"));
    const char *tag = json_string_value(json_object_get(json_object_get(ev, "detail"), "golden"));
    if (!op || strcmp(op, "unlink") != 0 || !tag)
        return NULL; /* unlinks before this memory was kept have no tag, and nothing to forget */
    return reg_forget_tagged(txn, "unlink", tag);
}

static rl_error *reg_undo_event(rl_registry *reg, const rl_actor *actor, const char *event_id, const char *op,
                                json_t **event)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *ev = NULL, *done = NULL, *reopened = NULL;
    bool locked = false;
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_get_json(reg, RL_CF_HISTORY, event_id, strlen(event_id), &ev));
    if (!ev)
        RL_FAIL(RL_ENOTFOUND, "no history event %s", event_id);
    /* An undo's own before and after say nothing of the review decision or the
     * memory it took back, so undoing it would restore the links alone: half a
     * decision. Deciding again says what is meant. */
    const char *ev_op = json_string_value(json_object_get(ev, "op"));
    if (ev_op && (strcmp(ev_op, "undo") == 0 || strcmp(ev_op, "unmerge") == 0))
        RL_FAIL(RL_ECONFLICT, "event %s is an %s, which cannot be undone: link, merge or decide the review item "
                "again instead", event_id, ev_op);
    RL_TRY(reg_undo_locked(&txn, actor, ev, event_id));
    RL_TRY(reg_undo_require_no_veto(&txn, ev));
    json_t *detail = json_pack("{s:s, s:s}", "undoes", event_id, "undoes_op",
                               json_string_value(json_object_get(ev, "op")));
    char new_id[REG_TIMEKEY_LEN + 1];
    err = reg_txn_event(&txn, actor, op, detail, new_id, &done);
    json_decref(detail);
    if (err)
        goto cleanup;
    RL_TRY(reg_undo_review(&txn, actor, ev, event_id, new_id, &reopened));
    RL_TRY(reg_undo_closed_reviews(&txn, actor, ev, event_id, new_id));
    RL_TRY(reg_undo_unlink_memory(&txn, ev));
    json_object_set_new(ev, "undone_by", json_string(new_id));
    reg_put_json(txn.batch, RL_CF_HISTORY, event_id, strlen(event_id), ev, &err);
    if (err)
        goto cleanup;
    /* Subjects: every golden record and record the undo touched. */
    const char *subjects[64];
    int ns = 0;
    const char *id;
    json_t *v;
    json_object_foreach(txn.goldens, id, v) if (ns < 64) subjects[ns++] = id;
    json_object_foreach(txn.links, id, v) if (ns < 64) subjects[ns++] = id;
    /* A reopened decision concerns its pair even when no link moved (not-a-match). */
    static const char *const pair[3] = {"record", "candidate_golden", "golden"};
    for (int i = 0; reopened && i < 3; i++) {
        const char *s = json_string_value(json_object_get(reopened, pair[i]));
        if (s && ns < 64)
            subjects[ns++] = s;
    }
    json_t *audit_detail = json_pack("{s:s, s:s}", "event", new_id, "undoes", event_id);
    err = reg_txn_audit(&txn, actor, op, subjects, ns, "ok", audit_detail);
    json_decref(audit_detail);
    if (err)
        goto cleanup;
    uint64_t ticket;
    RL_TRY(reg_txn_apply(&txn, &ticket));
    pthread_mutex_unlock(&reg->write_lock);
    locked = false;
    RL_TRY(rl_store_sync(reg->store, ticket));
    if (event) {
        *event = done;
        done = NULL;
    }
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(ev);
    json_decref(done);
    json_decref(reopened);
    return err;
}

rl_error *rl_registry_undo(rl_registry *reg, const rl_actor *actor, const char *event_id, json_t **event)
{
    rl_error *err = NULL;
    RL_TRY(reg_require_id(event_id, "event"));
    RL_TRY(reg_undo_event(reg, actor, event_id, "undo", event));
cleanup:
    return err;
}

/* The merge event that retired golden_id: the newest history event whose detail says so. */
static rl_error *reg_find_merge_event(rl_registry *reg, const char *golden_id, char out[REG_TIMEKEY_LEN + 1])
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *ev = NULL;
    out[0] = '\0';
    /* The audit trail of the golden record lists its events, newest last. */
    char prefix[REG_ID_LEN + 8];
    int plen = snprintf(prefix, sizeof prefix, "%s%c", golden_id, '\0');
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_AUDIT_SUBJECT, prefix, (size_t)plen, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        RL_TRY(reg_get_json(reg, RL_CF_AUDIT, k + plen, klen - (size_t)plen, &ev));
        const char *action = json_string_value(json_object_get(ev, "action"));
        const char *event = json_string_value(json_object_get(json_object_get(ev, "detail"), "event"));
        const char *first = json_string_value(json_array_get(json_object_get(ev, "subjects"), 0));
        if (action && strcmp(action, "merge") == 0 && event && first && strcmp(first, golden_id) == 0)
            snprintf(out, REG_TIMEKEY_LEN + 1, "%s", event);
        json_decref(ev);
        ev = NULL;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    json_decref(ev);
    rl_store_iter_destroy(it);
    return err;
}

rl_error *rl_registry_unmerge(rl_registry *reg, const rl_actor *actor, const char *golden_id, json_t **event)
{
    rl_error *err = NULL;
    json_t *golden = NULL;
    RL_TRY(reg_require_id(golden_id, "golden"));
    RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, golden_id, strlen(golden_id), &golden));
    if (!golden)
        RL_FAIL(RL_ENOTFOUND, "no golden record %s", golden_id);
    const char *status = json_string_value(json_object_get(golden, "status"));
    if (!status || strcmp(status, "merged") != 0)
        RL_FAIL(RL_ECONFLICT, "golden record %s was not merged into another", golden_id);
    char event_id[REG_TIMEKEY_LEN + 1];
    RL_TRY(reg_find_merge_event(reg, golden_id, event_id));
    if (!event_id[0])
        RL_FAIL(RL_ESTORE, "golden record %s is merged but its merge event is missing", golden_id);
    RL_TRY(reg_undo_event(reg, actor, event_id, "unmerge", event));
cleanup:
    json_decref(golden);
    return err;
}

/* ---- review queue ---- */

rl_error *rl_registry_review_list(rl_registry *reg, bool all, int limit, json_t **out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *items = json_array();
    *out = NULL;
    if (!items)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (limit <= 0 || limit > 10000)
        limit = 10000;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_REVIEW, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it) && (int)json_array_size(items) < limit; rl_store_iter_next(it)) {
        size_t vlen;
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *item = json_loadb(v, vlen, 0, NULL);
        if (!item)
            RL_FAIL(RL_ESTORE, "review item is not JSON: the store is damaged");
        const char *status = json_string_value(json_object_get(item, "status"));
        if (all || (status && strcmp(status, "open") == 0))
            json_array_append(items, item);
        json_decref(item);
    }
    RL_TRY(rl_store_iter_status(it));
    *out = json_pack("{s:o, s:I}", "items", items, "open", (json_int_t)reg->n_open_reviews);
    items = NULL;
cleanup:
    rl_store_iter_destroy(it);
    json_decref(items);
    return err;
}

rl_error *rl_registry_review_show(rl_registry *reg, const rl_actor *actor, const char *review_id, json_t **out)
{
    rl_error *err = NULL;
    json_t *item = NULL, *a = NULL, *b = NULL;
    *out = NULL;
    RL_TRY(reg_require_id(review_id, "review"));
    RL_TRY(reg_get_json(reg, RL_CF_REVIEW, review_id, strlen(review_id), &item));
    if (!item)
        RL_FAIL(RL_ENOTFOUND, "no review item %s", review_id);
    const char *ra = json_string_value(json_object_get(item, "record"));
    const char *rb = json_string_value(json_object_get(item, "candidate_record"));
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, ra, strlen(ra), &a));
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rb, strlen(rb), &b));
    *out = json_pack("{s:O, s:O, s:O}", "item", item, "record", a ? a : json_null(), "candidate",
                     b ? b : json_null());
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *subjects[2] = {ra, rb};
    RL_TRY(reg_audit_now(reg, actor, "review-read", subjects, 2, "ok", NULL));
cleanup:
    json_decref(item);
    json_decref(a);
    json_decref(b);
    return err;
}

size_t reg_review_open_key(const char *record_id, const char *golden, char out[2 * REG_ID_LEN + 8])
{
    int n = snprintf(out, 2 * REG_ID_LEN + 8, "%s%c%s", record_id, '\0', golden);
    return n > 0 && n < 2 * REG_ID_LEN + 8 ? (size_t)n : 0;
}

rl_error *reg_open_review_of(rl_registry *reg, const char *record_id, const char *golden,
                             char id[REG_TIMEKEY_LEN + 1])
{
    rl_error *err = NULL;
    char *v = NULL;
    char okey[2 * REG_ID_LEN + 8];
    size_t oklen = reg_review_open_key(record_id, golden, okey);
    size_t len = 0;
    bool found = false;
    id[0] = '\0';
    RL_TRY(rl_store_get(reg->store, RL_CF_REVIEW_OPEN, okey, oklen, &v, &len, &found));
    if (found && len == REG_TIMEKEY_LEN) {
        memcpy(id, v, len);
        id[len] = '\0';
    }
cleanup:
    free(v);
    return err;
}

rl_error *rl_registry_review_add_biometric(rl_registry *reg, const rl_actor *actor, const char *record_id,
                                           const char *candidate_record, double score, const json_t *details,
                                           json_t **out)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *la = NULL, *lb = NULL, *evidence = NULL, *item = NULL, *memo = NULL;
    bool locked = false;
    const char *reason = NULL;
    char id[REG_TIMEKEY_LEN + 1] = "";
    if (out)
        *out = NULL;
    RL_TRY(reg_require_id(record_id, "record"));
    RL_TRY(reg_require_id(candidate_record, "candidate record"));
    if (strcmp(record_id, candidate_record) == 0)
        RL_FAIL(RL_EINVAL, "a record is not a duplicate of itself");
    if (!(score >= 0 && score <= 1))
        RL_FAIL(RL_EINVAL, "score: expected a number from 0 to 1");
    if (details && !json_is_object(details))
        RL_FAIL(RL_EINVAL, "details: expected a JSON object");
    char now[32];
    reg_now(now);
    /* What the reviewer reads: the modality, the score and the caller's evidence (positions, threshold). */
    evidence = details ? json_deep_copy(details) : json_object();
    if (!evidence || json_object_set_new(evidence, "modality", json_string("fingerprint")) != 0 ||
        json_object_set_new(evidence, "score", json_real(score)) != 0 ||
        json_object_set_new(evidence, "found", json_string(now)) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");

    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_txn_link(&txn, record_id, &la));
    RL_TRY(reg_txn_link(&txn, candidate_record, &lb));
    if (!la)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", record_id);
    if (!lb)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", candidate_record);
    const char *ga = json_string_value(json_object_get(la, "golden"));
    const char *gb = json_string_value(json_object_get(lb, "golden"));
    if (!ga || !gb)
        RL_FAIL(RL_ESTORE, "a link without its golden record: the store is damaged");
    char pair[2 * REG_ID_LEN + 8];
    size_t plen = reg_pair_key(record_id, candidate_record, pair, sizeof pair);
    RL_TRY(reg_get_json(reg, RL_CF_NOMATCH, pair, plen, &memo));
    if (strcmp(ga, gb) == 0) {
        reason = "same-golden"; /* one person already: nothing to decide */
    } else if (memo) {
        reason = "not-a-match"; /* a reviewer decided these two differ; the answer says the finger disagrees */
    } else {
        /* An item open for the pair either way (demographic, or an earlier enrolment) gets the evidence
         * added, not a second item: the reviewer decides the pair once. */
        RL_TRY(reg_open_review_of(reg, record_id, gb, id));
        if (!id[0])
            RL_TRY(reg_open_review_of(reg, candidate_record, ga, id));
        if (id[0]) {
            reason = "open-already";
            RL_TRY(reg_get_json(reg, RL_CF_REVIEW, id, strlen(id), &item));
            if (!item)
                RL_FAIL(RL_ESTORE, "review index names item %s, which does not exist: the store is damaged", id);
            if (json_object_set(item, "biometric", evidence) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
        } else {
            reg_time_key(reg, rl_time_wall_ms(), id);
            /* A human decides: at most "probable", as for demographic items. */
            item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:{s:O}}", "id", id, "status",
                             "open", "kind", "biometric", "created", now, "record", record_id, "golden", ga,
                             "candidate_golden", gb, "candidate_record", candidate_record, "score", score, "grade",
                             "probable", "fields", "biometric", evidence);
            if (!item)
                RL_FAIL(RL_ENOMEM, "out of memory");
            char okey[2 * REG_ID_LEN + 8];
            size_t oklen = reg_review_open_key(record_id, gb, okey);
            rl_store_batch_put(txn.batch, RL_CF_REVIEW_OPEN, okey, oklen, id, REG_TIMEKEY_LEN);
            txn.d_open_reviews++;
        }
        reg_put_json(txn.batch, RL_CF_REVIEW, id, REG_TIMEKEY_LEN, item, &err);
        if (err)
            goto cleanup;
    }
    const char *subjects[2] = {record_id, candidate_record};
    json_t *detail = json_pack("{s:s?, s:s, s:f}", "review", id[0] ? id : NULL, "outcome",
                               reason ? reason : "queued", "score", score);
    err = reg_txn_audit(&txn, actor, "review-biometric", subjects, 2, reason ? reason : "queued", detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    uint64_t ticket = 0;
    RL_TRY(reg_txn_apply(&txn, &ticket));
    pthread_mutex_unlock(&reg->write_lock);
    locked = false;
    RL_TRY(rl_store_sync(reg->store, ticket));
    if (out) {
        *out = json_pack("{s:s?, s:b, s:s?}", "review", id[0] ? id : NULL, "queued", reason == NULL, "reason",
                         reason);
        if (!*out)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(la);
    json_decref(lb);
    json_decref(evidence);
    json_decref(item);
    json_decref(memo);
    return err;
}

rl_error *rl_registry_review_resolve(rl_registry *reg, const rl_actor *actor, const char *review_id,
                                     const char *decision, json_t **out)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    json_t *item = NULL, *target = NULL, *ev = NULL, *link = NULL;
    bool locked = false;
    *out = NULL;
    RL_TRY(reg_require_id(review_id, "review"));
    bool same = decision && strcmp(decision, "link") == 0;
    bool different = decision && strcmp(decision, "not-a-match") == 0;
    if (!same && !different)
        RL_FAIL(RL_EINVAL, "decision must be \"link\" (same person) or \"not-a-match\"");
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_txn_begin(reg, &txn));
    RL_TRY(reg_get_json(reg, RL_CF_REVIEW, review_id, strlen(review_id), &item));
    if (!item)
        RL_FAIL(RL_ENOTFOUND, "no review item %s", review_id);
    if (strcmp(json_string_value(json_object_get(item, "status")), "open") != 0)
        RL_FAIL(RL_ECONFLICT, "review item %s is resolved already", review_id);
    const char *rid = json_string_value(json_object_get(item, "record"));
    const char *cand_golden = json_string_value(json_object_get(item, "candidate_golden"));
    char now[32];
    reg_now(now);
    /* The candidate record may have moved since the item was queued (a merge,
     * a hand link, an unlink), and the record linked there by hand: the
     * question is about the candidate record's person as it is now. */
    char person[REG_ID_LEN + 8];
    RL_TRY(reg_current_person(&txn, item, person));
    RL_TRY(reg_txn_link(&txn, rid, &link));
    if (!link)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", rid);
    bool together = strcmp(json_string_value(json_object_get(link, "golden")), person) == 0;
    if (different && together)
        RL_FAIL(RL_ECONFLICT, "record %s is in golden record %s already (linked since the item was queued): "
                "unlink it first, or resolve \"link\"", rid, person);
    const char *cand_record = json_string_value(json_object_get(item, "candidate_record"));
    if (different && cand_record) {
        /* The candidate record itself may have been linked beside this one since. */
        json_t *cand_link = NULL;
        RL_TRY(reg_txn_link(&txn, cand_record, &cand_link));
        bool beside = cand_link && strcmp(json_string_value(json_object_get(cand_link, "golden")),
                                          json_string_value(json_object_get(link, "golden"))) == 0;
        json_decref(cand_link);
        if (beside)
            RL_FAIL(RL_ECONFLICT, "records %s and %s are in one golden record now (linked since the item was "
                    "queued): unlink one first, or resolve \"link\"", rid, cand_record);
    }
    if (same && together) {
        /* Together already (by hand, a merge or a rematch): the decision still pins the person. */
        RL_TRY(reg_txn_golden(&txn, person, &target));
        if (target)
            RL_TRY(reg_pin_members(&txn, actor, target, person));
    } else if (same) {
        RL_TRY(reg_active_golden(&txn, person, &target));
        RL_TRY(reg_require_no_veto(&txn, rid, target, NULL, NULL));
        RL_TRY(reg_move_record(&txn, actor, rid, person, target, "manual"));
        RL_TRY(reg_pin_members(&txn, actor, target, person));
        json_t *t = target;
        target = NULL;
        RL_TRY(reg_txn_put_golden(&txn, person, t));
    } else if (different) {
        /* Remember the pair for every record now in the candidate's golden record. */
        RL_TRY(reg_txn_golden(&txn, person, &target));
        json_t *members = target ? json_object_get(target, "members") : NULL;
        size_t i;
        json_t *m;
        json_t *memo = json_pack("{s:s, s:s, s:s}", "who", reg_actor_who(actor), "when", now, "review", review_id);
        if (!memo)
            RL_FAIL(RL_ENOMEM, "out of memory");
        json_array_foreach(members, i, m) {
            if (!err)
                err = reg_remember_different(&txn, rid, json_string_value(m), memo);
        }
        if (!err && cand_record)
            err = reg_remember_different(&txn, rid, cand_record, memo);
        json_decref(memo);
        if (err)
            goto cleanup;
    }
    json_object_set_new(item, "status", json_string("resolved"));
    char okey[2 * REG_ID_LEN + 8];
    size_t oklen = reg_review_open_key(rid, cand_golden, okey);
    rl_store_batch_delete(txn.batch, RL_CF_REVIEW_OPEN, okey, oklen);
    txn.d_open_reviews--;
    char event_id[REG_TIMEKEY_LEN + 1];
    json_t *detail = json_pack("{s:s, s:s}", "review", review_id, "decision", decision);
    err = reg_txn_event(&txn, actor, same ? "review-link" : "review-not-a-match", detail, event_id, &ev);
    json_decref(detail);
    if (err)
        goto cleanup;
    json_object_set_new(item, "resolution", json_pack("{s:s, s:s, s:s, s:s}", "decision", decision, "who",
                                                      reg_actor_who(actor), "when", now, "event", event_id));
    reg_put_json(txn.batch, RL_CF_REVIEW, review_id, strlen(review_id), item, &err);
    if (err)
        goto cleanup;
    const char *subjects[3] = {rid, cand_golden, json_string_value(json_object_get(item, "golden"))};
    json_t *audit_detail = json_pack("{s:s, s:s, s:s}", "review", review_id, "decision", decision, "event", event_id);
    err = reg_txn_audit(&txn, actor, "review-decision", subjects, 3, "ok", audit_detail);
    json_decref(audit_detail);
    if (err)
        goto cleanup;
    uint64_t ticket;
    RL_TRY(reg_txn_apply(&txn, &ticket));
    pthread_mutex_unlock(&reg->write_lock);
    locked = false;
    RL_TRY(rl_store_sync(reg->store, ticket));
    *out = json_pack("{s:O, s:O}", "item", item, "event", ev);
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    json_decref(item);
    json_decref(target);
    json_decref(ev);
    json_decref(link);
    return err;
}
