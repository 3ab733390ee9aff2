// Shape checks and the host<->device transfer counters of the CUDA backend. Compiled in both
// builds (with and without CUDA), so the API behaves the same up to the first kernel.
#include <atomic>

#include "core/error.h"
#include "cuda/cuda_attention.h"
#include "cuda/internal.h"

namespace attnlab {

namespace {
std::atomic<std::uint64_t> g_h2d_bytes{0}, g_d2h_bytes{0}, g_h2d_copies{0}, g_d2h_copies{0};
}  // namespace

void cuda_count_transfer(bool to_device, std::size_t bytes) {
  if (to_device) {
    g_h2d_bytes += bytes;
    g_h2d_copies += 1;
  } else {
    g_d2h_bytes += bytes;
    g_d2h_copies += 1;
  }
}

CudaTransferStats cuda_transfer_stats() {
  CudaTransferStats s;
  s.h2d_bytes = g_h2d_bytes.load();
  s.d2h_bytes = g_d2h_bytes.load();
  s.h2d_copies = g_h2d_copies.load();
  s.d2h_copies = g_d2h_copies.load();
  return s;
}

void cuda_reset_transfer_stats() {
  g_h2d_bytes = 0;
  g_d2h_bytes = 0;
  g_h2d_copies = 0;
  g_d2h_copies = 0;
}

void cuda_check_shape(const CudaAttnShape& s, bool flash, const char* what) {
  if (s.B <= 0 || s.Hq <= 0 || s.Hkv <= 0 || s.Tq <= 0 || s.Tk <= 0 || s.D <= 0)
    user_error("{}: every size must be positive, got B={} Hq={} Hkv={} Tq={} Tk={} D={}", what, s.B,
               s.Hq, s.Hkv, s.Tq, s.Tk, s.D);
  if (s.Hq % s.Hkv != 0)
    user_error("{}: n_heads ({}) must be a multiple of n_kv_heads ({})", what, s.Hq, s.Hkv);
  if (flash) {
    if (s.D != 32 && s.D != 64 && s.D != 128)
      user_error("{}: head dimension must be 32, 64 or 128 for the CUDA flash kernels, got {}", what,
                 s.D);
  } else if (s.D > 128) {
    user_error("{}: head dimension must be at most 128 for the CUDA linear kernels, got {}", what, s.D);
  }
  if (long(s.B) * s.Hq > 65535 || long(s.B) * s.Hkv > 65535)
    user_error("{}: batch × heads must be at most 65535 (a CUDA grid dimension), got {}", what,
               long(s.B) * s.Hq);
}

}  // namespace attnlab
