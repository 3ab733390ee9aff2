// The CUDA backend's functions in a build without CUDA (-DATTNLAB_CUDA=OFF): cuda_available() is
// false and everything that would run a kernel throws a UserError saying how to get one.
#include "core/error.h"
#include "cuda/cuda_attention.h"

namespace attnlab {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  user_error("{}: attnlab was built without CUDA (configure with -DATTNLAB_CUDA=ON)", what);
}
}  // namespace

bool cuda_available() { return false; }
std::string cuda_device_name() { return "none (built without CUDA)"; }
CudaVersions cuda_versions() { return {}; }

void cuda_flash_forward(const CudaAttnShape&, const CudaAttnOptions&, const float*, const float*,
                        const float*, float*, float*) {
  no_cuda("cuda_flash_forward");
}
void cuda_flash_backward(const CudaAttnShape&, const CudaAttnOptions&, const float*, const float*,
                         const float*, const float*, const float*, const float*, float*, float*,
                         float*) {
  no_cuda("cuda_flash_backward");
}
void cuda_linear_forward(const CudaAttnShape&, const CudaAttnOptions&, const float*, const float*,
                         const float*, float*, float*) {
  no_cuda("cuda_linear_forward");
}
void cuda_linear_backward(const CudaAttnShape&, const CudaAttnOptions&, const float*, const float*,
                          const float*, const float*, const float*, const float*, float*, float*,
                          float*) {
  no_cuda("cuda_linear_backward");
}
CudaBenchResult cuda_bench_attention(const CudaAttnShape&, bool, CudaDType, int) {
  no_cuda("cuda_bench_attention");
}

}  // namespace attnlab
