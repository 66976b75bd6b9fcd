/*
 * registry_finger: enrolled fingers in the store, the in-memory gallery fed
 * from it, and 1:N identification (registry.h has the contract).
 *
 * Keys in the templates family (text then a position, so `ldb` stays readable):
 *   "F" record id \0 "NN"  -> finger value (below)
 *   "D" record id \0 "NN"  -> "RLFD" version 4, 3 reserved bytes, then the finger's
 *                             prefilter data as bio_prefilter_encode writes it (its
 *                             KERN_PF_GCYL cylinders with directions and positions).
 *                             Versions 1 (the hashed descriptor of the first
 *                             prefilter), 2 and 3 (12 cylinders, central then spread,
 *                             without positions) are no longer read: the gallery
 *                             load rebuilds such a finger's data from its template.
 * Finger value, little-endian: "RLFG", version (1), position, quality,
 * reserved (0), template length (u32), features length (u32), the native
 * template, the encoded bio_features. Versioned so that a later layout is
 * refused, not misread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_log.h"
#include "common/rl_time.h"
#include "kernels/kern_cpu.h"

#include "biometrics/bio_gallery.h"
#include "biometrics/bio_match.h"
#include "common/rl_buf.h"
#include "common/rl_le.h"
#include "registry/registry_internal.h"

enum { FG_HDR = 16, FG_VERSION = 1, FD_VERSION = 4, FD_BYTES = 8 + BIO_PF_ENCODED_BYTES, FG_MAX_BYTES = 1 << 22 };

static size_t fg_key(char kind, const char *rid, int position, char *out, size_t size)
{
    int n = snprintf(out, size, "%c%s%c%02d", kind, rid, '\0', position);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}


static rl_error *fg_check(const char *rid, int position)
{
    if (!rid || !rl_registry_id_valid(rid))
        return RL_ERR(RL_EINVAL, "record: expected an id of 1 to 64 letters, digits, '-' or '.'");
    if (position < 0 || position > RL_FINGER_POSITION_MAX)
        return RL_ERR(RL_EINVAL, "finger position: expected 0 (unknown) to 10 (ISO/IEC 19794-2)");
    return NULL;
}

/* Whether err says stored finger data is damaged (bad bytes), rather than
 * unreadable by this version or a failure to read it (memory, I/O). */
static bool fg_damaged(const rl_error *err)
{
    rl_code c = rl_error_code(err);
    return c == RL_ESTORE || c == RL_EINVAL;
}

/* Splits a finger value; pointers into v. */
static rl_error *fg_parse(const unsigned char *v, size_t len, const unsigned char **tpl, size_t *tlen,
                          const unsigned char **feat, size_t *flen, int *quality)
{
    if (len < FG_HDR || memcmp(v, "RLFG", 4) != 0)
        return RL_ERR(RL_ESTORE, "finger value: not RLFG: the store is damaged");
    if (v[4] != FG_VERSION)
        return RL_ERR(RL_EUNSUPPORTED, "finger value version %u: written by a newer Ridgeline", v[4]);
    uint32_t a = rl_get_le32(v + 8), b = rl_get_le32(v + 12);
    if ((uint64_t)a + b + FG_HDR != len)
        return RL_ERR(RL_ESTORE, "finger value: lengths disagree: the store is damaged");
    *tpl = v + FG_HDR;
    *tlen = a;
    *feat = v + FG_HDR + a;
    *flen = b;
    if (quality)
        *quality = v[6];
    return NULL;
}

static void fd_encode(const bio_pf_finger *d, unsigned char out[FD_BYTES])
{
    memset(out, 0, FD_BYTES);
    memcpy(out, "RLFD", 4);
    out[4] = FD_VERSION;
    bio_prefilter_encode(d, out + 8);
}

/* RL_EUNSUPPORTED for an older version (the caller rebuilds from the template);
 * RL_ESTORE for anything malformed, including value bits outside the valid
 * cells, which the kernels rely on never seeing. */
static rl_error *fd_decode(const unsigned char *v, size_t len, bio_pf_finger *d)
{
    if (len >= 5 && memcmp(v, "RLFD", 4) == 0 && v[4] >= 1 && v[4] < FD_VERSION)
        return RL_ERR(RL_EUNSUPPORTED, "finger descriptor version %u: rebuilt from the template", v[4]);
    if (len != FD_BYTES || memcmp(v, "RLFD", 4) != 0)
        return RL_ERR(RL_ESTORE, "finger descriptor: wrong length or magic: the store is damaged");
    if (v[4] != FD_VERSION)
        return RL_ERR(RL_EUNSUPPORTED, "finger descriptor version %u: written by a newer Ridgeline", v[4]);
    rl_error *err = bio_prefilter_decode(v + 8, len - 8, d);
    if (err) {
        rl_error *damaged = RL_ERR(RL_ESTORE, "finger descriptor: %s: the store is damaged", rl_error_message(err));
        rl_error_free(err);
        return damaged;
    }
    return NULL;
}

/* Key "record\0NN" without the kind byte -> gallery key. */
static rl_error *fg_gallery_key(const char *k, size_t klen, bio_gallery_key *gk)
{
    memset(gk, 0, sizeof *gk);
    size_t rl = strnlen(k, klen);
    if (rl == 0 || rl > BIO_GALLERY_RECORD_MAX || klen != rl + 3)
        return RL_ERR(RL_ESTORE, "finger key: malformed: the store is damaged");
    memcpy(gk->record, k, rl);
    gk->position = (uint8_t)((k[rl + 1] - '0') * 10 + (k[rl + 2] - '0'));
    return NULL;
}

/* A finger's prefilter block from the template in its "F" value (for
 * descriptors written by an older version). */
static rl_error *fg_rebuild_block(rl_registry *reg, const bio_gallery_key *gk, bio_pf_finger *d)
{
    rl_error *err = NULL;
    char *v = NULL;
    bio_template *t = malloc(sizeof *t);
    if (!t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    char key[REG_KEY_MAX];
    size_t kl = fg_key('F', gk->record, gk->position, key, sizeof key), vlen = 0, tlen, flen;
    bool found = false;
    const unsigned char *tp, *fp;
    RL_TRY(rl_store_get(reg->store, RL_CF_TEMPLATES, key, kl, &v, &vlen, &found));
    if (!found)
        RL_FAIL(RL_ESTORE, "finger %s/%d: descriptor without its template: the store is damaged", gk->record,
                gk->position);
    RL_TRY(fg_parse((const unsigned char *)v, vlen, &tp, &tlen, &fp, &flen, NULL));
    RL_TRY(bio_template_decode(tp, tlen, t, NULL));
    bio_prefilter_finger(t, d);
cleanup:
    free(v);
    free(t);
    return err;
}

/* How a stored prefilter block came into the gallery. */
typedef enum fg_block_how { FG_BLOCK_READ, FG_BLOCK_REBUILT, FG_BLOCK_REPAIRED, FG_BLOCK_LEFT_OUT, FG_BLOCK_HOWS } fg_block_how;

/* One stored block (its key k after the kind byte, its value v) as the
 * gallery's key and data: read; rebuilt from its finger's template when an
 * earlier prefilter wrote it, or repaired so when it is damaged; left out
 * when its finger cannot be read at all. Anything but damage is an error. */
static rl_error *fg_load_block(rl_registry *reg, const char *k, size_t klen, const char *v, size_t vlen,
                               bio_gallery_key *gk, bio_pf_finger *d, fg_block_how *how)
{
    rl_error *bad = NULL;
    *how = FG_BLOCK_LEFT_OUT;
    bad = fg_gallery_key(k, klen, gk);
    if (bad) /* no finger to rebuild it from */
        goto damaged;
    bad = fd_decode((const unsigned char *)v, vlen, d);
    if (!bad) {
        *how = FG_BLOCK_READ;
        return NULL;
    }
    bool earlier = rl_error_code(bad) == RL_EUNSUPPORTED && vlen >= 5 && v[4] >= 1 && v[4] < FD_VERSION;
    if (!earlier && !fg_damaged(bad))
        return bad;
    rl_error_free(bad);
    bad = fg_rebuild_block(reg, gk, d);
    if (!bad) {
        *how = earlier ? FG_BLOCK_REBUILT : FG_BLOCK_REPAIRED;
        return NULL;
    }
damaged:
    if (!fg_damaged(bad))
        return bad;
    rl_error_free(bad);
    return NULL;
}

/* Logs the device copy's failures not logged yet (a GPU that lost a write
 * or a search: the CPU serves until the copy is rewritten). Device messages
 * only: no finger or record reaches the log. */
static void reg_gallery_device_log(rl_registry *reg, bio_gallery *g)
{
    bio_gallery_device d;
    bio_gallery_device_get(g, &d);
    pthread_mutex_lock(&reg->gallery_lock);
    if (d.failures > reg->gallery_device_logged) {
        rl_log(RL_LOG_WARN, "registry", "1:N prefilter on the CPU: the OpenCL copy of the gallery is not current",
               "failures=%llu current=%s reason=\"%s\"", (unsigned long long)d.failures,
               d.current ? "true" : "false", d.note);
        reg->gallery_device_logged = d.failures;
    }
    pthread_mutex_unlock(&reg->gallery_lock);
}

/* The gallery, loaded from the prefilter blocks at the first call. */
static rl_error *reg_gallery(rl_registry *reg, bio_gallery **out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    bio_gallery *g = NULL;
    pthread_mutex_lock(&reg->gallery_lock);
    if (reg->gallery)
        goto cleanup;
    bio_gallery_options o;
    bio_gallery_options_defaults(&o);
    o.resident_budget = (size_t)reg->opts.finger_resident_mb << 20;
    /* Automatic device choice (kern_ocl_device_setting): a GPU when the box
     * has one, PoCL too under RIDGELINE_KERNELS=opencl, else the CPU kernels. */
    o.opencl = "";
    RL_TRY(bio_gallery_new(&o, &g));
    if (bio_gallery_opencl_note(g)[0] && kern_dispatch_get()->opencl)
        rl_log(RL_LOG_WARN, "registry", "1:N prefilter on the CPU: OpenCL not usable", "reason=\"%s\"",
               bio_gallery_opencl_note(g));
    /* The device copy in one transfer at the end, not one per finger. */
    bio_gallery_device_hold(g);
    /* A block that does not load is rebuilt from its finger's template (an
     * earlier prefilter's version, or damage); a finger whose data cannot be
     * read at all is left out of the searches, counted in the log (by number:
     * the log names no record) and named by `ridgeline check`, so that one
     * damaged finger does not stop every identification, enrolment and
     * deletion of the registry. */
    size_t count[FG_BLOCK_HOWS] = {0};
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_TEMPLATES, "D", 1, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        bio_gallery_key gk;
        bio_pf_finger d;
        fg_block_how how;
        RL_TRY(fg_load_block(reg, k + 1, klen - 1, v, vlen, &gk, &d, &how));
        count[how]++;
        if (how != FG_BLOCK_LEFT_OUT)
            RL_TRY(bio_gallery_put(g, &gk, &d, NULL));
    }
    RL_TRY(rl_store_iter_status(it));
    rl_error *dev_err = bio_gallery_device_sync(g);
    if (dev_err) {
        rl_log(RL_LOG_WARN, "registry", "1:N prefilter on the CPU: the gallery did not load onto the OpenCL device",
               "reason=\"%s\"", rl_error_message(dev_err));
        rl_error_free(dev_err);
        bio_gallery_device d;
        bio_gallery_device_get(g, &d);
        reg->gallery_device_logged = d.failures; /* gallery_lock held: logged just now */
    }
    if (count[FG_BLOCK_REBUILT])
        rl_log(RL_LOG_INFO, "registry", "finger prefilter blocks rebuilt from templates", "fingers=%zu",
               count[FG_BLOCK_REBUILT]);
    if (count[FG_BLOCK_REPAIRED])
        rl_log(RL_LOG_WARN, "registry", "damaged finger prefilter blocks rebuilt from their templates",
               "fingers=%zu hint=\"ridgeline check names them\"", count[FG_BLOCK_REPAIRED]);
    if (count[FG_BLOCK_LEFT_OUT])
        rl_log(RL_LOG_ERROR, "registry", "fingers left out of 1:N search: their data does not load",
               "fingers=%zu hint=\"ridgeline check names them\"", count[FG_BLOCK_LEFT_OUT]);
    reg->gallery = g;
    g = NULL;
cleanup:
    *out = reg->gallery;
    pthread_mutex_unlock(&reg->gallery_lock);
    rl_store_iter_destroy(it);
    bio_gallery_free(g);
    return err;
}

rl_error *rl_registry_finger_stats(rl_registry *reg, rl_finger_stats *out)
{
    rl_error *err = NULL;
    bio_gallery *g = NULL;
    memset(out, 0, sizeof *out);
    RL_TRY(reg_gallery(reg, &g));
    bio_gallery_memory m;
    bio_gallery_memory_get(g, &m);
    out->fingers = m.fingers;
    out->memory_bytes = m.descriptor_bytes + m.index_bytes + m.resident_bytes;
    out->resident_fingers = m.resident_fingers;
    bio_gallery_device d;
    bio_gallery_device_get(g, &d);
    out->opencl = d.opencl;
    out->opencl_current = d.current;
    out->opencl_failures = d.failures;
cleanup:
    return err;
}

rl_error *reg_finger_warm(rl_registry *reg)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    bio_gallery *g = NULL;
    uint64_t t0 = rl_time_mono_ns();
    /* No fingers enrolled: nothing to load, and no OpenCL device opened for nothing. */
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_TEMPLATES, "D", 1, &it));
    bool any = rl_store_iter_valid(it);
    RL_TRY(rl_store_iter_status(it));
    if (!any)
        goto cleanup;
    rl_error *load = reg_gallery(reg, &g);
    if (load) {
        /* A gallery that does not load (a failure to read the store, data
         * written by a newer version; a damaged finger is left out, not a
         * failure) must not keep the registry from serving: the searches
         * retry and report it, `ridgeline check` names what is wrong. Only
         * the code here: the message may name a record. */
        rl_log(RL_LOG_WARN, "registry", "fingerprint gallery not loaded: searches will retry; run ridgeline check",
               "code=%s", rl_code_name(rl_error_code(load)));
        rl_error_free(load);
        goto cleanup;
    }
    bio_gallery_memory m;
    bio_gallery_memory_get(g, &m);
    rl_log(RL_LOG_INFO, "registry", "fingerprint gallery loaded", "fingers=%zu ms=%.0f", m.fingers,
           (double)(rl_time_mono_ns() - t0) / 1e6);
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

void reg_finger_close(rl_registry *reg)
{
    bio_gallery_free(reg->gallery);
    reg->gallery = NULL;
}

/* Audits a finger write about record_id (taking `detail`) in the same batch,
 * then applies the batch; *ticket is what rl_store_sync waits for. */
static rl_error *fg_audit_apply(reg_txn *txn, const rl_actor *actor, const char *action, const char *record_id,
                                json_t *detail, uint64_t *ticket)
{
    rl_error *err = NULL;
    const char *subjects[1] = {record_id};
    RL_TRY(reg_txn_audit(txn, actor, action, subjects, 1, "ok", detail));
    RL_TRY(reg_txn_apply(txn, ticket));
cleanup:
    json_decref(detail);
    return err;
}

static bio_gallery_key fg_key_for(const char *record_id, int position)
{
    bio_gallery_key gk = {{0}, (uint8_t)position};
    snprintf(gk.record, sizeof gk.record, "%s", record_id);
    return gk;
}

rl_error *rl_registry_finger_may_enroll(rl_registry *reg, const rl_actor *actor, const char *record_id)
{
    rl_error *err = NULL;
    char *rec = NULL;
    size_t len = 0;
    bool found = false;
    RL_TRY(rl_store_get(reg->store, RL_CF_RECORDS, record_id, strlen(record_id), &rec, &len, &found));
    if (!found)
        RL_FAIL(RL_ENOTFOUND, "no source record %s (fingers are enrolled on source records)", record_id);
    RL_TRY(reg_bound_may_change(reg, actor, record_id));
cleanup:
    free(rec);
    return err;
}

/*
 * A capture may replace the finger enrolled at its position only when it is
 * that finger: a better capture of it matches it 1:1 (at the threshold of
 * FMR 0.1%). Anything else there (another finger, or another person at the
 * reader) would silently take over the record's finger: the person enrolled
 * would no longer verify, and the newcomer would be identified as them. A
 * wrong enrolled finger is deleted first, on purpose, and the deletion is
 * audited. A stored finger that no longer decodes has nothing to protect.
 */
static rl_error *fg_may_replace(const char *existing, size_t elen, const bio_features *capture, int position)
{
    rl_error *err = NULL;
    bio_features *enrolled = NULL;
    bio_match_scratch *scratch = NULL;
    const unsigned char *tp, *fp;
    size_t tlen, flen;
    err = fg_parse((const unsigned char *)existing, elen, &tp, &tlen, &fp, &flen, NULL);
    if (!err)
        err = bio_features_decode(fp, flen, &enrolled);
    /* Only damage leaves nothing to protect; a finger this version cannot
     * read (written by a newer one) or a failure (memory) is no licence to
     * overwrite it. */
    if (err && fg_damaged(err)) {
        rl_error_free(err);
        err = NULL;
        goto cleanup;
    }
    RL_TRY(err);
    RL_TRY(bio_match_scratch_new(&scratch));
    double score = bio_match_score(capture, enrolled, scratch), threshold = bio_gallery_threshold(0.001, 1);
    if (score < threshold)
        RL_FAIL(RL_ECONFLICT,
                "finger %d of this record is enrolled, and this capture does not match it (score %.4f, "
                "threshold %.4f): if the enrolled finger is wrong, delete it first (DELETE "
                "/biometrics/{record}/fingers/%d), then enrol this one; else capture the enrolled finger",
                position, score, threshold, position);
cleanup:
    bio_features_free(enrolled);
    bio_match_scratch_free(scratch);
    return err;
}

rl_error *rl_registry_finger_enroll(rl_registry *reg, const rl_actor *actor, const char *record_id, int position,
                                    const bio_template *t, json_t **out)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    rl_buf tb, fb;
    bio_features *f = NULL;
    bio_gallery *g = NULL;
    char *existing = NULL;
    bool locked = false;
    rl_buf_init(&tb, FG_MAX_BYTES);
    rl_buf_init(&fb, FG_MAX_BYTES);
    if (out)
        *out = NULL;
    RL_TRY(fg_check(record_id, position));
    if (!t)
        RL_FAIL(RL_EINVAL, "finger template: missing");
    /* 0 is "unknown" (ISO/ANSI records from readers that do not grade, such as FVC2002's SecuGen ones):
     * nothing to gate on, so the minutiae floor below decides alone. */
    if (t->quality != 0 && t->quality < reg->opts.finger_min_quality)
        RL_FAIL(RL_ERETRY, "poor capture: quality %d is below %d: recapture the finger", t->quality,
                reg->opts.finger_min_quality);
    if (t->count < reg->opts.finger_min_minutiae)
        RL_FAIL(RL_ERETRY, "poor capture: %d minutiae, fewer than %d: recapture the finger", t->count,
                reg->opts.finger_min_minutiae);
    /* Outside the lock: the expensive parts. */
    RL_TRY(bio_template_encode(t, BIO_FORMAT_NATIVE, &tb));
    RL_TRY(bio_features_build(t, &f));
    /* Minutiae too spread out to have neighbourhoods: such a finger never
     * matches anything, and would count against its own person in $match. */
    if (bio_features_count(f) < BIO_MATCH_MIN_CYLINDERS)
        RL_FAIL(RL_ERETRY, "poor capture: %zu usable minutiae, fewer than %d: recapture the finger",
                bio_features_count(f), BIO_MATCH_MIN_CYLINDERS);
    RL_TRY(bio_features_encode(f, &fb));
    bio_pf_finger d;
    bio_prefilter_finger(t, &d);
    RL_TRY(reg_gallery(reg, &g));

    unsigned char *val = malloc(FG_HDR + tb.len + fb.len);
    if (!val)
        RL_FAIL(RL_ENOMEM, "out of memory");
    memcpy(val, "RLFG", 4);
    val[4] = FG_VERSION;
    val[5] = (unsigned char)position;
    val[6] = t->quality;
    val[7] = 0;
    rl_put_le32(val + 8, (uint32_t)tb.len);
    rl_put_le32(val + 12, (uint32_t)fb.len);
    memcpy(val + FG_HDR, tb.data, tb.len);
    memcpy(val + FG_HDR + tb.len, fb.data, fb.len);
    unsigned char dv[FD_BYTES];
    fd_encode(&d, dv);
    char fkey[REG_KEY_MAX], dkey[REG_KEY_MAX];
    size_t fkl = fg_key('F', record_id, position, fkey, sizeof fkey), dkl = fg_key('D', record_id, position, dkey, sizeof dkey);

    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    size_t elen = 0;
    bool efound = false;
    /* Asked again under the lock: the record may have gone since the caller asked. */
    err = rl_registry_finger_may_enroll(reg, actor, record_id);
    if (!err)
        err = rl_store_get(reg->store, RL_CF_TEMPLATES, fkey, fkl, &existing, &elen, &efound);
    if (!err && efound)
        err = fg_may_replace(existing, elen, f, position);
    /* Room in the gallery before the store write: the put after it cannot then
     * fail (a finger stored but missing from 1:N until a restart). */
    if (!err)
        err = bio_gallery_reserve(g, 1);
    if (!err)
        err = reg_txn_begin(reg, &txn);
    if (err) {
        free(val);
        goto cleanup;
    }
    rl_store_batch_put(txn.batch, RL_CF_TEMPLATES, fkey, fkl, val, FG_HDR + tb.len + fb.len);
    rl_store_batch_put(txn.batch, RL_CF_TEMPLATES, dkey, dkl, dv, sizeof dv);
    free(val);
    uint64_t ticket = 0;
    RL_TRY(fg_audit_apply(&txn, actor, "finger-enroll", record_id,
                          json_pack("{s:i, s:i, s:i, s:b}", "position", position, "quality", t->quality,
                                    "minutiae", t->count, "replaced", efound),
                          &ticket));
    /* The gallery follows under the same lock, so it sees writes in their order. */
    bio_gallery_key gk = fg_key_for(record_id, position);
    bio_features *give = f;
    f = NULL;
    RL_TRY(bio_gallery_put(g, &gk, &d, give));
    pthread_mutex_unlock(&reg->write_lock);
    reg_gallery_device_log(reg, g);
    locked = false;
    RL_TRY(rl_store_sync(reg->store, ticket));
    if (out)
        *out = json_pack("{s:s, s:i, s:i, s:i, s:b}", "record", record_id, "position", position, "quality",
                         t->quality, "minutiae", t->count, "replaced", efound);
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    rl_buf_free(&tb);
    rl_buf_free(&fb);
    bio_features_free(f);
    free(existing);
    return err;
}

rl_error *rl_registry_finger_delete(rl_registry *reg, const rl_actor *actor, const char *record_id, int position)
{
    rl_error *err = NULL;
    reg_txn txn = {0};
    bio_gallery *g = NULL;
    char *existing = NULL;
    bool locked = false;
    RL_TRY(fg_check(record_id, position));
    RL_TRY(reg_gallery(reg, &g));
    char fkey[REG_KEY_MAX], dkey[REG_KEY_MAX];
    size_t fkl = fg_key('F', record_id, position, fkey, sizeof fkey), dkl = fg_key('D', record_id, position, dkey, sizeof dkey);
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(reg_bound_may_change(reg, actor, record_id));
    size_t elen = 0;
    bool found = false;
    RL_TRY(rl_store_get(reg->store, RL_CF_TEMPLATES, fkey, fkl, &existing, &elen, &found));
    if (!found)
        RL_FAIL(RL_ENOTFOUND, "record %s has no finger enrolled at position %d", record_id, position);
    RL_TRY(reg_txn_begin(reg, &txn));
    rl_store_batch_delete(txn.batch, RL_CF_TEMPLATES, fkey, fkl);
    rl_store_batch_delete(txn.batch, RL_CF_TEMPLATES, dkey, dkl);
    uint64_t ticket = 0;
    RL_TRY(fg_audit_apply(&txn, actor, "finger-delete", record_id, json_pack("{s:i}", "position", position),
                          &ticket));
    bio_gallery_key gk = fg_key_for(record_id, position);
    RL_TRY(bio_gallery_remove(g, &gk, NULL));
    pthread_mutex_unlock(&reg->write_lock);
    reg_gallery_device_log(reg, g);
    locked = false;
    RL_TRY(rl_store_sync(reg->store, ticket));
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    reg_txn_end(&txn);
    free(existing);
    return err;
}

/* One stored finger of a record, as fg_each_finger hands it over. */
typedef struct fg_stored {
    bio_gallery_key key;
    const unsigned char *tpl, *feat; /* the template and the full features, valid during the call */
    size_t tlen, flen;
    int quality;
} fg_stored;

/* Calls visit for each finger enrolled for record, in position order, until
 * it fails or sets *stop. */
static rl_error *fg_each_finger(rl_registry *reg, const char *record,
                                rl_error *(*visit)(void *ctx, const fg_stored *f, bool *stop), void *ctx)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    char prefix[REG_KEY_MAX];
    int pl = snprintf(prefix, sizeof prefix, "F%s%c", record, '\0');
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_TEMPLATES, prefix, (size_t)pl, &it));
    bool stop = false;
    for (; rl_store_iter_valid(it) && !stop; rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const unsigned char *v = (const unsigned char *)rl_store_iter_value(it, &vlen);
        fg_stored f;
        RL_TRY(fg_gallery_key(k + 1, klen - 1, &f.key));
        RL_TRY(fg_parse(v, vlen, &f.tpl, &f.tlen, &f.feat, &f.flen, &f.quality));
        RL_TRY(visit(ctx, &f, &stop));
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

typedef struct fg_list_ctx {
    json_t *list;
    bio_template *t;
} fg_list_ctx;

static rl_error *fg_list_one(void *arg, const fg_stored *f, bool *stop)
{
    fg_list_ctx *c = arg;
    (void)stop;
    rl_error *err = bio_template_decode(f->tpl, f->tlen, c->t, NULL);
    if (!err && json_array_append_new(c->list, json_pack("{s:i, s:i, s:i}", "position", f->key.position, "quality",
                                                         f->quality, "minutiae", c->t->count)) != 0)
        err = RL_ERR(RL_ENOMEM, "out of memory");
    return err;
}

rl_error *rl_registry_finger_list(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **out)
{
    rl_error *err = NULL;
    bio_template *t = NULL;
    json_t *list = json_array();
    *out = NULL;
    RL_TRY(fg_check(record_id, 0));
    t = malloc(sizeof *t);
    if (!list || !t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    fg_list_ctx lc = {list, t};
    RL_TRY(fg_each_finger(reg, record_id, fg_list_one, &lc));
    const char *subjects[1] = {record_id};
    RL_TRY(reg_audit_now(reg, actor, "finger-list", subjects, 1, "ok", NULL));
    *out = list;
    list = NULL;
cleanup:
    json_decref(list);
    free(t);
    return err;
}

static rl_error *fg_ignore_view(void *ctx, const void *value, size_t len)
{
    (void)ctx, (void)value, (void)len;
    return NULL;
}

/* Whether family cf holds key: looked at in place, nothing copied or cached
 * (the check asks this of every finger). */
static rl_error *fg_present(rl_registry *reg, rl_cf cf, const char *key, size_t klen, bool *found)
{
    return rl_store_read_once(reg->store, cf, key, klen, fg_ignore_view, NULL, found);
}

/* Whether the store holds key kind+gk (the other half of a finger's pair). */
static rl_error *fg_exists(rl_registry *reg, char kind, const bio_gallery_key *gk, bool *found)
{
    char key[REG_KEY_MAX];
    size_t kl = fg_key(kind, gk->record, gk->position, key, sizeof key);
    return fg_present(reg, RL_CF_TEMPLATES, key, kl, found);
}

/* What is wrong with one stored finger ("F" value): "" when nothing. */
static rl_error *fg_check_finger(rl_registry *reg, const bio_gallery_key *gk, const unsigned char *v, size_t vlen,
                                 char *problem, size_t size)
{
    rl_error *err = NULL, *bad = NULL;
    bio_template *t = malloc(sizeof *t);
    bio_features *f = NULL;
    const unsigned char *tp, *fp;
    size_t tlen, flen;
    bool found = false;
    if (!t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if ((bad = fg_parse(v, vlen, &tp, &tlen, &fp, &flen, NULL)) || (bad = bio_template_decode(tp, tlen, t, NULL)) ||
        (bad = bio_features_decode(fp, flen, &f))) {
        snprintf(problem, size, "finger %s/%d: %s", gk->record, gk->position, rl_error_message(bad));
        goto cleanup;
    }
    RL_TRY(fg_present(reg, RL_CF_RECORDS, gk->record, strlen(gk->record), &found));
    if (!found) {
        snprintf(problem, size, "finger %s/%d: its source record does not exist", gk->record, gk->position);
        goto cleanup;
    }
    RL_TRY(fg_exists(reg, 'D', gk, &found));
    if (!found)
        snprintf(problem, size, "finger %s/%d: no prefilter descriptor (1:N cannot search it)", gk->record,
                 gk->position);
cleanup:
    rl_error_free(bad);
    bio_features_free(f);
    free(t);
    return err;
}

rl_error *reg_finger_check_entry(rl_registry *reg, const char *k, size_t klen, const char *v, size_t vlen,
                                 char *problem, size_t size, bool *finger)
{
    rl_error *err = NULL, *bad = NULL;
    bio_gallery_key gk;
    bool found = false;
    problem[0] = '\0';
    *finger = klen > 0 && k[0] == 'F';
    if (klen == 0 || (k[0] != 'F' && k[0] != 'D') || (bad = fg_gallery_key(k + 1, klen - 1, &gk))) {
        snprintf(problem, size, "fingerprint entry: malformed key");
        goto cleanup;
    }
    if (*finger) {
        RL_TRY(fg_check_finger(reg, &gk, (const unsigned char *)v, vlen, problem, size));
        goto cleanup;
    }
    bio_pf_finger d;
    bad = fd_decode((const unsigned char *)v, vlen, &d);
    if (bad && rl_error_code(bad) != RL_EUNSUPPORTED) { /* an older version is rebuilt at load */
        snprintf(problem, size, "finger %s/%d: %s", gk.record, gk.position, rl_error_message(bad));
        goto cleanup;
    }
    RL_TRY(fg_exists(reg, 'F', &gk, &found));
    if (!found)
        snprintf(problem, size, "finger %s/%d: a prefilter descriptor without its finger", gk.record, gk.position);
cleanup:
    rl_error_free(bad);
    return err;
}

/* A stored finger's full features for the re-rank; damage leaves them NULL
 * (the finger is left out of that search) and is counted, anything else fails. */
typedef struct fg_fetch_one {
    bio_features **out;
    bool damaged;
} fg_fetch_one;

static rl_error *fg_decode_view(void *ctx, const void *value, size_t len)
{
    fg_fetch_one *one = ctx;
    const unsigned char *tp, *fp;
    size_t tlen, flen;
    rl_error *err = fg_parse(value, len, &tp, &tlen, &fp, &flen, NULL);
    if (!err)
        err = bio_features_decode(fp, flen, one->out);
    if (err && fg_damaged(err)) {
        rl_error_free(err);
        *one->out = NULL;
        one->damaged = true;
        err = NULL;
    }
    return err;
}

/* The fetch's context: the registry and this search's unreadable fingers (several threads fetch at once). */
typedef struct fg_fetch_ctx {
    rl_registry *reg;
    atomic_size_t unreadable;
} fg_fetch_ctx;

/* The re-rank's features that are not resident: each read once, in place,
 * without filling the block cache (thousands a search would push out the
 * indexes every other read needs). A finger removed meanwhile stays NULL, and
 * so does one whose features are damaged: one damaged finger must not fail
 * every search that short-lists it (`ridgeline check` names it). */
static rl_error *reg_finger_fetch(void *ctx, const bio_gallery_key *keys, size_t n, bio_features **out)
{
    rl_error *err = NULL;
    fg_fetch_ctx *fc = ctx;
    for (size_t i = 0; i < n; i++) {
        char key[REG_KEY_MAX];
        size_t kl = fg_key('F', keys[i].record, keys[i].position, key, sizeof key);
        bool found = false;
        out[i] = NULL;
        fg_fetch_one one = {&out[i], false};
        RL_TRY(rl_store_read_once(fc->reg->store, RL_CF_TEMPLATES, key, kl, fg_decode_view, &one, &found));
        if (one.damaged)
            atomic_fetch_add(&fc->unreadable, 1);
    }
cleanup:
    return err;
}

/* Counts a search's unreadable fingers and logs the total at most once a
 * minute (by number: the log names no record). */
static void fg_unreadable_note(rl_registry *reg, size_t n)
{
    if (!n)
        return;
    uint64_t total = atomic_fetch_add(&reg->fingers_unreadable, n) + n;
    if (!reg_log_due(&reg->unreadable_logged_ns))
        return;
    rl_log(RL_LOG_ERROR, "registry", "short-listed fingers left out of 1:N searches: their features do not load",
           "total=%llu logged_at_most_every_s=60 hint=\"ridgeline check names them\"", (unsigned long long)total);
}

rl_error *rl_registry_finger_identify(rl_registry *reg, const rl_actor *actor, const bio_template *probe, int top,
                                      json_t **out)
{
    rl_error *err = NULL;
    bio_gallery *g = NULL;
    bio_features *f = NULL;
    bio_gallery_result *r = NULL;
    kern_pf_probe *probe_pf = NULL;
    json_t *cands = json_array(), *link = NULL, *result = NULL;
    *out = NULL;
    if (top < 1 || top > BIO_GALLERY_MAX_TOP)
        RL_FAIL(RL_EINVAL, "top: expected 1 to %d", BIO_GALLERY_MAX_TOP);
    if (!probe)
        RL_FAIL(RL_EINVAL, "probe: missing");
    r = malloc(sizeof *r);
    if (!cands || !r)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (probe->count < BIO_MATCH_MIN_CYLINDERS)
        RL_FAIL(RL_ERETRY, "poor capture: %d minutiae: recapture the finger", probe->count);
    RL_TRY(bio_features_build(probe, &f));
    kern_pf_probe *d = aligned_alloc(64, sizeof *d);
    if (!d)
        RL_FAIL(RL_ENOMEM, "out of memory");
    bio_prefilter_probe(probe, d);
    probe_pf = d;
    RL_TRY(reg_gallery(reg, &g));
    bio_gallery_params p = {.top_k = (size_t)top, .shortlist = reg->opts.finger_shortlist,
                            .extend = reg->opts.finger_extend, .fpir = 0.001};
    fg_fetch_ctx fc = {.reg = reg};
    atomic_init(&fc.unreadable, 0);
    RL_TRY(bio_gallery_identify(g, probe_pf, f, &p, reg_finger_fetch, &fc, r));
    /* A read-mostly site may see no enrolment for hours: searches retry the device copy too. */
    bio_gallery_device_retry(g);
    reg_gallery_device_log(reg, g);
    fg_unreadable_note(reg, atomic_load(&fc.unreadable));
    const char *subjects[BIO_GALLERY_MAX_TOP];
    for (size_t i = 0; i < r->n; i++) {
        RL_TRY(reg_get_json(reg, RL_CF_LINKS, r->top[i].key.record, strlen(r->top[i].key.record), &link));
        const char *golden = link ? json_string_value(json_object_get(link, "golden")) : NULL;
        json_array_append_new(cands, json_pack("{s:s, s:i, s:s?, s:f}", "record", r->top[i].key.record, "position",
                                               r->top[i].key.position, "golden", golden, "score", r->top[i].score));
        json_decref(link);
        link = NULL;
        subjects[i] = r->top[i].key.record;
    }
    result = json_pack("{s:O, s:s, s:f, s:I, s:I, s:f}", "candidates", cands, "decision", r->match ? "match" : "no-match",
                       "threshold", r->threshold, "gallery_size", (json_int_t)r->gallery_size, "shortlisted",
                       (json_int_t)r->shortlisted, "ms", r->total_ms);
    if (!result)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_audit_now(reg, actor, "finger-identify", subjects, (int)r->n, r->match ? "match" : "no-match", NULL));
    *out = result;
    result = NULL;
cleanup:
    json_decref(cands);
    json_decref(link);
    json_decref(result);
    bio_features_free(f);
    free(r);
    free(probe_pf);
    return err;
}

typedef struct fg_comparison {
    char record[BIO_GALLERY_RECORD_MAX + 1];
    int position;
    double score;
} fg_comparison;

/* verify: the probe against each enrolled finger of the records (at one position, or any). */
typedef struct fg_verify_ctx {
    const bio_features *probe;
    bio_match_scratch *scratch;
    int position; /* -1: any */
    fg_comparison *cmp;
    size_t n, max;
} fg_verify_ctx;

static rl_error *fg_verify_one(void *arg, const fg_stored *f, bool *stop)
{
    rl_error *err = NULL;
    fg_verify_ctx *c = arg;
    bio_features *ef = NULL;
    if (c->position >= 0 && f->key.position != c->position)
        goto cleanup;
    RL_TRY(bio_features_decode(f->feat, f->flen, &ef));
    fg_comparison *cmp = &c->cmp[c->n++];
    snprintf(cmp->record, sizeof cmp->record, "%s", f->key.record);
    cmp->position = f->key.position;
    cmp->score = bio_match_score(c->probe, ef, c->scratch);
    *stop = c->n >= c->max;
cleanup:
    bio_features_free(ef);
    return err;
}

static int fg_by_score_desc(const void *a, const void *b)
{
    const fg_comparison *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    int c = strcmp(x->record, y->record);
    return c ? c : x->position - y->position;
}

rl_error *rl_registry_finger_verify(rl_registry *reg, const rl_actor *actor, const char *const *records,
                                    int nrecords, int position, const bio_template *probe, json_t **out)
{
    rl_error *err = NULL;
    bio_features *pf = NULL;
    bio_match_scratch *scratch = NULL;
    json_t *list = NULL, *result = NULL;
    /* At most one finger per position per record: the array is bounded by the inputs. */
    enum { FG_CMP_MAX = RL_FINGER_VERIFY_MAX_RECORDS * (RL_FINGER_POSITION_MAX + 1) };
    fg_comparison *cmp = NULL;
    size_t n = 0;
    *out = NULL;
    if (nrecords < 1 || nrecords > RL_FINGER_VERIFY_MAX_RECORDS)
        RL_FAIL(RL_EINVAL, "verify: expected 1 to %d records", RL_FINGER_VERIFY_MAX_RECORDS);
    if (position < -1 || position > RL_FINGER_POSITION_MAX)
        RL_FAIL(RL_EINVAL, "finger position: expected 0 (unknown) to 10 (ISO/IEC 19794-2), or any");
    for (int i = 0; i < nrecords; i++)
        RL_TRY(fg_check(records[i], 0));
    if (!probe)
        RL_FAIL(RL_EINVAL, "probe: missing");
    if (probe->count < BIO_MATCH_MIN_CYLINDERS)
        RL_FAIL(RL_ERETRY, "poor capture: %d minutiae: recapture the finger", probe->count);
    cmp = calloc(FG_CMP_MAX, sizeof *cmp);
    list = json_array();
    if (!cmp || !list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(bio_features_build(probe, &pf));
    RL_TRY(bio_match_scratch_new(&scratch));
    fg_verify_ctx vc = {pf, scratch, position, cmp, 0, FG_CMP_MAX};
    for (int i = 0; i < nrecords && vc.n < vc.max; i++)
        RL_TRY(fg_each_finger(reg, records[i], fg_verify_one, &vc));
    n = vc.n;
    qsort(cmp, n, sizeof *cmp, fg_by_score_desc);
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, json_pack("{s:s, s:i, s:f}", "record", cmp[i].record, "position",
                                                  cmp[i].position, "score", cmp[i].score)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    /* Best of k comparisons: each must clear FMR 0.1% / k (one comparison: 0.0331). */
    double threshold = bio_gallery_threshold(0.001, n ? n : 1);
    const char *decision = n == 0 ? "not-enrolled" : cmp[0].score >= threshold ? "match" : "no-match";
    result = json_pack("{s:O, s:I, s:f, s:s}", "comparisons", list, "compared", (json_int_t)n, "threshold",
                       threshold, "decision", decision);
    if (!result)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (n > 0)
        json_object_set_new(result, "best", json_pack("{s:s, s:i, s:f}", "record", cmp[0].record, "position",
                                                      cmp[0].position, "score", cmp[0].score));
    json_t *detail = json_pack("{s:i, s:I}", "position", position, "compared", (json_int_t)n);
    err = reg_audit_now(reg, actor, "finger-verify", records, nrecords, decision, detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    *out = result;
    result = NULL;
cleanup:
    bio_features_free(pf);
    bio_match_scratch_free(scratch);
    json_decref(list);
    json_decref(result);
    free(cmp);
    return err;
}

static rl_error *fg_by_position_one(void *arg, const fg_stored *f, bool *stop)
{
    bio_features **out = arg;
    (void)stop;
    if (f->key.position > RL_FINGER_POSITION_MAX || out[f->key.position])
        return NULL;
    return bio_features_decode(f->feat, f->flen, &out[f->key.position]);
}

/* One record's enrolled fingers, as full features by position (NULL where none). */
static rl_error *fg_features_by_position(rl_registry *reg, const char *record,
                                         bio_features *out[RL_FINGER_POSITION_MAX + 1])
{
    return fg_each_finger(reg, record, fg_by_position_one, out);
}

rl_error *rl_registry_finger_compare(rl_registry *reg, const rl_actor *actor, const char *record_a,
                                     const char *record_b, json_t **out)
{
    rl_error *err = NULL;
    bio_features *fa[RL_FINGER_POSITION_MAX + 1] = {0}, *fb[RL_FINGER_POSITION_MAX + 1] = {0};
    bio_match_scratch *scratch = NULL;
    json_t *list = NULL, *result = NULL;
    *out = NULL;
    RL_TRY(fg_check(record_a, 0));
    RL_TRY(fg_check(record_b, 0));
    RL_TRY(fg_features_by_position(reg, record_a, fa));
    RL_TRY(fg_features_by_position(reg, record_b, fb));
    RL_TRY(bio_match_scratch_new(&scratch));
    list = json_array();
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    double score[RL_FINGER_POSITION_MAX + 1];
    int n = 0;
    for (int p = 0; p <= RL_FINGER_POSITION_MAX; p++) {
        if (fa[p] && fb[p]) {
            score[p] = bio_match_score(fa[p], fb[p], scratch);
            n++;
        }
    }
    /* Trying k positions must not multiply false accepts: best of k at FMR 0.1% / k. */
    double threshold = bio_gallery_threshold(0.001, n ? (size_t)n : 1);
    bool any = false;
    for (int p = 0; p <= RL_FINGER_POSITION_MAX; p++) {
        if (!fa[p] || !fb[p])
            continue;
        bool match = score[p] >= threshold;
        any = any || match;
        if (json_array_append_new(list, json_pack("{s:i, s:f, s:s}", "position", p, "score", score[p], "decision",
                                                  match ? "match" : "no-match")) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    const char *decision = n == 0 ? "no-common-finger" : any ? "match" : "no-match";
    result = json_pack("{s:O, s:i, s:f, s:s}", "comparisons", list, "compared", n, "threshold", threshold, "decision",
                       decision);
    if (!result)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *subjects[2] = {record_a, record_b};
    RL_TRY(reg_audit_now(reg, actor, "finger-compare", subjects, 2, decision, NULL));
    *out = result;
    result = NULL;
cleanup:
    for (int p = 0; p <= RL_FINGER_POSITION_MAX; p++) {
        bio_features_free(fa[p]);
        bio_features_free(fb[p]);
    }
    bio_match_scratch_free(scratch);
    json_decref(list);
    json_decref(result);
    return err;
}
