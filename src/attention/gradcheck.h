// Finite-difference gradient check of an attention module: the engine behind
// `attnlab gradcheck`, an educational tool as much as a test.
//
// The scalar loss is L = Σ out ⊙ U for a fixed random U (accumulated in double), so the module's
// backward with dout = U gives dL/dθ for every input and parameter θ. Each element is then
// perturbed and the derivative estimated by Richardson-extrapolated central differences
// (the engine of ops/finite_difference.h),
//     n = (4·d(h/2) − d(h)) / 3,   d(h) = (L(θ + h) − L(θ − h)) / 2h,
// which cancels the h² truncation term, so a large step (h = 0.04: small float32 rounding noise
// relative to 2h) can be used on the strongly curved softmax. The error of an element is
// |a − n| / max(|a|, |n|, 5% of the tensor's largest |gradient|); a tensor passes below 5e-3.
#pragma once
#include <string>
#include <vector>

#include "attention/attention.h"

namespace attnlab {

struct GradcheckCase {
  std::string label;           // e.g. "causal GQA self"
  AttentionSpec spec;          // type, heads, mask, options
  int B = 2, Tq = 5, Tk = 5;
  bool self_attention = true;  // x_kv = x_q
  bool key_padding = false;    // the last two keys of batch row 1 are padding
};

struct GradcheckTensor {
  std::string name;            // "x_q", "x_kv" or a parameter's short name
  size_t elements = 0;
  double max_rel = 0.0, max_abs = 0.0;
  double max_rel_beyond_noise = 0.0;  // the same, after subtracting the finite difference's noise
  bool zero = false;           // identically zero gradient (checked as |g| and |n| ≈ 0)
  bool ok = false;
};

inline constexpr double kGradcheckTolerance = 5e-3;

// The standard cases for a type: every allowed mask × head layout × self/cross combination
// (restricted by the variant's AttentionInfo), on tiny shapes.
std::vector<GradcheckCase> gradcheck_cases(const std::string& type);
// Runs one case with weights redrawn N(0, 0.4²) from `seed` (so the softmax is far from uniform).
std::vector<GradcheckTensor> gradcheck_attention(const GradcheckCase& c, uint64_t seed);

}  // namespace attnlab
