/*
 * bio_extract_minutiae: minutiae from the skeleton, false-minutiae removal and
 * directions (stages 5-7 of bio_extract, see bio_extract.h).
 *
 * Candidates come from the crossing number (1 = ending, 3 = bifurcation).
 * Each is then followed along the skeleton for about two ridge periods; what
 * the trace meets decides whether the candidate is an artefact:
 *   ending -> ending within 2 periods: an island / dot (both go);
 *   ending -> bifurcation within 1 period: a spur (both go);
 *   bifurcation -> bifurcation within 1.2 periods: a bridge, lake or pore (both go);
 * then pairs of facing endings across a short gap (a broken ridge), crowded
 * clusters and anything in the foreground border band are removed.
 * The trace also gives the minutia's sense; the orientation field, smoother
 * than a few skeleton pixels, refines its angle when the two agree.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_extract_internal.h"

enum { STOP_MAX = 0, STOP_END = 1, STOP_BRANCH = 2, STOP_DEAD = 3 };
enum { RM_BORDER = 1, RM_SPUR, RM_ISLAND, RM_BRIDGE, RM_BROKEN, RM_CLUSTER, RM_MERGED };

static const int RDX[8] = {0, 1, 1, 1, 0, -1, -1, -1};
static const int RDY[8] = {-1, -1, 0, 1, 1, 1, 0, -1};

typedef struct trace_res {
    int stop, len;
    int ex, ey;     /* last pixel reached */
    float vx, vy;   /* from the start to the pixel dirlen steps along */
} trace_res;

typedef struct tracer {
    const uint8_t *s;
    int w, h;
    int *stamp; /* per pixel: id of the last trace that visited it */
    int id;
} tracer;

static int ring(const uint8_t *s, int w, int x, int y, int p[8])
{
    int cn = 0;
    for (int k = 0; k < 8; k++) p[k] = s[(size_t)(y + RDY[k]) * w + x + RDX[k]];
    for (int k = 0; k < 8; k++) cn += !p[k] && p[(k + 1) & 7];
    return cn;
}

/* Follows the skeleton from (x0,y0) through its neighbour (x1,y1). Pixels
 * already stamped with the current id are never entered. */
static void trace(tracer *t, int x0, int y0, int x1, int y1, int maxlen, int dirlen, trace_res *r)
{
    int px = x0, py = y0, cx = x1, cy = y1, len = 1;
    t->stamp[(size_t)y0 * t->w + x0] = t->id;
    r->vx = (float)(x1 - x0), r->vy = (float)(y1 - y0);
    r->stop = STOP_MAX;
    for (;;) {
        t->stamp[(size_t)cy * t->w + cx] = t->id;
        if (len <= dirlen) r->vx = (float)(cx - x0), r->vy = (float)(cy - y0);
        int p[8];
        int cn = ring(t->s, t->w, cx, cy, p);
        if (cn == 1 && len > 0) {
            /* An ending unless the only neighbours are where we came from. */
            int other = 0;
            for (int k = 0; k < 8; k++)
                if (p[k] && t->stamp[(size_t)(cy + RDY[k]) * t->w + cx + RDX[k]] != t->id) other = 1;
            if (!other) {
                r->stop = STOP_END;
                break;
            }
        }
        if (cn >= 3) {
            r->stop = STOP_BRANCH;
            break;
        }
        if (len >= maxlen) break;
        int best = -1, bestd = -1;
        for (int k = 0; k < 8; k++) {
            if (!p[k]) continue;
            int nx = cx + RDX[k], ny = cy + RDY[k];
            if (nx <= 0 || ny <= 0 || nx >= t->w - 1 || ny >= t->h - 1) continue;
            if (t->stamp[(size_t)ny * t->w + nx] == t->id) continue;
            int d = (nx - px) * (nx - px) + (ny - py) * (ny - py);
            if (d > bestd) bestd = d, best = k;
        }
        if (best < 0) {
            r->stop = STOP_DEAD;
            break;
        }
        px = cx, py = cy;
        cx += RDX[best], cy += RDY[best];
        len++;
    }
    r->len = len;
    r->ex = cx, r->ey = cy;
}

static float wrap2pi(float a)
{
    while (a < 0) a += 2 * BX_PI;
    while (a >= 2 * BX_PI) a -= 2 * BX_PI;
    return a;
}

/* Smallest absolute difference of two angles, in [0, pi]. */
static float angdiff(float a, float b)
{
    float d = fabsf(wrap2pi(a - b));
    return d > BX_PI ? 2 * BX_PI - d : d;
}

/* Angle of the traced sense, snapped onto the orientation field when the two
 * agree within 35 degrees (the field is estimated over ~24 px and is less
 * noisy than a few skeleton pixels). */
static float refine_dir(const bx_ctx *c, int x, int y, float vx, float vy)
{
    float a = bx_atan2(vy, vx), th;
    bx_field_at(c, (float)x, (float)y, &th, NULL);
    float f = angdiff(a, th) <= 0.5f * BX_PI ? th : th + BX_PI;
    return angdiff(a, f) < 0.61f ? wrap2pi(f) : wrap2pi(a);
}

rl_error *bx_minutiae(bx_ctx *c)
{
    rl_error *err = NULL;
    int w = c->w, h = c->h;
    size_t n = (size_t)w * h;
    int *at = malloc(n * sizeof *at);  /* pixel -> candidate index or -1 */
    int *stamp = calloc(n, sizeof *stamp);
    if (!at || !stamp) RL_FAIL(RL_ENOMEM, "extract: out of memory (minutiae)");
    for (size_t i = 0; i < n; i++) at[i] = -1;

    /* candidates */
    for (int pass = 0; pass < 2; pass++) {
        int nm = 0;
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++) {
                size_t i = (size_t)y * w + x;
                if (!c->skel[i]) continue;
                int p[8];
                int cn = ring(c->skel, w, x, y, p);
                if (cn != 1 && cn != 3) continue;
                if (pass) {
                    bx_minutia *m = &c->min[nm];
                    memset(m, 0, sizeof *m);
                    m->x = x, m->y = y;
                    m->type = cn == 1 ? BIO_MINUTIA_ENDING : BIO_MINUTIA_BIFURCATION;
                    at[i] = nm;
                }
                nm++;
            }
        if (!pass) {
            c->min = calloc((size_t)(nm ? nm : 1), sizeof *c->min);
            if (!c->min) RL_FAIL(RL_ENOMEM, "extract: out of memory (minutiae)");
        } else {
            c->nmin = nm;
        }
    }
    c->raw_minutiae = c->nmin;

    float T = c->median_period > 0 ? c->median_period : BX_DEFAULT_PERIOD;
    int dirlen = (int)(T + 0.5f);
    int maxlen = (int)(2.0f * T + 0.5f);
    int spur = (int)(T + 0.5f), bridge = (int)(1.2f * T + 0.5f);
    /* Border band: one ridge period. Wider bands agree better with the
     * commercial extractor, but the matcher gains more from the extra
     * minutiae than it loses to the few false ones at the edge. */
    float margin = T;
    tracer tr = {c->skel, w, h, stamp, 0};

    for (int k = 0; k < c->nmin; k++) {
        bx_minutia *m = &c->min[k];
        int p[8];
        ring(c->skel, w, m->x, m->y, p);
        if (m->type == BIO_MINUTIA_ENDING) {
            int d = 0;
            while (d < 8 && !p[d]) d++;
            /* the ring of an ending is one run: prefer its 4-neighbour */
            for (int e = 0; e < 8; e++)
                if (p[e] && !(e & 1)) d = e;
            trace_res r;
            tr.id++;
            trace(&tr, m->x, m->y, m->x + RDX[d], m->y + RDY[d], maxlen, dirlen, &r);
            m->dir = refine_dir(c, m->x, m->y, r.vx, r.vy);
            int j = at[(size_t)r.ey * w + r.ex];
            if (r.stop == STOP_END && j >= 0 && j != k && r.len <= maxlen) {
                m->removed = RM_ISLAND;
                c->min[j].removed = RM_ISLAND;
            } else if (r.stop == STOP_BRANCH && r.len <= spur) {
                m->removed = RM_SPUR;
                if (j >= 0) c->min[j].removed = RM_SPUR;
            }
        } else {
            /* one branch per run of set pixels in the ring */
            int first[3], nb = 0;
            for (int s = 0; s < 8 && nb < 3; s++) {
                if (!p[s] || p[(s + 7) & 7]) continue; /* start of a run */
                int pick = s;
                for (int e = s; p[e & 7] && e < s + 8; e++)
                    if (!((e & 7) & 1)) {
                        pick = e & 7;
                        break;
                    }
                first[nb++] = pick;
            }
            float vx[3] = {0}, vy[3] = {0};
            for (int b = 0; b < nb; b++) {
                trace_res r;
                tr.id++;
                /* keep the trace out of the other branches' first pixels */
                for (int e = 0; e < 8; e++)
                    if (p[e]) stamp[(size_t)(m->y + RDY[e]) * w + m->x + RDX[e]] = tr.id;
                trace(&tr, m->x, m->y, m->x + RDX[first[b]], m->y + RDY[first[b]], maxlen, dirlen, &r);
                float l = sqrtf(r.vx * r.vx + r.vy * r.vy);
                vx[b] = l > 0 ? r.vx / l : 0, vy[b] = l > 0 ? r.vy / l : 0;
                int j = at[(size_t)r.ey * w + r.ex];
                if (j >= 0 && j != k) {
                    /* two branch pixels side by side are one junction drawn
                     * two pixels wide: keep one of them */
                    if (r.stop == STOP_BRANCH && r.len <= 2) {
                        if (j > k) c->min[j].removed = RM_MERGED;
                    } else if (r.stop == STOP_BRANCH && r.len <= bridge)
                        m->removed = c->min[j].removed = RM_BRIDGE;
                    else if (r.stop == STOP_END && r.len <= spur) m->removed = c->min[j].removed = RM_SPUR;
                }
            }
            /* the two closest branches are the fork; the angle bisects them */
            float bx = 0, by = 0, bestdot = -2;
            for (int a = 0; a < nb; a++)
                for (int b = a + 1; b < nb; b++) {
                    float dt = vx[a] * vx[b] + vy[a] * vy[b];
                    if (dt > bestdot) bestdot = dt, bx = vx[a] + vx[b], by = vy[a] + vy[b];
                }
            m->dir = refine_dir(c, m->x, m->y, bx, by);
        }
    }

    /* broken ridges: two endings facing each other across a short gap, the
     * gap running along the ridge */
    float gap = 1.6f * T;
    for (int a = 0; a < c->nmin; a++) {
        bx_minutia *ma = &c->min[a];
        if (ma->removed || ma->type != BIO_MINUTIA_ENDING) continue;
        for (int b = a + 1; b < c->nmin; b++) {
            bx_minutia *mb = &c->min[b];
            if (mb->removed || mb->type != BIO_MINUTIA_ENDING) continue;
            float dx = (float)(mb->x - ma->x), dy = (float)(mb->y - ma->y);
            if (fabsf(dy) > gap) {
                if (dy > gap) break; /* candidates are in raster order */
                continue;
            }
            float d = sqrtf(dx * dx + dy * dy);
            if (d > gap || d < 1) continue;
            float g = bx_atan2(dy, dx);
            /* a's ridge goes away from b (its angle points into its own ridge) */
            if (angdiff(ma->dir, mb->dir + BX_PI) < 0.79f && angdiff(g, ma->dir + BX_PI) < 0.79f &&
                angdiff(g, mb->dir) < 0.79f)
                ma->removed = mb->removed = RM_BROKEN;
        }
    }

    /* border band and quality */
    for (int k = 0; k < c->nmin; k++) {
        bx_minutia *m = &c->min[k];
        float dist = bx_border_dist(c, m->x, m->y);
        if (!m->removed && dist < margin) m->removed = RM_BORDER;
        float coh;
        bx_field_at(c, (float)m->x, (float)m->y, NULL, &coh);
        float bq = dist / (3.0f * margin);
        if (bq > 1) bq = 1;
        float q = 100.0f * (0.3f + 0.7f * coh) * (0.4f + 0.6f * bq);
        m->quality = q < 1 ? 1 : (q > 100 ? 100 : q);
    }

    /* clusters: many survivors packed within one period are noise */
    for (int a = 0; a < c->nmin; a++) {
        bx_minutia *ma = &c->min[a];
        if (ma->removed) continue;
        int close = 0;
        for (int b = 0; b < c->nmin; b++) {
            bx_minutia *mb = &c->min[b];
            if (b == a || (mb->removed && mb->removed != RM_CLUSTER)) continue;
            float dx = (float)(mb->x - ma->x), dy = (float)(mb->y - ma->y);
            if (dx * dx + dy * dy <= T * T) close++;
        }
        if (close >= 2) ma->removed = RM_CLUSTER;
    }
cleanup:
    free(at);
    free(stamp);
    return err;
}
