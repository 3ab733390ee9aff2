// Host-side decisions of the CUDA backend, tested on the CPU (these run on every machine, with or
// without CUDA in the build): linear attention's chunk length against the device's shared-memory
// limit, and the checked-mode switch.
#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include <fmt/format.h>

#include "cuda/cuda_attention.h"
#include "cuda/internal.h"

using namespace attnlab;

namespace {

// Per-block shared memory with opt-in (cudaDevAttrMaxSharedMemoryPerBlockOptin), from NVIDIA's
// compute-capability tables: sm_75 64 KiB, sm_86 / sm_89 99 KiB, sm_80 163 KiB, sm_90 227 KiB.
constexpr std::size_t kSm75 = 64 * 1024, kSm86 = 99 * 1024, kSm80 = 163 * 1024, kSm90 = 227 * 1024;

}  // namespace

TEST_CASE("linear attention's shared memory: the layout's size at the review's figure") {
  // the arithmetic: D = 128, C = 16 needs 101,696 B, over sm_86's 101,376
  CHECK(linear_smem_bytes(128, 16) == 101696);
  CHECK(linear_smem_bytes(128, 16) > kSm86);
  // the layout by hand at a small size: D = 2, C = 1 → S 2×3, z 2, four 1×3 tiles, 1, two 1×1
  CHECK(linear_smem_bytes(2, 1) == sizeof(float) * (6 + 2 + 12 + 1 + 2));
}

TEST_CASE("linear attention's chunk fits every head dim under every shared-memory limit") {
  std::vector<std::size_t> limits = {kSm75, kSm86, kSm80, kSm90, 48 * 1024};
  for (std::size_t kib = 0; kib <= 256; kib++) limits.push_back(kib * 1024);
  for (std::size_t b = 60000; b <= 110000; b += 97) limits.push_back(b);  // odd byte counts too
  int checked = 0;
  for (int D = 1; D <= 128; D++)
    for (std::size_t limit : limits) {
      const int C = linear_chunk(D, limit);
      const int preferred = D > 64 ? 16 : 32;
      INFO(fmt::format("D={} limit={} -> C={}", D, limit, C));
      if (C == 0) {
        CHECK(linear_smem_bytes(D, 1) > limit);  // 0 only when nothing fits
        continue;
      }
      CHECK(C <= preferred);
      CHECK((C & (C - 1)) == 0);                  // a power of two: 32, 16, …, 1
      CHECK(linear_smem_bytes(D, C) <= limit);    // fits
      if (C < preferred) CHECK(linear_smem_bytes(D, 2 * C) > limit);  // and is the largest that does
      checked++;
    }
  CHECK(checked > 128 * 100);
}

TEST_CASE("linear attention's chunk on the GPUs docs/cuda.md names") {
  CHECK(linear_chunk(128, kSm86) == 8);   // the case the review found: 16 would not fit
  CHECK(linear_chunk(128, kSm80) == 16);
  CHECK(linear_chunk(128, kSm90) == 16);
  CHECK(linear_chunk(96, kSm86) == 16);
  CHECK(linear_chunk(64, kSm86) == 32);
  CHECK(linear_chunk(64, kSm75) == 32);
  CHECK(linear_chunk(128, kSm75) == 0);   // S alone (128 × 129 floats) is over 64 KiB
  CHECK(linear_chunk(120, kSm75) == 2);
}

TEST_CASE("checked mode is a switch") {
  cuda_set_checked(true);
  CHECK(cuda_checked_mode());
  cuda_set_checked(false);
  CHECK_FALSE(cuda_checked_mode());
}
