#include "tests/virtual_reader.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void vr_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int vr_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        close(fd);
        vr_sleep_ms(50);
    }
    fprintf(stderr, "virtual_reader: nothing listens on %s\n", path);
    return -1;
}

static bool vr_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

bool vr_send_command(int fd, int32_t cmd, int32_t arg)
{
    int32_t hdr[2] = {cmd, arg};
    return vr_write_all(fd, hdr, sizeof hdr);
}

bool vr_send_image(int fd, const uint8_t *pixels, int width, int height)
{
    int32_t hdr[2] = {width, height};
    return vr_write_all(fd, hdr, sizeof hdr) && vr_write_all(fd, pixels, (size_t)width * (size_t)height);
}

bool vr_send_file(int fd, const char *path, bio_image *sent)
{
    bio_image img = {0};
    rl_error *err = bio_image_load(path, 0, 0, 0, &img);
    if (err) {
        fprintf(stderr, "virtual_reader: %s: %s\n", path, rl_error_message(err));
        rl_error_free(err);
        return false;
    }
    bool ok = vr_send_image(fd, img.pixels, img.width, img.height);
    if (ok && sent)
        *sent = img;
    else
        bio_image_free(&img);
    return ok;
}

void vr_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
