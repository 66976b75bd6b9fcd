/* ridgeline bench: benchmarks that print a readable table, then one JSON line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_gallery.h"
#include "bench/bench_machine.h"
#include "bench/bench_match.h"
#include "bench/bench_population.h"
#include "bench/bench_register.h"
#include "cmd/cmd.h"
#include "common/rl_config.h"
#include "common/rl_fs.h"

void cmd_bench_help(void)
{
    printf("usage: ridgeline bench register|match [--size N] [--threads T] [--data DIR] [--no-sync]\n"
           "                                      [--dup-share F] [--probes N] [--verify-decisions]\n"
           "                                      [--no-rematch]\n"
           "       ridgeline bench population --size N --out FILE.ndjson [--dup-share F]\n"
           "                                  [--creates FILE] [--probes FILE] [--count M]\n"
           "       ridgeline bench identify [--size N] [--kernels scalar|popcnt|avx2|avx512|opencl]\n"
           "                                [--shortlist S] [--refine R] [--extend E|auto|none]\n"
           "                                [--exhaustive-probes P|missed] [--threads T]\n"
           "                                [--features store|memory]\n"
           "\n"
           "register: N synthetic registrations (default 100000) submitted in-process by T\n"
           "threads (default 64) into a fresh store (default: a temporary folder, removed\n"
           "after) with the deterministic matcher and the product's durability (fsync\n"
           "before acknowledging; concurrent writes share fsyncs). A share F (default 0.1)\n"
           "re-registers an earlier person at a second clinic, which the matcher links.\n"
           "\n"
           "match: the probabilistic matcher on a synthetic population sampled from the FEBRL\n"
           "sets (RIDGELINE_TESTDATA, default ../shared/data) with corrupted re-registrations\n"
           "(--dup-share, default 0.2; rates in bench/bench_match.h): registrations/s, $match\n"
           "latency over --probes corrupted probes (default 2000), accuracy, rematch time.\n"
           "--verify-decisions checks every registration's candidates and scores (taken\n"
           "from memory, ahead of its turn) against the store from scratch (slower; a\n"
           "difference is an error). --no-rematch stops before the rematch (registration\n"
           "rates of two builds run in turn: bench/ab_match.sh).\n"
           "\n"
           "population: writes bench match's population as FHIR Patients, one per line, for\n"
           "the HTTP benchmark (bench/http/): N registrations (identifier urn:bench:clinic|n,\n"
           "a share F, default 0.1, corrupted re-registrations); with --creates, M (default\n"
           "50000) POST Patient bodies (new people and the same share of corrupted\n"
           "re-registrations; identifier value @SERIAL@ for the client to make unique); with\n"
           "--probes, M $match Parameters bodies, each a corrupted view of a registered person.\n"
           "\n"
           "identify: 1:N fingerprint identification over N synthetic fingers (default 10000)\n"
           "with impression 1 of the 40 FVC2002 B-set fingers hidden among them, probed with\n"
           "impressions 2-8 (280 probes): latency p50/p99, comparisons/s/core, the prefilter's\n"
           "bytes/s against a streaming read measured in the same run, rank-1 of the staged\n"
           "search (scan, refinement of R fingers, full matcher on S, and on E in all when\n"
           "the S give no decision; default auto, as the server: 6,400 per million fingers;\n"
           "0 or none: no extension; the short lists' features read back from a RocksDB\n"
           "store in a temporary folder, as the server reads them, or with --features\n"
           "memory decoded from memory)\n"
           "and of an exhaustive full-matcher search over P\n"
           "probes spread evenly, or over \"missed\", those the staged search gets wrong,\n"
           "which bounds its loss against the exhaustive search from above (default: all\n"
           "at N <= 10000, missed above), the prefilter's penetration against\n"
           "miss rate, and synthetic against real impostor score distributions.\n"
           "Each prints a table, then the same figures as one JSON line.\n");
}

static void bench_print_machine(const json_t *machine)
{
    printf("machine: %s, %d cores, %.1f GiB, Linux %s\n", json_string_value(json_object_get(machine, "cpu")),
           (int)json_integer_value(json_object_get(machine, "cores")),
           json_real_value(json_object_get(machine, "memory_gib")),
           json_string_value(json_object_get(machine, "kernel")));
}

/* The JSON line that ends every benchmark's output. */
static void bench_print_json(json_t *r, const char *name, json_t *machine)
{
    json_object_set_new(r, "bench", json_string(name));
    json_object_set_new(r, "machine", machine);
    char *line = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", line ? line : "{}");
    free(line);
}

/* A new folder under $TMPDIR (or /tmp) for a benchmark's store, its path in
 * out; false, said on stderr, when none can be made. bench_rmtree removes it. */
static bool bench_tmpdir(char *out, size_t size)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, size, "%s/ridgeline-bench-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(out))
        return true;
    fprintf(stderr, "ridgeline bench: cannot make a temporary folder\n");
    return false;
}

static void bench_rmtree(const char *dir)
{
    rl_error *err = rl_fs_remove_tree(dir);
    if (err)
        cmd_report(err);
}

/* ridgeline bench identify: options, the run, the table's head and the JSON line. */
static int bench_identify(int argc, char **argv)
{
    bench_identify_options o = {.size = 10000, .extend = -1, .exhaustive_probes = -1};
    bool in_memory = false;
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},      {"kernels", required_argument, NULL, 'k'},
        {"shortlist", required_argument, NULL, 'l'}, {"exhaustive-probes", required_argument, NULL, 'e'},
        {"threads", required_argument, NULL, 't'},   {"refine", required_argument, NULL, 'r'},
        {"extend", required_argument, NULL, 'x'},   {"features", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    char *end;
    long v;
    while ((c = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'x':
        case 'e':
            /* The words first (the last of an option given wins): --extend
             * auto|none, --exhaustive-probes missed; else a number. */
            if (c == 'x' && (strcmp(optarg, "auto") == 0 || strcmp(optarg, "none") == 0)) {
                o.extend = optarg[0] == 'a' ? -1 : 0;
                break;
            }
            if (c == 'e') {
                o.exhaustive_missed = strcmp(optarg, "missed") == 0;
                if (o.exhaustive_missed) {
                    o.exhaustive_probes = -1;
                    break;
                }
            }
            /* fall through */
        case 's':
        case 'l':
        case 'r':
        case 't':
            v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 100000000 || (c == 's' && v < 1) || (c == 't' && (v < 1 || v > 64))) {
                fprintf(stderr, "ridgeline bench identify: bad number for an option (try --help)\n");
                return CMD_USAGE;
            }
            if (c == 's') o.size = v;
            if (c == 'l') o.shortlist = v;
            if (c == 'e') o.exhaustive_probes = v;
            if (c == 't') o.threads = (unsigned)v;
            if (c == 'r') o.refine = v;
            if (c == 'x') o.extend = v;
            break;
        case 'k':
            if (strcmp(optarg, "scalar") && strcmp(optarg, "popcnt") && strcmp(optarg, "avx2") &&
                strcmp(optarg, "avx512") && strcmp(optarg, "opencl")) {
                fprintf(stderr, "ridgeline bench identify: --kernels takes scalar, popcnt, avx2, avx512 or opencl\n");
                return CMD_USAGE;
            }
            o.kernels = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "store") && strcmp(optarg, "memory")) {
                fprintf(stderr, "ridgeline bench identify: --features takes store or memory\n");
                return CMD_USAGE;
            }
            in_memory = optarg[0] == 'm';
            break;
        case 'h': cmd_bench_help(); return CMD_OK;
        default: return CMD_USAGE;
        }
    }
    const char *testdata = getenv("RIDGELINE_TESTDATA");
    o.testdata = testdata && *testdata ? testdata : "../shared/data";
    char tmp[1024] = "";
    if (!in_memory) {
        if (!bench_tmpdir(tmp, sizeof tmp))
            return CMD_FAILED;
        o.store_dir = tmp;
    }
    json_t *machine = bench_machine();
    printf("bench identify: %ld synthetic fingers + 40 FVC2002 mates, 280 probes, kernels %s\n", o.size,
           o.kernels ? o.kernels : "best");
    bench_print_machine(machine);
    fflush(stdout);
    json_t *r = NULL;
    rl_error *err = bench_identify_run(&o, &r);
    if (tmp[0])
        bench_rmtree(tmp);
    if (err) {
        json_decref(machine);
        return cmd_report(err);
    }
    bench_print_json(r, "identify", machine);
    json_decref(r);
    return CMD_OK;
}

/* ridgeline bench population: the synthetic population as NDJSON files, no measurement. */
static int bench_population(int argc, char **argv)
{
    const char *testdata = getenv("RIDGELINE_TESTDATA");
    bench_population_options o = {.size = 100000, .dup_share = 0.1, .count = 50000,
                                  .testdata = testdata && *testdata ? testdata : "../shared/data"};
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},    {"out", required_argument, NULL, 'o'},
        {"dup-share", required_argument, NULL, 'u'}, {"creates", required_argument, NULL, 'c'},
        {"probes", required_argument, NULL, 'p'},  {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.size = strtol(optarg, &end, 10);
            if (*end || o.size < 1 || o.size > 100000000) {
                fprintf(stderr, "ridgeline bench population: --size takes 1 to 100000000\n");
                return CMD_USAGE;
            }
            break;
        case 'n':
            o.count = strtol(optarg, &end, 10);
            if (*end || o.count < 1 || o.count > 100000000) {
                fprintf(stderr, "ridgeline bench population: --count takes 1 to 100000000\n");
                return CMD_USAGE;
            }
            break;
        case 'u':
            o.dup_share = strtod(optarg, &end);
            if (*end || o.dup_share < 0 || o.dup_share > 0.9) {
                fprintf(stderr, "ridgeline bench population: --dup-share takes 0 to 0.9\n");
                return CMD_USAGE;
            }
            break;
        case 'o': o.out = optarg; break;
        case 'c': o.creates = optarg; break;
        case 'p': o.probes = optarg; break;
        case 'h': cmd_bench_help(); return CMD_OK;
        default: return CMD_USAGE;
        }
    }
    if (!o.out) {
        fprintf(stderr, "ridgeline bench population: --out FILE.ndjson is required\n");
        return CMD_USAGE;
    }
    rl_error *err = bench_population_write(&o);
    return err ? cmd_report(err) : CMD_OK;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_bench_help();
        return argc < 2 ? CMD_USAGE : CMD_OK;
    }
    if (strcmp(argv[1], "identify") == 0)
        return bench_identify(argc, argv);
    if (strcmp(argv[1], "population") == 0)
        return bench_population(argc, argv);
    bool match = strcmp(argv[1], "match") == 0;
    if (!match && strcmp(argv[1], "register") != 0) {
        fprintf(stderr, "ridgeline bench: unknown benchmark \"%s\" (try: ridgeline bench --help)\n", argv[1]);
        return CMD_USAGE;
    }
    rl_config defaults;
    rl_config_defaults(&defaults);
    bench_register_options o = {.size = 100000, .threads = 64, .sync = true, .dup_share = 0.1,
                                .group_commit_us = defaults.store_group_commit_us};
    const char *data = NULL;
    long probes = 2000;
    bool dup_given = false, verify = false, no_rematch = false;
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},   {"threads", required_argument, NULL, 't'},
        {"data", required_argument, NULL, 'd'},   {"no-sync", no_argument, NULL, 'n'},
        {"dup-share", required_argument, NULL, 'u'}, {"help", no_argument, NULL, 'h'},
        {"probes", required_argument, NULL, 'p'},
        {"verify-decisions", no_argument, NULL, 'v'},
        {"no-rematch", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.size = strtol(optarg, &end, 10);
            if (*end || o.size < 1 || o.size > 100000000) {
                fprintf(stderr, "ridgeline bench: --size takes 1 to 100000000\n");
                return CMD_USAGE;
            }
            break;
        case 't':
            o.threads = (int)strtol(optarg, &end, 10);
            if (*end || o.threads < 1 || o.threads > 1024) {
                fprintf(stderr, "ridgeline bench: --threads takes 1 to 1024\n");
                return CMD_USAGE;
            }
            break;
        case 'd': data = optarg; break;
        case 'n': o.sync = false; break;
        case 'u':
            dup_given = true;
            o.dup_share = strtod(optarg, &end);
            if (*end || o.dup_share < 0 || o.dup_share > 0.9) {
                fprintf(stderr, "ridgeline bench: --dup-share takes 0 to 0.9\n");
                return CMD_USAGE;
            }
            break;
        case 'p':
            probes = strtol(optarg, &end, 10);
            if (*end || probes < 1 || probes > 1000000) {
                fprintf(stderr, "ridgeline bench: --probes takes 1 to 1000000\n");
                return CMD_USAGE;
            }
            break;
        case 'v': verify = true; break;
        case 'r': no_rematch = true; break;
        case 'h': cmd_bench_help(); return CMD_OK;
        default: return CMD_USAGE;
        }
    }
    char tmp[1024] = "";
    if (!data) {
        if (!bench_tmpdir(tmp, sizeof tmp))
            return CMD_FAILED;
        data = tmp;
    }
    o.dir = data;
    json_t *machine = bench_machine();
    if (match) {
        const char *testdata = getenv("RIDGELINE_TESTDATA");
        bench_match_options mo = {.size = o.size, .threads = o.threads, .probes = probes,
                                  .dup_share = dup_given ? o.dup_share : 0.2, .sync = o.sync, .verify = verify,
                                  .no_rematch = no_rematch, .group_commit_us = o.group_commit_us, .dir = data,
                                  .testdata = testdata && *testdata ? testdata : "../shared/data"};
        printf("bench match: %ld registrations, %d threads, sync %s, re-registrations %.0f%%, %ld probes\n",
               mo.size, mo.threads, mo.sync ? "always" : "off", mo.dup_share * 100, mo.probes);
        bench_print_machine(machine);
        fflush(stdout);
        json_t *r = NULL;
        rl_error *err = bench_match_run(&mo, &r);
        if (tmp[0])
            bench_rmtree(tmp);
        if (err) {
            json_decref(machine);
            return cmd_report(err);
        }
        printf("\n  %-30s %12s\n", "measure", "value");
        printf("  %-30s %12.0f\n", "registrations/s (matching on)", json_real_value(json_object_get(r, "registrations_per_s")));
        printf("  %-30s %12.2f\n", "$match p50 ms", json_real_value(json_object_get(r, "match_p50_ms")));
        printf("  %-30s %12.2f\n", "$match p99 ms", json_real_value(json_object_get(r, "match_p99_ms")));
        if (no_rematch)
            printf("  %-30s %12s\n", "rematch s", "not run");
        else
            printf("  %-30s %12.2f\n", "rematch s", json_real_value(json_object_get(r, "rematch_s")));
        printf("  %-30s %12.3f\n", "CPU ms per registration", json_real_value(json_object_get(r, "registration_cpu_ms")));
        printf("  %-30s %12.3f\n", "CPU ms per probe", json_real_value(json_object_get(r, "probe_cpu_ms")));
        if (!no_rematch)
            printf("  %-30s %12.2f\n", "rematch CPU s", json_real_value(json_object_get(r, "rematch_cpu_s")));
        printf("  %-30s %12.4f\n", "precision (pairwise)", json_real_value(json_object_get(r, "precision")));
        printf("  %-30s %12.4f\n", "recall (pairwise)", json_real_value(json_object_get(r, "recall")));
        printf("  %-30s %12lld\n", "persons (golden records)", (long long)json_integer_value(json_object_get(r, "golden_records")));
        printf("  %-30s %12lld\n", "open review items", (long long)json_integer_value(json_object_get(r, "open_reviews")));
        bench_print_json(r, "match", machine);
        json_decref(r);
        return CMD_OK;
    }
    printf("bench register: %ld registrations, %d threads, sync %s, re-registrations %.0f%%, store %s\n", o.size,
           o.threads, o.sync ? "always (fsync per group commit)" : "off", o.dup_share * 100, data);
    bench_print_machine(machine);
    fflush(stdout);
    json_t *r = NULL;
    rl_error *err = bench_register_run(&o, &r);
    if (tmp[0])
        bench_rmtree(tmp);
    if (err) {
        json_decref(machine);
        return cmd_report(err);
    }
    printf("\n  %-28s %12s\n", "measure", "value");
    printf("  %-28s %12.0f\n", "registrations/s", json_real_value(json_object_get(r, "registrations_per_s")));
    printf("  %-28s %12.2f\n", "elapsed s", json_real_value(json_object_get(r, "seconds")));
    printf("  %-28s %12.0f\n", "submit latency p50 us", json_real_value(json_object_get(r, "p50_us")));
    printf("  %-28s %12.0f\n", "submit latency p99 us", json_real_value(json_object_get(r, "p99_us")));
    printf("  %-28s %12lld\n", "records created", (long long)json_integer_value(json_object_get(r, "created")));
    printf("  %-28s %12lld\n", "auto-linked to a person", (long long)json_integer_value(json_object_get(r, "auto_linked")));
    printf("  %-28s %12lld\n", "review items queued", (long long)json_integer_value(json_object_get(r, "reviews_queued")));
    printf("  %-28s %12lld\n", "golden records", (long long)json_integer_value(json_object_get(r, "golden_records")));
    printf("  %-28s %12lld\n", "failed", (long long)json_integer_value(json_object_get(r, "failed")));
    printf("  %-28s %12.1f\n", "store MiB", (double)json_integer_value(json_object_get(r, "store_bytes")) / 1048576.0);
    printf("  %-28s %12.0f\n", "store bytes per record", json_real_value(json_object_get(r, "bytes_per_record")));
    bench_print_json(r, "register", machine);
    json_decref(r);
    return CMD_OK;
}
