/*
 * bio_gallery: the enrolled fingers in memory, and 1:N identification over
 * them in three stages.
 *
 * Each enrolled finger keeps KERN_PF_GCYL compact MCC cylinders
 * (bio_prefilter_finger): of minutiae spread over the finger (the most
 * central, then greedy farthest point among those with at least half its
 * valid cells), at 8 x 8 cells x 4 directions (256 bits) plus 64 bits of
 * validity, with each minutia's direction and position. The first
 * KERN_PF_SCAN_CYL make a 576-byte block that every identification streams;
 * the rest (a 960-byte block) are read only for the few the scan ranks
 * best. A probe brings up to KERN_PF_PCYL cylinders of its own
 * (bio_prefilter_probe), its most central ones.
 *
 * Stage 1, the scan, scores every finger by the matcher's own local evidence:
 * for each of the probe's most central cylinders the best normalised integer
 * MCC similarity among the finger's first cylinders, summed (kernels/kern_prefilter: scalar /
 * POPCNT / AVX2 / AVX-512 / OpenCL, identical integers). Two impressions of
 * one finger share local structures around their common minutiae, so a mate
 * finds several strong pairs where an impostor finds weak ones. Stage 2, the
 * refinement, takes the `refine` best of the scan (by default a twentieth of
 * the gallery, at least ten times the short list), finds each probe cylinder's
 * best pair among all of the finger's cylinders and sums only the pairs that
 * agree on one rotation and translation of the finger: an impostor's best
 * local pairs point every which way, a mate's agree. (An index over hashed
 * cylinder bits, as the first version used, lost 23% of mates at a
 * 400-finger short list; docs/fingerprints.md has the measurements.) The
 * `shortlist` best of the refinement go to stage 3.
 *
 * Stage 3 re-ranks the short list with the full matcher (bio_match_score).
 * With `extend`, when none of it reaches the decision threshold, the next
 * fingers of the refinement's order are re-ranked too, up to `extend` in
 * all, before "no match" is answered: a weak mate ranked just behind the
 * short list can be found, at the cost of a longer search only for probes
 * that have no match yet. By default the extension grows with the gallery
 * (BIO_GALLERY_EXTEND_PER_MILLION; docs/fingerprints.md measures it).
 * Full features take ~9 KB a finger as stored (236 bytes a cylinder, more
 * once decoded), so they are kept in memory only within a byte budget; the
 * others are fetched by the caller's callback (the registry reads them from
 * the store, the benchmark from a store of its own or from memory).
 * Every stage runs on `threads` threads.
 *
 * Layout (structure of arrays, for streaming): the scan blocks in one 64-byte
 * aligned array, the detail blocks in another; beside them, per finger, the
 * key (record id, finger position) and the optional features pointer; a hash
 * table from key to slot. With OpenCL the scan and detail blocks are also
 * resident on the device, updated on every put and remove, and both prefilter
 * stages run there (the re-rank stays on the CPU). Removal moves the last finger
 * into the freed slot, so the arrays stay dense.
 *
 * The device copy is a cache of the host arrays, which are the truth: when a
 * write to the device fails (or a search there does), the copy is marked out
 * of date and the CPU prefilter serves every search, so that no search ever
 * scores a slot against another finger's blocks. Put and remove still succeed
 * (the finger is in the host arrays); the copy is rewritten whole by
 * bio_gallery_device_sync, or by put, remove and bio_gallery_device_retry
 * once device_retry_ms has passed since the latest failure (a failed rewrite
 * is one). A bulk load holds the copy (bio_gallery_device_hold) and writes it
 * in one transfer at the end instead of a transfer per finger.
 *
 * Decision: see bio_gallery_threshold. The threshold grows with the gallery
 * size, because among N impostors the best one beats a fixed threshold N
 * times as often as a single impostor does.
 *
 * Threads: one gallery serves every thread. Identify calls take a read lock
 * and run in parallel; put and remove take the write lock (an enrolment
 * waits for identifications in flight, at most about a second). The fetch
 * callback may be called from several of identify's threads at once.
 * Ownership: the gallery owns what it is given (features passed to put);
 * bio_gallery_free accepts NULL. The gallery is pure: no store, no logs.
 */
#ifndef BIO_GALLERY_H
#define BIO_GALLERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"
#include "common/rl_error.h"
#include "kernels/kern_prefilter.h"

enum {
    BIO_GALLERY_RECORD_MAX = 64,  /* bytes of a record id */
    BIO_GALLERY_MAX_TOP = 100,    /* candidates an identification returns at most */
    BIO_GALLERY_MAX_THREADS = 64,
    BIO_GALLERY_SHORTLIST_DEFAULT = 400, /* chosen from the penetration/miss table (docs/fingerprints.md) */
    BIO_GALLERY_SHORTLIST_MAX = 1 << 20,
    /* The refinement takes 1/20 of the gallery by default, and at least 10 times
     * the short list (measured: docs/fingerprints.md). */
    BIO_GALLERY_REFINE_SHARE = 20,
    BIO_GALLERY_REFINE_FLOOR = 10,
    /* A short list that gives no decision (no score at the threshold) is
     * extended before "no match" is answered (bio_gallery_params.extend), by
     * default to this many fingers per million enrolled: the prefilter's misses
     * grow with the gallery, and at 1M on 2 cores an extension to 6,400 brings
     * rank-1 within 0.36 point of the exhaustive search for p99 well under a
     * second (measured: docs/fingerprints.md). Up to about 62,600 fingers (with
     * the default short list) that is no extension at all. */
    BIO_GALLERY_EXTEND_PER_MILLION = 6400,
    /* bio_gallery_params.extend: any value up to the short list means none. */
    BIO_GALLERY_EXTEND_NONE = 1,
};

/* A finger: a source record and an ISO/IEC 19794-2 finger position (0 unknown, 1-10). */
typedef struct bio_gallery_key {
    char record[BIO_GALLERY_RECORD_MAX + 1];
    uint8_t position;
} bio_gallery_key;

typedef struct bio_gallery_options {
    size_t resident_budget; /* bytes of full features kept in memory (0: none) */
    unsigned threads;       /* 0: the online cores, at most BIO_GALLERY_MAX_THREADS */
    int prefilter_impl;     /* a kern_pf_impl, or -1: kern_pf_pick() */
    /* OpenCL: either a device the caller opened and keeps open until after
     * bio_gallery_free (`ocl`), or a device setting for kern_ocl_open_for_batches
     * (`opencl`: "" automatic, "gpu", "cpu", "any", "P:D", "none"), opened and
     * owned by the gallery. Neither (NULL, NULL): the CPU prefilter. */
    kern_ocl *ocl;
    const char *opencl;
    unsigned device_retry_ms; /* an out-of-date device copy: rewrite tried at most this often by put/remove */
} bio_gallery_options;

void bio_gallery_options_defaults(bio_gallery_options *o);

typedef struct bio_gallery bio_gallery;

/* When options ask for OpenCL and no device is usable, the gallery still
 * opens on the CPU prefilter; bio_gallery_kernel says which runs and
 * bio_gallery_opencl_note why OpenCL is not used ("" when it is or was not asked). */
rl_error *bio_gallery_new(const bio_gallery_options *o, bio_gallery **out);
void bio_gallery_free(bio_gallery *g);
const char *bio_gallery_kernel(const bio_gallery *g);
const char *bio_gallery_opencl_note(const bio_gallery *g);

/* The OpenCL copy's state (all false / 0 without OpenCL). */
typedef struct bio_gallery_device {
    bool opencl;       /* the gallery has a device copy */
    bool current;      /* it is up to date: searches run there */
    uint64_t failures; /* device writes and searches that failed since the gallery opened */
    char note[300];    /* the latest failure's message ("" none; device errors only, no finger data) */
} bio_gallery_device;
void bio_gallery_device_get(bio_gallery *g, bio_gallery_device *out);
/* Stops writing the device copy (searches use the CPU) until bio_gallery_device_sync. */
void bio_gallery_device_hold(bio_gallery *g);
/* Rewrites the whole device copy from the host arrays when it is held or out
 * of date; on failure it stays out of date (the CPU serves) and the error says
 * why. Nothing to do without OpenCL. */
rl_error *bio_gallery_device_sync(bio_gallery *g);
/* Rewrites an out-of-date copy when device_retry_ms has passed since its
 * latest failure (failures are counted, not returned); nothing
 * otherwise, without taking a lock. For read-mostly sites, where no
 * enrolment may come to retry it: the registry calls it after each search. */
void bio_gallery_device_retry(bio_gallery *g);

/* An enrolled finger's prefilter data: the streamed block and the rest. */
typedef struct bio_pf_finger {
    kern_pf_finger scan;
    kern_pf_detail detail;
} bio_pf_finger;

/* The prefilter data of an enrolled finger, and a probe's prefilter
 * cylinders, from its template (pure, deterministic, no allocation). */
void bio_prefilter_finger(const bio_template *t, bio_pf_finger *out);
void bio_prefilter_probe(const bio_template *t, kern_pf_probe *out);

/* The stored form of bio_pf_finger (little-endian, independent of struct
 * layout): the cylinder count, then per cylinder its KERN_PF_ND value words
 * and valid word (64-bit), direction byte and position (x, y: 16-bit). decode
 * checks what the kernels rely on (RL_EINVAL, naming it). */
enum { BIO_PF_ENCODED_BYTES = 1 + KERN_PF_GCYL * (KERN_PF_ND * 8 + 8 + 1 + 4) };
void bio_prefilter_encode(const bio_pf_finger *f, unsigned char out[BIO_PF_ENCODED_BYTES]);
rl_error *bio_prefilter_decode(const unsigned char *in, size_t len, bio_pf_finger *out);

/* Makes room for `more` fingers beyond those enrolled, so that the puts that
 * follow (one writer) cannot fail for memory: a caller that stores a finger
 * elsewhere first reserves, then stores, then puts. */
rl_error *bio_gallery_reserve(bio_gallery *g, size_t more);
/* Adds or replaces the finger `key`. features: its full features (the
 * gallery takes them, also on error), or NULL; kept only within the budget. */
rl_error *bio_gallery_put(bio_gallery *g, const bio_gallery_key *key, const bio_pf_finger *pf,
                          bio_features *features);
/* Removes a finger; *found (may be NULL) says whether it was there. */
rl_error *bio_gallery_remove(bio_gallery *g, const bio_gallery_key *key, bool *found);
size_t bio_gallery_size(bio_gallery *g);

typedef struct bio_gallery_memory {
    size_t fingers;
    size_t descriptor_bytes; /* the prefilter blocks: scan (streamed) and detail */
    size_t index_bytes;      /* keys, feature pointers, hash table */
    size_t resident_bytes;   /* full features kept (estimate) */
    size_t resident_fingers;
    double bytes_per_finger; /* everything above, over fingers */
} bio_gallery_memory;
void bio_gallery_memory_get(bio_gallery *g, bio_gallery_memory *m);

/* Full features for fingers not resident: out[i] for keys[i], NULL when the
 * finger is gone (deleted meanwhile). out[i] become the gallery's (freed after use). */
typedef rl_error *(*bio_gallery_fetch_fn)(void *ctx, const bio_gallery_key *keys, size_t n, bio_features **out);

typedef struct bio_gallery_params {
    size_t top_k;     /* 1..BIO_GALLERY_MAX_TOP */
    size_t shortlist; /* 0: BIO_GALLERY_SHORTLIST_DEFAULT; at least top_k; the whole gallery is exhaustive */
    size_t refine;    /* fingers the refinement takes from the scan; 0: the default; raised to the short list */
    size_t extend;    /* fingers re-ranked in all when the short list's best is under the threshold (the next
                       * ones of the refinement's order); 0: automatic, BIO_GALLERY_EXTEND_PER_MILLION of
                       * the gallery; at most the refinement size; the short list itself or less
                       * (BIO_GALLERY_EXTEND_NONE): no extension */
    double fpir;      /* target false-positive identification rate of the decision (0: 0.001) */
} bio_gallery_params;

typedef struct bio_gallery_candidate {
    bio_gallery_key key;
    double score;          /* bio_match_score */
    float prefilter_score; /* the refinement's score (an integer) */
    uint32_t prefilter_rank; /* 0-based rank after the refinement */
} bio_gallery_candidate;

typedef struct bio_gallery_result {
    size_t n; /* candidates in top[] */
    bio_gallery_candidate top[BIO_GALLERY_MAX_TOP];
    size_t gallery_size, refined, shortlisted, fetched; /* shortlisted: re-ranked, the extension included */
    bool extended;    /* the short list gave no decision and was extended */
    double threshold; /* bio_gallery_threshold(fpir, gallery_size) */
    bool match;       /* top[0].score >= threshold */
    double prefilter_ms, rerank_ms, total_ms; /* prefilter: stages 1 and 2; rerank: stage 3 */
    double scan_ms;                            /* stage 1 alone */
} bio_gallery_result;

/* bio_gallery_params.extend for a setting as people write it (the
 * configuration's fingerprint.extend, bench identify --extend): -1 automatic,
 * 0 none, N that many in all. */
size_t bio_gallery_extend_setting(long setting);

/* Fingers an identification over `gallery_size` fingers re-ranks in all when
 * its short list gives no decision (the short list's length when it is not
 * extended), as bio_gallery_identify computes it from p. */
size_t bio_gallery_extension(const bio_gallery_params *p, size_t gallery_size);

/* Identifies a probe (its prefilter cylinders and full features). Errors:
 * RL_EINVAL for bad params, whatever fetch returns. */
rl_error *bio_gallery_identify(bio_gallery *g, const kern_pf_probe *probe_pf, const bio_features *probe,
                               const bio_gallery_params *p, bio_gallery_fetch_fn fetch, void *ctx,
                               bio_gallery_result *r);

/* The prefilter rank (0-based) of finger `key` for this probe under the
 * params' refinement size, as identify orders fingers: the refined ones by
 * their refinement score, then the others by their scan score, ties to the
 * lower slot; and its last score. RL_ENOTFOUND when the key is not enrolled.
 * For measuring penetration against miss rate. */
rl_error *bio_gallery_prefilter_rank(bio_gallery *g, const kern_pf_probe *probe_pf, const bio_gallery_params *p,
                                     const bio_gallery_key *key, size_t *rank, float *score);

/*
 * The bio_match_score threshold for a 1:N decision over n fingers at a
 * target false-positive identification rate fpir (the chance that a probe
 * of someone not enrolled is matched to someone). With independent
 * impostors, FPIR = 1 - (1 - FMR)^n ~= n * FMR, so each comparison must
 * reach FMR = fpir / n. FMR -> threshold comes from the 1:1 table of
 * docs/fingerprints.md (FVC2002, 11,520 impostors: 10% 0.0177, 1% 0.0245,
 * 0.1% 0.0331, 0.01% 0.0390), log-linear between its rows and extrapolated
 * beyond 0.01% with the slope of the last decade (0.0059 a decade), an
 * extrapolation the benchmark checks against the best synthetic impostor
 * score at each gallery size.
 */
double bio_gallery_threshold(double fpir, size_t n);

#endif
