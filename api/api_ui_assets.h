/*
 * api_ui_assets: the table of the web app's files, generated at build time by
 * scripts/embed-web.sh from every file under web/ (dot files aside) into
 * $(OBJ)/gen/web_assets.c. Kept apart from api_ui.h so that the generated
 * file needs nothing but this header.
 *
 * Invariants: paths are relative to web/ ("index.html", "js/app.js"), unique,
 * made of [A-Za-z0-9._~@+/-] only; data holds len bytes (plus a NUL past the
 * end, so that an empty file is a valid array); etag is a strong validator,
 * the quoted first 128 bits of the content's SHA-256 in hex. All static.
 */
#ifndef RL_API_UI_ASSETS_H
#define RL_API_UI_ASSETS_H

#include <stddef.h>

typedef struct api_ui_asset {
    const char *path;
    const unsigned char *data;
    size_t len;
    const char *etag;
} api_ui_asset;

extern const api_ui_asset api_ui_assets[];
extern const size_t api_ui_asset_count;

#endif
