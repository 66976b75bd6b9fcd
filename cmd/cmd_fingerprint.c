/*
 * ridgeline fingerprint: the fingerprint engine from the command line.
 *   extract IMAGE [-o FILE] [--format native|iso|ansi]   minutiae and quality
 *   compare A B                                          similarity of two fingers
 *   matrix FILE...                                       N x N similarities
 *   eval DIR...                                          FVC protocol per set
 * A, B and FILE are images (PNG, PGM, raw with --raw WxH) or templates
 * (native, ISO 19794-2, ANSI 378), told apart by their first bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_machine.h"
#include "biometrics/bio_eval.h"
#include "biometrics/bio_extract.h"
#include "biometrics/bio_image.h"
#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"
#include "common/rl_fs.h"
#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_buf.h"

enum { FP_MAX_SETS = 16, FP_MAX_MATRIX = 1024 };

void cmd_fingerprint_help(void)
{
    printf("usage: ridgeline fingerprint extract IMAGE [-o FILE] [--format native|iso|ansi] [--list]\n"
           "       ridgeline fingerprint compare A B\n"
           "       ridgeline fingerprint matrix FILE...\n"
           "       ridgeline fingerprint eval DIR... [--iso] [--det-dir DIR] [--json]\n"
           "       ridgeline fingerprint enroll RECORD POSITION IMAGE|TEMPLATE [--data DIR] [--config FILE]\n"
           "       ridgeline fingerprint identify PROBE [--top K] [--data DIR] [--config FILE]\n"
           "       ridgeline fingerprint list RECORD | delete RECORD POSITION [--data DIR] [--config FILE]\n"
           "\n"
           "IMAGE, A, B, FILE: an image (8-bit greyscale PNG, PGM, or raw greyscale with\n"
           "--raw WIDTHxHEIGHT) or a template (native, ISO/IEC 19794-2:2005, ANSI INCITS\n"
           "378-2004). --ppi N gives the image resolution when the file does not (default 500);\n"
           "images are rescaled to 500 ppi.\n"
           "\n"
           "extract  prints the minutiae count and the image quality (0-100; below 35 ask for\n"
           "         a recapture); -o writes the template (--format, default native); --list\n"
           "         prints the minutiae (x y angle-degrees type quality).\n"
           "compare  prints the similarity score in [0, 1]; see docs/fingerprints.md for the\n"
           "         table from score to false-match rate.\n"
           "matrix   prints the N x N score matrix, one row per line, in argument order.\n"
           "eval     runs the FVC protocol on each B-set folder (files FFF_I.png: 280 genuine,\n"
           "         2,880 cross-finger impostor comparisons for 10 x 8) and prints EER, FMR100,\n"
           "         FMR1000, ZeroFMR, extraction ms/image and comparisons/s (one thread), FNMR\n"
           "         by image quality, and the score thresholds for target false-match rates\n"
           "         over all sets together. --iso uses the FFF_I.iso records beside the images\n"
           "         instead of our extractor; --det-dir writes det_SET.dat (FMR FNMR) per set.\n"
           "\n"
           "enroll   stores a finger for a source record at an ISO finger position (0 unknown,\n"
           "         1-10); a capture below quality 35 or with under 12 minutiae is refused\n"
           "         ('poor capture', status 2): recapture.\n"
           "identify searches every enrolled finger (two stages: prefilter, then the full\n"
           "         matcher on a short list) and prints the best K (default 5) with their\n"
           "         golden record and a decision whose threshold grows with the gallery size.\n"
           "These work on a stopped store (--data, default from the configuration).\n"
           "\n"
           "exit status: 0 success, 1 failure, 2 bad usage or bad input (the message says why);\n"
           "a capture too poor to use is reported as 'poor capture' with status 2.\n");
}

typedef struct fp_opts {
    int raw_width, raw_height, ppi;
} fp_opts;

static bool fp_is_template(const uint8_t *p, size_t len)
{
    return len >= 4 && (memcmp(p, "RLFT", 4) == 0 || memcmp(p, "FMR", 4) == 0);
}

static rl_error *fp_read_file(const char *path, rl_buf *buf)
{
    rl_error *err = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        RL_FAIL(RL_EINVAL, "cannot open %s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        RL_TRY(rl_buf_append(buf, chunk, n));
    if (ferror(f))
        RL_FAIL(RL_EIO, "reading %s: %s", path, strerror(errno));
cleanup:
    if (f)
        fclose(f);
    return err;
}

/* A file to a template: decoded when it is one, extracted when it is an image. */
static rl_error *fp_load_declared(const char *path, const fp_opts *o, bio_template *t, double *extract_ms,
                                  unsigned *declared)
{
    rl_error *err = NULL;
    rl_buf buf;
    bio_image img = {0};
    rl_buf_init(&buf, BIO_IMAGE_MAX_BYTES);
    if (declared)
        *declared = 0;
    RL_TRY(fp_read_file(path, &buf));
    if (fp_is_template((const uint8_t *)buf.data, buf.len)) {
        RL_TRY(bio_template_decode(buf.data, buf.len, t, NULL));
        if (declared)
            *declared = bio_template_declared_position(buf.data, buf.len);
        goto cleanup;
    }
    if (o->raw_width > 0)
        RL_TRY(bio_image_from_raw((const uint8_t *)buf.data, buf.len, o->raw_width, o->raw_height,
                                  o->ppi ? o->ppi : BIO_IMAGE_PPI, &img));
    else
        RL_TRY(bio_image_decode(buf.data, buf.len, o->ppi, &img));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    RL_TRY(bio_extract(&img, t, NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (extract_ms)
        *extract_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
cleanup:
    if (err)
        err = rl_error_wrap(err, "%s", path);
    rl_buf_free(&buf);
    bio_image_free(&img);
    return err;
}

/* A file to a template, as fp_load_declared without the declared position. */
static rl_error *fp_load(const char *path, const fp_opts *o, bio_template *t, double *extract_ms)
{
    return fp_load_declared(path, o, t, extract_ms, NULL);
}

static int fp_extract(int argc, char **argv, const fp_opts *o, const char *output, const char *format_name,
                      bool list)
{
    rl_error *err = NULL;
    rl_buf out;
    rl_buf_init(&out, 1 << 20);
    bio_template *t = malloc(sizeof *t);
    if (!t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (argc != 1)
        RL_FAIL(RL_EINVAL, "extract takes one IMAGE (try --help)");
    bio_template_format format = BIO_FORMAT_NATIVE;
    if (format_name)
        RL_TRY(bio_template_format_parse(format_name, &format));
    double ms = 0;
    RL_TRY(fp_load(argv[0], o, t, &ms));
    printf("%s: %u minutiae, quality %u, %.1f ms\n", argv[0], t->count, t->quality, ms);
    if (list)
        for (int i = 0; i < t->count; i++)
            printf("%7.1f %7.1f %6.1f %-11s %3u\n", t->m[i].x, t->m[i].y, t->m[i].angle * 57.29577951308232,
                   t->m[i].type == BIO_MINUTIA_ENDING        ? "ending"
                   : t->m[i].type == BIO_MINUTIA_BIFURCATION ? "bifurcation"
                                                             : "other",
                   t->m[i].quality);
    if (output) {
        RL_TRY(bio_template_encode(t, format, &out));
        RL_TRY(rl_fs_write_file(output, out.data, out.len));
        printf("wrote %s (%s, %zu bytes)\n", output, bio_template_format_name(format), out.len);
    }
cleanup:
    free(t);
    rl_buf_free(&out);
    return err ? cmd_report(err) : CMD_OK;
}

/* Loads and prepares every file; features[i] owned by the caller. */
static rl_error *fp_prepare_all(int n, char **paths, const fp_opts *o, bio_features **features)
{
    rl_error *err = NULL;
    bio_template *t = malloc(sizeof *t);
    if (!t)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        RL_TRY(fp_load(paths[i], o, t, NULL));
        RL_TRY(bio_features_build(t, &features[i]));
    }
cleanup:
    free(t);
    return err;
}

static int fp_matrix(int argc, char **argv, const fp_opts *o, bool pair_only)
{
    rl_error *err = NULL;
    bio_features **f = NULL;
    bio_match_scratch *s = NULL;
    if (pair_only && argc != 2)
        RL_FAIL(RL_EINVAL, "compare takes two files (try --help)");
    if (argc < 1)
        RL_FAIL(RL_EINVAL, "matrix takes at least one file (try --help)");
    if (argc > FP_MAX_MATRIX)
        RL_FAIL(RL_ETOOBIG, "matrix takes at most %d files", FP_MAX_MATRIX);
    f = calloc((size_t)argc, sizeof *f);
    if (!f)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(fp_prepare_all(argc, argv, o, f));
    RL_TRY(bio_match_scratch_new(&s));
    if (pair_only) {
        printf("%.4f\n", bio_match_score(f[0], f[1], s));
        goto cleanup;
    }
    for (int i = 0; i < argc; i++) {
        for (int j = 0; j < argc; j++)
            printf("%s%.4f", j ? " " : "", bio_match_score(f[i], f[j], s));
        putchar('\n');
    }
cleanup:
    if (f)
        for (int i = 0; i < argc; i++)
            bio_features_free(f[i]);
    free(f);
    bio_match_scratch_free(s);
    return err ? cmd_report(err) : CMD_OK;
}

/* ------------------------------------------------------------------ eval */

static rl_error *fp_write_det(const char *dir, const bio_eval_result *r)
{
    rl_error *err = NULL;
    bio_eval_det_point *p = NULL;
    size_t np = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/det_%s.dat", dir, r->set);
    RL_TRY(bio_eval_det(r->genuine, r->n_genuine, r->impostor, r->n_impostor, &p, &np));
    FILE *f = fopen(path, "w");
    if (!f)
        RL_FAIL(RL_EINVAL, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "# %s: FMR FNMR threshold (%zu genuine, %zu impostor comparisons)\n", r->set, r->n_genuine,
            r->n_impostor);
    for (size_t i = 0; i < np; i++)
        fprintf(f, "%.6g %.6g %.6f\n", p[i].fmr, p[i].fnmr, p[i].threshold);
    if (fclose(f) != 0)
        RL_FAIL(RL_EIO, "writing %s: %s", path, strerror(errno));
    printf("wrote %s\n", path);
cleanup:
    free(p);
    return err;
}

/* FNMR by quality band at each set's 1%-FMR threshold, summed over sets:
 * the evidence that a low quality score predicts a failed match. */
enum { FP_QBANDS = 5 };
static rl_error *fp_quality_table(bio_eval_result **r, int n, json_t *report)
{
    rl_error *err = NULL;
    long pairs[FP_QBANDS] = {0}, misses[FP_QBANDS] = {0};
    for (int s = 0; s < n; s++) {
        double t;
        bool resolved;
        RL_TRY(bio_eval_threshold_at_fmr(r[s]->impostor, r[s]->n_impostor, 0.01, &t, &resolved));
        for (size_t i = 0; i < r[s]->n_genuine; i++) {
            int q = r[s]->genuine_quality[i], band = q >= 100 ? FP_QBANDS - 1 : q / (100 / FP_QBANDS);
            if (band < 0)
                band = 0;
            pairs[band]++;
            misses[band] += r[s]->genuine[i] < t;
        }
    }
    printf("\nFNMR at FMR 1%% by the lower image quality of the pair (all sets):\n");
    printf("  %-9s %7s %7s %8s\n", "quality", "pairs", "misses", "FNMR");
    json_t *rows = json_array();
    for (int b = 0; b < FP_QBANDS; b++) {
        int lo = b * (100 / FP_QBANDS), hi = b == FP_QBANDS - 1 ? 100 : lo + 100 / FP_QBANDS - 1;
        double fnmr = pairs[b] ? (double)misses[b] / (double)pairs[b] : 0;
        printf("  %3d-%-5d %7ld %7ld %7.2f%%\n", lo, hi, pairs[b], misses[b], 100 * fnmr);
        json_array_append_new(rows, json_pack("{s:i,s:i,s:I,s:I,s:f}", "from", lo, "to", hi, "pairs",
                                              (json_int_t)pairs[b], "misses", (json_int_t)misses[b], "fnmr",
                                              fnmr));
    }
    json_object_set_new(report, "fnmr_by_quality", rows);
cleanup:
    return err;
}

/* Score thresholds for target false-match rates, from every set's impostors together. */
static rl_error *fp_fmr_table(bio_eval_result **r, int n, json_t *report)
{
    rl_error *err = NULL;
    json_t *rows = json_array();
    size_t total = 0, k = 0;
    for (int s = 0; s < n; s++)
        total += r[s]->n_impostor;
    double *all = malloc((total ? total : 1) * sizeof *all);
    if (!all)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (int s = 0; s < n; s++) {
        memcpy(all + k, r[s]->impostor, r[s]->n_impostor * sizeof *all);
        k += r[s]->n_impostor;
    }
    static const double targets[] = {0.1, 0.01, 0.001, 0.0001};
    printf("\nScore threshold for a target false-match rate (%zu impostor comparisons):\n", total);
    printf("  %-8s %9s %s\n", "FMR", "threshold", "");
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        double t;
        bool resolved;
        RL_TRY(bio_eval_threshold_at_fmr(all, total, targets[i], &t, &resolved));
        printf("  %-8g %9.4f %s\n", targets[i], t, resolved ? "" : "(too few impostors: upper bound)");
        json_array_append_new(rows, json_pack("{s:f,s:f,s:b}", "fmr", targets[i], "threshold", t, "resolved",
                                              resolved));
    }
    json_object_set_new(report, "fmr_thresholds", rows);
    rows = NULL;
cleanup:
    json_decref(rows);
    free(all);
    return err;
}

static int fp_eval(int argc, char **argv, bool iso, const char *det_dir, bool json_only)
{
    rl_error *err = NULL;
    bio_eval_result *r[FP_MAX_SETS] = {0};
    int n = 0;
    json_t *report = json_object(), *sets = json_array();
    if (argc < 1)
        RL_FAIL(RL_EINVAL, "eval takes at least one DIR (try --help)");
    if (argc > FP_MAX_SETS)
        RL_FAIL(RL_ETOOBIG, "eval takes at most %d folders", FP_MAX_SETS);
    if (!json_only)
        printf("%-8s %6s %4s %7s %7s %7s %7s %8s %9s %8s %6s\n", "set", "images", "FTE", "EER", "FMR100",
               "FMR1000", "ZeroFMR", "extr ms", "cmp/s", "minutiae", "genuine/impostor");
    double eer_sum = 0;
    for (n = 0; n < argc; n++) {
        RL_TRY(bio_eval_run(argv[n], iso ? BIO_EVAL_ISO : BIO_EVAL_EXTRACT, &r[n]));
        const bio_eval_result *x = r[n];
        eer_sum += x->metrics.eer;
        if (!json_only) {
            printf("%-8s %6d %4d %6.2f%% %6.2f%% %6.2f%% %6.2f%% %8.2f %9.0f %8.1f %zu/%zu\n", x->set, x->images,
                   x->failed, 100 * x->metrics.eer, 100 * x->metrics.fmr100, 100 * x->metrics.fmr1000,
                   100 * x->metrics.zero_fmr, x->extract_ms, x->compare_per_s, x->mean_minutiae, x->n_genuine,
                   x->n_impostor);
            fflush(stdout);
        }
        json_array_append_new(
            sets, json_pack("{s:s,s:i,s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I}", "set", x->set, "images",
                            x->images, "fte", x->failed, "eer", x->metrics.eer, "eer_threshold",
                            x->metrics.eer_threshold, "fmr100", x->metrics.fmr100, "fmr1000", x->metrics.fmr1000,
                            "zero_fmr", x->metrics.zero_fmr, "extract_ms", x->extract_ms, "compare_per_s",
                            x->compare_per_s, "mean_minutiae", x->mean_minutiae, "genuine",
                            (json_int_t)x->n_genuine, "impostor", (json_int_t)x->n_impostor));
        if (det_dir)
            RL_TRY(fp_write_det(det_dir, x));
    }
    if (!json_only)
        printf("%-8s %6s %4s %6.2f%%   (mean EER over %d set%s; source: %s)\n", "mean", "", "", 100 * eer_sum / n,
               n, n == 1 ? "" : "s", iso ? "ISO records" : "our extractor");
    json_object_set_new(report, "sets", sets);
    sets = NULL;
    json_object_set_new(report, "mean_eer", json_real(eer_sum / n));
    json_object_set_new(report, "source", json_string(iso ? "iso" : "extractor"));
    if (!json_only) {
        if (!iso)
            RL_TRY(fp_quality_table(r, n, report));
        RL_TRY(fp_fmr_table(r, n, report));
    }
    json_object_set_new(report, "machine", bench_machine());
    json_object_set_new(report, "protocol",
                        json_string("FVC: genuine = every impression vs every later impression of the same "
                                    "finger; impostor = every pair of impressions of different fingers; "
                                    "failures to extract score 0; timings on one thread"));
    char *line = json_dumps(report, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (line) {
        if (!json_only)
            putchar('\n');
        printf("%s\n", line);
        free(line);
    }
cleanup:
    for (int i = 0; i < FP_MAX_SETS; i++)
        bio_eval_result_free(r[i]);
    json_decref(sets);
    json_decref(report);
    return err ? cmd_report(err) : CMD_OK;
}

/* enroll / identify / list / delete on a local store. */
static int fp_store(const char *verb, int n, char **args, const fp_opts *o, const char *config, const char *data,
                    int top)
{
    rl_error *err = NULL;
    cmd_session s;
    bio_template *t = NULL;
    json_t *out = NULL;
    bool opened = false;
    bool enroll = strcmp(verb, "enroll") == 0, identify = strcmp(verb, "identify") == 0,
         list = strcmp(verb, "list") == 0;
    int want = enroll ? 3 : identify || list ? 1 : 2;
    if (n != want) {
        fprintf(stderr, "ridgeline fingerprint %s: expected %d argument%s (try --help)\n", verb, want, want == 1 ? "" : "s");
        return CMD_USAGE;
    }
    long position = 0;
    if (enroll || !(identify || list)) {
        char *end;
        position = strtol(args[1], &end, 10);
        if (*end || position < 0 || position > RL_FINGER_POSITION_MAX) {
            fprintf(stderr, "ridgeline fingerprint %s: POSITION is 0 (unknown) to 10 (ISO/IEC 19794-2)\n", verb);
            return CMD_USAGE;
        }
    }
    t = malloc(sizeof *t);
    if (!t)
        return cmd_report(RL_ERR(RL_ENOMEM, "out of memory"));
    if (enroll) {
        unsigned declared = 0;
        int at = 0;
        RL_TRY(fp_load_declared(args[2], o, t, NULL, &declared));
        RL_TRY(bio_template_enrol_position(declared, (int)position, &at));
        position = at;
    }
    if (identify)
        RL_TRY(fp_load(args[0], o, t, NULL));
    RL_TRY(cmd_session_open(&s, config, data, NULL));
    opened = true;
    if (s.remote)
        RL_FAIL(RL_ECONFLICT, "the store is in use by a server: stop it first (fingerprint commands work on a "
                              "stopped store)");
    rl_actor actor = {s.actor, NULL};
    if (enroll)
        RL_TRY(rl_registry_finger_enroll(s.registry, &actor, args[0], (int)position, t, &out));
    else if (identify)
        RL_TRY(rl_registry_finger_identify(s.registry, &actor, t, top, &out));
    else if (list)
        RL_TRY(rl_registry_finger_list(s.registry, &actor, args[0], &out));
    else {
        RL_TRY(rl_registry_finger_delete(s.registry, &actor, args[0], (int)position));
        out = json_pack("{s:s, s:i, s:b}", "record", args[0], "position", (int)position, "deleted", 1);
    }
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("%s\n", text ? text : "{}");
    free(text);
cleanup:
    if (opened)
        cmd_session_close(&s);
    json_decref(out);
    free(t);
    return err ? cmd_report(err) : CMD_OK;
}

int cmd_fingerprint(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_fingerprint_help();
        return argc < 2 ? CMD_USAGE : CMD_OK;
    }
    const char *verb = argv[1];
    fp_opts o = {0};
    const char *output = NULL, *format = NULL, *det_dir = NULL;
    bool list = false, iso = false, json_only = false;
    const char *config = NULL, *data = NULL;
    int top = 5;
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"format", required_argument, NULL, 'f'},
        {"raw", required_argument, NULL, 'r'},    {"ppi", required_argument, NULL, 'p'},
        {"list", no_argument, NULL, 'l'},         {"iso", no_argument, NULL, 'i'},
        {"det-dir", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"data", required_argument, NULL, 'D'},   {"config", required_argument, NULL, 'c'},
        {"top", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'f': format = optarg; break;
        case 'r':
            if (sscanf(optarg, "%dx%d", &o.raw_width, &o.raw_height) != 2 || o.raw_width <= 0 ||
                o.raw_height <= 0) {
                fprintf(stderr, "ridgeline fingerprint: --raw wants WIDTHxHEIGHT, e.g. 400x500\n");
                return CMD_USAGE;
            }
            break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < BIO_IMAGE_MIN_PPI || v > BIO_IMAGE_MAX_PPI) {
                fprintf(stderr, "ridgeline fingerprint: --ppi wants a resolution from %d to %d\n",
                        BIO_IMAGE_MIN_PPI, BIO_IMAGE_MAX_PPI);
                return CMD_USAGE;
            }
            o.ppi = (int)v;
            break;
        }
        case 'l': list = true; break;
        case 'i': iso = true; break;
        case 'd': det_dir = optarg; break;
        case 'j': json_only = true; break;
        case 'D': data = optarg; break;
        case 'c': config = optarg; break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 100) {
                fprintf(stderr, "ridgeline fingerprint: --top wants 1 to 100\n");
                return CMD_USAGE;
            }
            top = (int)v;
            break;
        }
        case 'h': cmd_fingerprint_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline fingerprint --help\n"); return CMD_USAGE;
        }
    }
    int n = argc - optind;
    char **args = argv + optind;
    if (strcmp(verb, "extract") == 0)
        return fp_extract(n, args, &o, output, format, list);
    if (strcmp(verb, "compare") == 0)
        return fp_matrix(n, args, &o, true);
    if (strcmp(verb, "matrix") == 0)
        return fp_matrix(n, args, &o, false);
    if (strcmp(verb, "eval") == 0)
        return fp_eval(n, args, iso, det_dir, json_only);
    if (strcmp(verb, "enroll") == 0 || strcmp(verb, "identify") == 0 || strcmp(verb, "list") == 0 ||
        strcmp(verb, "delete") == 0)
        return fp_store(verb, n, args, &o, config, data, top);
    fprintf(stderr, "ridgeline fingerprint: unknown action '%s' (extract, compare, matrix, eval, enroll, identify, "
                    "list, delete)\n", verb);
    return CMD_USAGE;
}
