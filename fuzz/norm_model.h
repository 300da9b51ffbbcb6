#ifndef NORMGRAPH_FUZZ_NORM_MODEL_H_
#define NORMGRAPH_FUZZ_NORM_MODEL_H_
// The norms of docs/numerics.md computed from their definition, with none of
// kernels/'s code (not kernels/norm_numerics.h, not core/float_bits.h): the
// fuzz harness holds its reference kernel (RmsNormCpuScalar) to this model,
// so that a bug in the numerics every backend shares shows as a finding
// instead of being mirrored by the reference.
//
// Every step as the definition states it: elements decoded by
// fuzz/values.h; the squares in float64, summed as the balanced pairwise tree
// over the row padded with zeros to a power of two (recursively, not by the
// kernels' binary counter over 8-element chunks); +inf from the smallest sum
// float32 accumulation rounds to +inf; r = float(1 / sqrt(sum / n + eps)) in
// float64; then the variant's float32 products, rounded where
// kernels/rms_norm_params.h's table says. One exception: silu(g) takes its
// exponential from the C library's float64 exp, rounded to float32, where the
// kernels use their own (numerics::ExpF32, within an ulp of it), so a gated
// output may differ from the kernels' by a few ulps (GatedUlpsAllowed);
// every other output and the residual written back must
// be equal bit for bit (any NaN equals any NaN: kernels canonicalise them).

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace fuzz {

// How far a gated output of `dtype` may be from the model's, in ulps: the
// two exponentials differ by an ulp, which moves silu(g) by an ulp or two and
// its product with the normalised value by a few float32 ulps (3 seen on
// norm_model_test's random cases), or one 16-bit ulp.
inline int GatedUlpsAllowed(DType dtype) {
  return dtype == DType::kF32 ? 4 : 1;
}

// What the model computes for `p` (its inputs are read, nothing is written):
// out (rows x cols, dense, p.out_dtype) and, with a residual, the residual
// written back (rows x cols, dense, p.x_dtype).
struct NormModelOutput {
  std::vector<uint8_t> out;
  std::vector<uint8_t> residual;
};
void RunNormModel(const RmsNormParams& p, NormModelOutput* model);

// "" if the outputs of a kernel run on `p` (out and the residual it wrote,
// read through p's pointers and strides) agree with `model` (computed from
// the same inputs before the kernel ran); else the first disagreement:
// which tensor, row and column, both values.
std::string CompareWithNormModel(const RmsNormParams& p,
                                 const NormModelOutput& model);

}  // namespace fuzz
}  // namespace normgraph

#endif  // NORMGRAPH_FUZZ_NORM_MODEL_H_
