/*
 * ridgeline device: fingerprint readers from the command line.
 *   list                                             the readers libfprint finds
 *   capture [-o FILE.png] [--device ID] [--timeout S] [--template FILE [--format F]]
 *                                                    one capture, its quality
 * These open the readers directly (device/), not through a running server:
 * a reader the server holds open is not available here (stop the server, or
 * use POST /devices/{id}/capture). Output is JSON on stdout; a capture the
 * person should repeat exits 2 with the prompt, a reader failure 1.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_image.h"
#include "biometrics/bio_template.h"
#include "common/rl_fs.h"
#include "cmd/cmd.h"
#include "common/rl_buf.h"
#include "device/dev_reader.h"

void cmd_device_help(void)
{
    printf("usage: ridgeline device list\n"
           "       ridgeline device capture [-o FILE.png] [--device ID] [--timeout SECONDS]\n"
           "                                [--template FILE] [--format iso|ansi|native]\n"
           "\n"
           "list     the fingerprint readers (USB, through libfprint), one JSON object each:\n"
           "         id, driver, name, mode (\"image\": gives images, usable here; \"match-on-chip\":\n"
           "         matches on the reader itself and cannot serve enrolment or identification).\n"
           "capture  waits for a finger on the reader (--device, default the first that gives\n"
           "         images) for at most --timeout seconds (default 30), then prints the image\n"
           "         quality (0-100; below 35 recapture) and minutiae; -o writes the image as\n"
           "         PNG at 500 ppi, --template the minutiae (--format, default iso).\n"
           "\n"
           "The readers are opened directly: not while a running server holds them (use its\n"
           "POST /devices/{id}/capture then). FP_VIRTUAL_IMAGE=SOCKET adds libfprint's virtual\n"
           "reader, fed over that Unix socket (tests).\n"
           "\n"
           "exit status: 0 success; 2 bad usage, no such reader, or a capture to repeat (the\n"
           "message says why: finger not centred, too short, poor quality, no finger in time);\n"
           "1 the reader failed (busy, unplugged, protocol error).\n");
}

static int cmd_device_list(void)
{
    rl_error *err = NULL;
    dev_readers *m = NULL;
    dev_reader_info *infos = NULL;
    size_t n = 0;
    json_t *list = json_array();
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(dev_readers_start(&m));
    /* Let the readers finish opening, so that "open" says what a capture will find. */
    dev_readers_wait_ready(m, 5000);
    RL_TRY(dev_readers_list(m, &infos, &n));
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, dev_reader_info_json(&infos[i]));
    char *text = json_dumps(list, JSON_INDENT(2));
    if (!text)
        RL_FAIL(RL_ENOMEM, "out of memory");
    printf("%s\n", text);
    free(text);
cleanup:
    free(infos);
    json_decref(list);
    dev_readers_stop(m);
    return err ? cmd_report(err) : CMD_OK;
}

static int cmd_device_capture(int argc, char **argv)
{
    rl_error *err = NULL;
    dev_readers *m = NULL;
    dev_capture cap = {0};
    rl_buf tmpl;
    rl_buf_init(&tmpl, 1u << 16);
    const char *out = NULL, *device = NULL, *tpath = NULL;
    bio_template_format fmt = BIO_FORMAT_ISO;
    long timeout_s = 30;
    int retry = 0;
    const char *reason = NULL; /* set when the capture itself failed (already reported) */
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"device", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'}, {"template", required_argument, NULL, 'T'},
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'd': device = optarg; break;
        case 'T': tpath = optarg; break;
        case 'f': RL_TRY(bio_template_format_parse(optarg, &fmt)); break;
        case 't': {
            char *end = NULL;
            timeout_s = strtol(optarg, &end, 10);
            if (!*optarg || *end || timeout_s < 1 || timeout_s > DEV_TIMEOUT_MAX_MS / 1000)
                RL_FAIL(RL_EINVAL, "--timeout must be 1 to %d seconds", DEV_TIMEOUT_MAX_MS / 1000);
            break;
        }
        case 'h': cmd_device_help(); return CMD_OK;
        default: cmd_device_help(); return CMD_USAGE;
        }
    }
    if (optind != argc)
        RL_FAIL(RL_EINVAL, "device capture takes no arguments besides its options");
    RL_TRY(dev_readers_start(&m));
    err = dev_readers_capture(m, device, (int)timeout_s * 1000, &cap, &reason);
    if (err) {
        retry = rl_error_code(err) == RL_ERETRY;
        if (!reason)
            reason = "device-error";
        fprintf(stderr, "ridgeline: %s (%s): %s\n", retry ? "retry" : "failure", reason, rl_error_message(err));
        goto cleanup;
    }
    if (out)
        RL_TRY(bio_image_write_png(&cap.image, out));
    if (tpath) {
        RL_TRY(bio_template_encode(&cap.tmpl, fmt, &tmpl));
        RL_TRY(rl_fs_write_file(tpath, tmpl.data, tmpl.len));
    }
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:b}", "device", cap.device_id, "quality",
                          cap.info.quality, "minutiae", cap.tmpl.count, "width", cap.image.width, "height",
                          cap.image.height, "ppi", cap.ppi, "ppi_assumed", cap.ppi_assumed);
    if (!o)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (cap.ppi_assumed)
        json_object_set_new(o, "note", json_string("the reader reported no resolution: 500 ppi assumed"));
    if (out)
        json_object_set_new(o, "image", json_string(out));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        RL_FAIL(RL_ENOMEM, "out of memory");
    printf("%s\n", text);
    free(text);
cleanup:
    dev_capture_free(&cap);
    rl_buf_free(&tmpl);
    dev_readers_stop(m);
    if (err && reason) {
        /* The capture failed, already said in one line above: 2 for the person or the caller to fix, 1 for the reader. */
        int status = retry || rl_code_is_client(rl_error_code(err)) ? CMD_USAGE : CMD_FAILED;
        rl_error_free(err);
        return status;
    }
    return err ? cmd_report(err) : CMD_OK;
}

int cmd_device(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_device_help();
        return argc < 2 ? CMD_USAGE : CMD_OK;
    }
    if (strcmp(argv[1], "list") == 0) {
        if (argc != 2) {
            fprintf(stderr, "ridgeline: device list takes no arguments\n");
            return CMD_USAGE;
        }
        return cmd_device_list();
    }
    if (strcmp(argv[1], "capture") == 0)
        return cmd_device_capture(argc - 1, argv + 1);
    fprintf(stderr, "ridgeline: unknown device command \"%s\" (list, capture)\n", argv[1]);
    return CMD_USAGE;
}
