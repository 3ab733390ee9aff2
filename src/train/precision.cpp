#include "train/precision.h"

#include <fmt/format.h>

namespace attnlab {

PrecisionChoice choose_precision(const TrainConfig& tc) {
  PrecisionChoice p;
  if (tc.precision != "bf16") {
    p.summary = "fp32";
    return p;
  }
  p.kernel = bf16_kernel_best();
  if (p.kernel == Bf16Kernel::none) {
    p.summary = "fp32 (train.precision bf16 not available)";
    p.warning =
        "train.precision: bf16 needs a CPU with AMX-BF16 or AVX512-BF16 instructions (Intel Sapphire Rapids or "
        "Cooper Lake, AMD Zen 4 or later); this one has neither, so this run trains in fp32";
    return p;
  }
  p.summary = fmt::format("bf16 GEMM inputs ({} kernel), fp32 weights, sums and optimizer state",
                          bf16_kernel_name(p.kernel));
  return p;
}

}  // namespace attnlab
