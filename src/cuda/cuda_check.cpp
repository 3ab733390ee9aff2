// Shape checks, the host<->device transfer counters, the checked-mode switch and linear
// attention's chunk choice: the host-side decisions of the CUDA backend. Compiled in both builds
// (with and without CUDA), so the API behaves the same up to the first kernel and these decisions
// are tested on every machine (tests/cuda/test_cuda_plan.cpp).
#include <atomic>
#include <cstdlib>
#include <cstring>

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

namespace {
// -1: not decided yet (read ATTNLAB_CUDA_CHECKED on first use); 0 off; 1 on
std::atomic<int> g_checked{-1};
}  // namespace

void cuda_set_checked(bool on) { g_checked = on ? 1 : 0; }

bool cuda_checked_mode() {
  int c = g_checked.load();
  if (c < 0) {
    const char* env = std::getenv("ATTNLAB_CUDA_CHECKED");
    c = env && *env && std::strcmp(env, "0") != 0 ? 1 : 0;
    int expected = -1;
    g_checked.compare_exchange_strong(expected, c);  // an explicit cuda_set_checked wins
    c = g_checked.load();
  }
  return c == 1;
}

std::size_t linear_smem_bytes(int D, int C) {
  const std::size_t d = std::size_t(D), c = std::size_t(C), p = d + 1;
  return sizeof(float) * (d * p + d + 4 * c * p + c + 2 * c * c);
}

namespace {
std::atomic<std::size_t> g_linear_smem_cap{0};
}  // namespace
void cuda_set_linear_smem_cap(std::size_t bytes) { g_linear_smem_cap = bytes; }
std::size_t cuda_linear_smem_cap() { return g_linear_smem_cap.load(); }

int linear_chunk(int D, std::size_t smem_limit) {
  for (int C = D > 64 ? 16 : 32; C >= 1; C /= 2)
    if (linear_smem_bytes(D, C) <= smem_limit) return C;
  return 0;
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
