// Tree ensemble evaluation: see include/CSwerveTrees.h.
#include "CSwerveTrees.h"

#include <math.h>

/// The child node `n` sends x to. Missing (NaN, and 0 when flagged) goes where the flag says;
/// other values compare with the threshold.
static inline int32_t swk_tree_step(const swk_tree_node *n, const float *row) {
    uint32_t ff = n->feature_flags;
    float v = row[ff & 0xFFFFFFu];
    uint32_t flags = ff >> 24;
    int missing = (v != v) | ((flags & SWK_TREE_ZERO_MISSING) && fabsf(v) <= 1e-35f);
    int cmp = (flags & SWK_TREE_LT) ? (v < n->threshold) : (v <= n->threshold);
    int yes = missing ? (int)((flags & SWK_TREE_MISSING_YES) != 0) : cmp;
    return yes ? n->yes : n->no;
}

static inline void swk_tree_add(const swk_forest *f, int32_t leaf, double *acc, unsigned char *has) {
    int32_t s = f->leaf_start[leaf], c = f->leaf_count[leaf];
    for (int32_t j = 0; j < c; j++) acc[f->targets[s + j]] += f->weights[s + j];
    if (has) {
        for (int32_t j = 0; j < c; j++) has[f->targets[s + j]] = 1;
    }
}

void swk_forest_accumulate(const swk_forest *f, const float *x, size_t rows, size_t stride, double *acc,
                           unsigned char *has) {
    const swk_tree_node *nodes = f->nodes;
    const size_t T = (size_t)f->target_count;
    size_t r0 = 0;
    // Full groups of lanes: each tree walked by all of them together, depth steps each.
    for (; r0 + SWK_TREE_LANES <= rows; r0 += SWK_TREE_LANES) {
        const float *base = x + r0 * stride;
        for (int64_t t = 0; t < f->tree_count; t++) {
            int32_t p[SWK_TREE_LANES];
            const int32_t root = f->roots[t];
            for (int l = 0; l < SWK_TREE_LANES; l++) p[l] = root;
            for (int32_t d = f->depths[t]; d > 0; d--) {
                for (int l = 0; l < SWK_TREE_LANES; l++) p[l] = swk_tree_step(&nodes[p[l]], base + (size_t)l * stride);
            }
            for (int l = 0; l < SWK_TREE_LANES; l++) {
                size_t r = r0 + (size_t)l;
                swk_tree_add(f, p[l], acc + r * T, has ? has + r * T : NULL);
            }
        }
    }
    // The rest, one row at a time: SWK_TREE_LANES trees walked together (their leaves added in
    // tree order afterwards, so the sums are those of the walks above).
    for (; r0 < rows; r0++) {
        const float *row = x + r0 * stride;
        double *out = acc + r0 * T;
        unsigned char *h = has ? has + r0 * T : NULL;
        int64_t t = 0;
        for (; t + SWK_TREE_LANES <= f->tree_count; t += SWK_TREE_LANES) {
            int32_t p[SWK_TREE_LANES];
            int32_t depth = 0;
            for (int l = 0; l < SWK_TREE_LANES; l++) {
                p[l] = f->roots[t + l];
                if (f->depths[t + l] > depth) depth = f->depths[t + l];
            }
            for (int32_t d = depth; d > 0; d--) {
                for (int l = 0; l < SWK_TREE_LANES; l++) p[l] = swk_tree_step(&nodes[p[l]], row);
            }
            for (int l = 0; l < SWK_TREE_LANES; l++) swk_tree_add(f, p[l], out, h);
        }
        for (; t < f->tree_count; t++) {
            int32_t p = f->roots[t];
            for (int32_t d = f->depths[t]; d > 0; d--) p = swk_tree_step(&nodes[p], row);
            swk_tree_add(f, p, out, h);
        }
    }
}
