// train.precision: which products a run computes in bf16 (docs/architecture.md, "bf16 mixed
// precision"). fp32: none. bf16: every sgemm call, with the best kernel of the machine
// (core/gemm_bf16.h); weights, gradients, optimizer state and every sum stay fp32.
#pragma once
#include <string>

#include "config/config.h"
#include "core/gemm_bf16.h"

namespace attnlab {

struct PrecisionChoice {
  Bf16Kernel kernel = Bf16Kernel::none;  // none: fp32 products
  std::string summary;                   // for the run's first lines, e.g. "bf16 GEMM inputs (amx kernel)"
  std::string warning;                   // non-empty: bf16 was asked for and cannot run here
};

// What train.precision means on this machine. A bad ATTNLAB_BF16_KERNEL is a UserError.
PrecisionChoice choose_precision(const TrainConfig& tc);

}  // namespace attnlab
