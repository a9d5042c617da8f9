#ifndef CSWERVETREES_H
#define CSWERVETREES_H
// Batched evaluation of decision-tree ensembles (see Sources/SwerveInference/Trees/). The forest
// is laid out once at load: each tree's nodes contiguous, each node 16 bytes; a leaf is a node
// whose both children are itself, so every row of a tree takes exactly `depth` steps without a
// branch on "is this a leaf". Rows go through a tree SWK_TREE_LANES at a time, their walks
// interleaved so the loads of one hide the latency of the others.

#include <stddef.h>
#include <stdint.h>

/// Node flags (the top 8 bits of `feature_flags`; the feature index is the low 24 bits).
#define SWK_TREE_LT 0x01          /* x < t takes `yes` (else x <= t) */
#define SWK_TREE_MISSING_YES 0x02 /* a missing value takes `yes` (else `no`) */
#define SWK_TREE_ZERO_MISSING 0x04 /* |x| <= 1e-35 counts as missing too (NaN always is) */

/// Rows walked together.
#define SWK_TREE_LANES 16

typedef struct {
    float threshold;
    uint32_t feature_flags;
    int32_t yes;
    int32_t no;
} swk_tree_node;

typedef struct {
    const swk_tree_node *nodes;
    /// Per tree: index of its root in `nodes`, and the steps that reach any of its leaves.
    const int32_t *roots;
    const int32_t *depths;
    int64_t tree_count;
    /// Per node (used at leaves only): where its contributions start and how many there are.
    const int32_t *leaf_start;
    const int32_t *leaf_count;
    /// Contributions: target and weight.
    const int32_t *targets;
    const double *weights;
    int64_t target_count;
} swk_forest;

/// Adds every tree's leaf contributions for `rows` rows (row r's features at x + r * stride) to
/// acc (rows × target_count doubles, row-major), in tree order for each row: the sum a row gets
/// does not depend on the other rows of the batch. `has` (rows × target_count, or NULL) gets 1
/// where a contribution was added.
void swk_forest_accumulate(const swk_forest *forest, const float *x, size_t rows, size_t stride, double *acc,
                           unsigned char *has);

#endif
