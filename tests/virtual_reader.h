/*
 * virtual_reader: a test client of libfprint's virtual_image driver, which
 * stands in for a USB reader when FP_VIRTUAL_IMAGE names a Unix socket path.
 *
 * The driver LISTENS on that path (from when the reader is opened: the
 * appliance opens it when the device layer starts); the test connects to it
 * and writes, per image, two native-endian int32 (width, height) then
 * width * height bytes of 8-bit greyscale, row-major. A negative width is a
 * command (VR_CMD_*, the height its argument). The driver reads only while a
 * capture is active, and drops an image that arrives while it is reading in
 * between captures: send each image when the reader says it waits for a
 * finger (GET /devices: "finger_needed", with "captures" naming which one).
 */
#ifndef RL_TEST_VIRTUAL_READER_H
#define RL_TEST_VIRTUAL_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "biometrics/bio_image.h"

enum {
    VR_CMD_RETRY = -1,       /* arg: FpDeviceRetry code (0 general, 1 too short, 2 centre, 3 remove finger) */
    VR_CMD_ERROR = -2,       /* arg: FpDeviceError code */
    VR_CMD_AUTO_FINGER = -3, /* arg: 0/1 automatic finger detection */
    VR_CMD_FINGER = -4,      /* arg: 0/1 finger present */
    VR_CMD_REMOVE = -5,      /* the device disappears */
};

/* Connects to the driver's socket, retrying until timeout_ms (the socket
 * appears when the reader is opened). Returns the fd, or -1. */
int vr_connect(const char *path, int timeout_ms);
bool vr_send_image(int fd, const uint8_t *pixels, int width, int height);
bool vr_send_command(int fd, int32_t cmd, int32_t arg);
/* Loads an image file (bio_image_load: 500 ppi) and sends it; *sent (may be
 * NULL) receives the pixels sent, for comparison (bio_image_free). */
bool vr_send_file(int fd, const char *path, bio_image *sent);
void vr_close(int fd);

#endif
