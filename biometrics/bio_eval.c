/* bio_eval: the FVC protocol and its error rates. See bio_eval.h. */
#include "biometrics/bio_eval.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "biometrics/bio_extract.h"
#include "biometrics/bio_image.h"
#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"

enum { EVAL_MAX_IMAGES = 4096, EVAL_MAX_TEMPLATE_BYTES = 1 << 16 };

static int eval_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bio_eval_rate_at_or_above(const double *scores, size_t n, double t)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += scores[i] >= t;
    return n ? (double)k / (double)n : 0.0;
}

/* The candidate thresholds: every distinct score, plus one above them all
 * (where nothing matches). Sorted ascending. */
static rl_error *eval_thresholds(const double *g, size_t ng, const double *im, size_t ni, double **out,
                                 size_t *n_out)
{
    rl_error *err = NULL;
    double *t = malloc((ng + ni + 1) * sizeof *t);
    if (!t)
        RL_FAIL(RL_ENOMEM, "eval: out of memory for %zu thresholds", ng + ni + 1);
    memcpy(t, g, ng * sizeof *t);
    memcpy(t + ng, im, ni * sizeof *t);
    qsort(t, ng + ni, sizeof *t, eval_cmp_double);
    size_t n = 0;
    for (size_t i = 0; i < ng + ni; i++)
        if (n == 0 || t[i] != t[n - 1])
            t[n++] = t[i];
    t[n] = nextafter(t[n - 1], INFINITY);
    *out = t;
    *n_out = n + 1;
    t = NULL;
cleanup:
    free(t);
    return err;
}

rl_error *bio_eval_det(const double *genuine, size_t n_genuine, const double *impostor, size_t n_impostor,
                       bio_eval_det_point **points, size_t *n_points)
{
    rl_error *err = NULL;
    double *t = NULL, *gs = NULL, *is = NULL;
    bio_eval_det_point *p = NULL;
    size_t nt = 0;
    if (n_genuine == 0 || n_impostor == 0)
        RL_FAIL(RL_EINVAL, "eval: need genuine and impostor scores (got %zu and %zu)", n_genuine, n_impostor);
    RL_TRY(eval_thresholds(genuine, n_genuine, impostor, n_impostor, &t, &nt));
    gs = malloc(n_genuine * sizeof *gs);
    is = malloc(n_impostor * sizeof *is);
    p = malloc(nt * sizeof *p);
    if (!gs || !is || !p)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");
    memcpy(gs, genuine, n_genuine * sizeof *gs);
    memcpy(is, impostor, n_impostor * sizeof *is);
    qsort(gs, n_genuine, sizeof *gs, eval_cmp_double);
    qsort(is, n_impostor, sizeof *is, eval_cmp_double);
    /* Sweep thresholds upwards: FMR falls, FNMR rises. Two cursors count the
     * scores below the threshold in each sorted array: linear after sorting. */
    size_t gi = 0, ii = 0;
    for (size_t k = 0; k < nt; k++) {
        while (gi < n_genuine && gs[gi] < t[k])
            gi++;
        while (ii < n_impostor && is[ii] < t[k])
            ii++;
        p[k] = (bio_eval_det_point){.threshold = t[k],
                                    .fmr = (double)(n_impostor - ii) / (double)n_impostor,
                                    .fnmr = (double)gi / (double)n_genuine};
    }
    *points = p;
    *n_points = nt;
    p = NULL;
cleanup:
    free(t);
    free(gs);
    free(is);
    free(p);
    return err;
}

rl_error *bio_eval_metrics_compute(const double *genuine, size_t n_genuine, const double *impostor,
                                   size_t n_impostor, bio_eval_metrics *out)
{
    rl_error *err = NULL;
    bio_eval_det_point *p = NULL;
    size_t np = 0;
    RL_TRY(bio_eval_det(genuine, n_genuine, impostor, n_impostor, &p, &np));
    bio_eval_metrics m = {.fmr100 = 1, .fmr1000 = 1, .zero_fmr = 1};
    bio_eval_det_point t1 = {p[0].threshold, 1, 0}, t2 = {p[np - 1].threshold, 0, 1};
    bool have_t2 = false;
    for (size_t k = 0; k < np; k++) {
        if (p[k].fnmr <= p[k].fmr)
            t1 = p[k];
        if (!have_t2 && p[k].fnmr >= p[k].fmr) {
            have_t2 = true;
            t2 = p[k];
        }
        if (p[k].fmr <= 0.01 && p[k].fnmr < m.fmr100)
            m.fmr100 = p[k].fnmr;
        if (p[k].fmr <= 0.001 && p[k].fnmr < m.fmr1000)
            m.fmr1000 = p[k].fnmr;
        if (p[k].fmr == 0 && p[k].fnmr < m.zero_fmr)
            m.zero_fmr = p[k].fnmr;
    }
    /* FVC2000 definition: the EER interval [EERlow, EERhigh] around the crossing. */
    double low, high;
    if (t1.fnmr + t1.fmr <= t2.fmr + t2.fnmr) {
        low = t1.fnmr;
        high = t1.fmr;
        m.eer_threshold = t1.threshold;
    } else {
        low = t2.fmr;
        high = t2.fnmr;
        m.eer_threshold = t2.threshold;
    }
    m.eer = (low + high) / 2;
    *out = m;
cleanup:
    free(p);
    return err;
}

rl_error *bio_eval_threshold_at_fmr(const double *impostor, size_t n_impostor, double fmr, double *threshold,
                                    bool *resolved)
{
    rl_error *err = NULL;
    double *s = NULL;
    if (!(fmr >= 0 && fmr <= 1))
        RL_FAIL(RL_EINVAL, "eval: target FMR must lie in [0, 1]");
    if (n_impostor == 0)
        RL_FAIL(RL_EINVAL, "eval: no impostor scores to set a threshold from");
    s = malloc(n_impostor * sizeof *s);
    if (!s)
        RL_FAIL(RL_ENOMEM, "eval: out of memory for %zu scores", n_impostor);
    memcpy(s, impostor, n_impostor * sizeof *s);
    qsort(s, n_impostor, sizeof *s, eval_cmp_double);
    /* At most floor(fmr * n) impostors may reach the threshold. */
    size_t allowed = (size_t)floor(fmr * (double)n_impostor + 1e-9);
    *resolved = allowed > 0;
    if (allowed >= n_impostor)
        *threshold = s[0];
    else /* just above the (allowed+1)-th highest score */
        *threshold = nextafter(s[n_impostor - 1 - allowed], INFINITY);
cleanup:
    free(s);
    return err;
}

/* ---------------------------------------------------------------- the run */

typedef struct eval_item {
    int finger, impression;
    char path[4096];
    bio_features *features; /* NULL: failed to extract or read */
    int quality;
    int minutiae;
} eval_item;

static int eval_cmp_item(const void *a, const void *b)
{
    const eval_item *x = a, *y = b;
    if (x->finger != y->finger)
        return (x->finger > y->finger) - (x->finger < y->finger);
    return (x->impression > y->impression) - (x->impression < y->impression);
}

static double eval_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static rl_error *eval_list(const char *dir, const char *ext, eval_item **items_out, int *n_out)
{
    rl_error *err = NULL;
    eval_item *items = NULL;
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        RL_FAIL(RL_EINVAL, "eval: cannot open folder %s", dir);
    items = calloc(EVAL_MAX_IMAGES, sizeof *items);
    if (!items)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");
    struct dirent *e;
    while ((e = readdir(d))) {
        int finger, impression, used = 0;
        char tail[16];
        if (sscanf(e->d_name, "%d_%d.%15s%n", &finger, &impression, tail, &used) != 3 ||
            strcmp(tail, ext) != 0 || e->d_name[used] != '\0')
            continue;
        if (n == EVAL_MAX_IMAGES)
            RL_FAIL(RL_ETOOBIG, "eval: more than %d images in %s", EVAL_MAX_IMAGES, dir);
        items[n].finger = finger;
        items[n].impression = impression;
        snprintf(items[n].path, sizeof items[n].path, "%s/%s", dir, e->d_name);
        n++;
    }
    qsort(items, (size_t)n, sizeof *items, eval_cmp_item);
    *items_out = items;
    *n_out = n;
    items = NULL;
cleanup:
    if (d)
        closedir(d);
    free(items);
    return err;
}

static rl_error *eval_read_template(const char *path, bio_template *t)
{
    rl_error *err = NULL;
    uint8_t *buf = malloc(EVAL_MAX_TEMPLATE_BYTES);
    FILE *f = fopen(path, "rb");
    if (!buf)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");
    if (!f)
        RL_FAIL(RL_EINVAL, "eval: cannot read %s", path);
    size_t len = fread(buf, 1, EVAL_MAX_TEMPLATE_BYTES, f);
    RL_TRY(bio_template_decode(buf, len, t, NULL));
cleanup:
    if (f)
        fclose(f);
    free(buf);
    return err;
}

/* Loads one item into a prepared template; a rejected capture leaves
 * features NULL (counted as a failure) rather than stopping the run. */
static rl_error *eval_prepare(eval_item *it, bio_eval_source source, bio_template *t, double *extract_ms,
                              double *prepare_ms)
{
    rl_error *err = NULL, *soft = NULL;
    bio_image img = {0};
    if (source == BIO_EVAL_ISO) {
        soft = eval_read_template(it->path, t);
        /* The record's frame may not be the image's (the SecuGen records
         * beside the FVC images all claim 300 x 400): map it onto the
         * image next to it, when there is one. */
        char png[sizeof it->path];
        size_t len = strlen(it->path);
        memcpy(png, it->path, len + 1);
        memcpy(png + len - 3, "png", 3);
        rl_error *no_image = soft ? NULL : bio_image_load(png, 0, 0, 0, &img);
        if (!soft && !no_image)
            soft = bio_template_rescale(t, (uint16_t)img.width, (uint16_t)img.height);
        rl_error_free(no_image);
    } else {
        /* An unreadable capture counts as a failure to enrol, like a poor one. */
        soft = bio_image_load(it->path, 0, 0, 0, &img);
        if (!soft) {
            double t0 = eval_now_ms();
            soft = bio_extract(&img, t, NULL);
            *extract_ms += eval_now_ms() - t0;
        }
    }
    if (soft) {
        rl_code code = rl_error_code(soft);
        if (code != RL_ERETRY && code != RL_EINVAL && code != RL_ETOOBIG) {
            err = soft;
            soft = NULL;
            goto cleanup;
        }
        goto cleanup; /* counted as a failure to enrol */
    }
    it->quality = t->quality;
    it->minutiae = t->count;
    double t0 = eval_now_ms();
    RL_TRY(bio_features_build(t, &it->features));
    *prepare_ms += eval_now_ms() - t0;
cleanup:
    rl_error_free(soft);
    bio_image_free(&img);
    return err;
}

static double eval_score(const eval_item *a, const eval_item *b, bio_match_scratch *s)
{
    if (!a->features || !b->features)
        return 0.0;
    return bio_match_score(a->features, b->features, s);
}

static const char *eval_basename(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    static const char empty[] = "";
    return n > start ? dir + start : empty;
}

rl_error *bio_eval_run(const char *dir, bio_eval_source source, bio_eval_result **out)
{
    rl_error *err = NULL;
    eval_item *items = NULL;
    int n = 0;
    bio_template *t = NULL;
    bio_match_scratch *scratch = NULL;
    bio_eval_result *r = calloc(1, sizeof *r);
    if (!r)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");
    RL_TRY(eval_list(dir, source == BIO_EVAL_ISO ? "iso" : "png", &items, &n));
    if (n < 3)
        RL_FAIL(RL_EINVAL, "eval: %s holds %d FFF_I.%s files; need a genuine and an impostor pair", dir, n,
                source == BIO_EVAL_ISO ? "iso" : "png");
    {
        const char *base = eval_basename(dir);
        size_t blen = strlen(base);
        if (blen >= sizeof r->set)
            blen = sizeof r->set - 1;
        memcpy(r->set, base, blen);
        while (blen > 0 && r->set[blen - 1] == '/')
            blen--;
        r->set[blen] = '\0';
    }
    t = malloc(sizeof *t);
    if (!t)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");
    RL_TRY(bio_match_scratch_new(&scratch));

    double extract_ms = 0, prepare_ms = 0, minutiae = 0;
    int prepared = 0;
    for (int i = 0; i < n; i++) {
        RL_TRY(eval_prepare(&items[i], source, t, &extract_ms, &prepare_ms));
        if (items[i].features) {
            prepared++;
            minutiae += items[i].minutiae;
        } else {
            r->failed++;
        }
        if (i == 0 || items[i].finger != items[i - 1].finger)
            r->fingers++;
    }
    r->images = n;
    r->extract_ms = source == BIO_EVAL_ISO ? 0 : extract_ms / n;
    r->prepare_ms = prepared ? prepare_ms / prepared : 0;
    r->mean_minutiae = prepared ? minutiae / prepared : 0;

    size_t ng = 0, ni = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            *(items[i].finger == items[j].finger ? &ng : &ni) += 1;
    if (ng == 0 || ni == 0)
        RL_FAIL(RL_EINVAL, "eval: %s needs two fingers, one with two impressions (a genuine and an impostor pair)",
                dir);
    r->genuine = malloc(ng * sizeof *r->genuine);
    r->impostor = malloc(ni * sizeof *r->impostor);
    r->genuine_quality = malloc(ng * sizeof *r->genuine_quality);
    if (!r->genuine || !r->impostor || !r->genuine_quality)
        RL_FAIL(RL_ENOMEM, "eval: out of memory");

    double t0 = eval_now_ms();
    size_t compared = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double s = eval_score(&items[i], &items[j], scratch);
            if (items[i].features && items[j].features)
                compared++;
            if (items[i].finger == items[j].finger) {
                int qa = items[i].quality, qb = items[j].quality;
                r->genuine_quality[r->n_genuine] = qa < qb ? qa : qb;
                r->genuine[r->n_genuine++] = s;
            } else {
                r->impostor[r->n_impostor++] = s;
            }
        }
    double elapsed = eval_now_ms() - t0;
    /* One pass is a few milliseconds for a fast matcher: repeat the impostor
     * pairs until half a second has passed for a steady rate. */
    while (elapsed < 500 && compared > 0) {
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (items[i].features && items[j].features) {
                    volatile double s = bio_match_score(items[i].features, items[j].features, scratch);
                    (void)s;
                    compared++;
                }
        elapsed = eval_now_ms() - t0;
    }
    r->compare_per_s = elapsed > 0 ? (double)compared / (elapsed / 1e3) : 0;
    RL_TRY(bio_eval_metrics_compute(r->genuine, r->n_genuine, r->impostor, r->n_impostor, &r->metrics));
    *out = r;
    r = NULL;
cleanup:
    if (items)
        for (int i = 0; i < n; i++)
            bio_features_free(items[i].features);
    free(items);
    free(t);
    bio_match_scratch_free(scratch);
    bio_eval_result_free(r);
    return err;
}

void bio_eval_result_free(bio_eval_result *r)
{
    if (!r)
        return;
    free(r->genuine);
    free(r->impostor);
    free(r->genuine_quality);
    free(r);
}
