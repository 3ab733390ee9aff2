// The SIMD tanh against libm's, in ulps of the result, across the range that matters.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/fastmath.h"

using namespace attnlab;

namespace {
int64_t ordered(float x) {  // float bits mapped to a monotone integer line
  int32_t i;
  std::memcpy(&i, &x, 4);
  return i < 0 ? int64_t(INT32_MIN) - i : int64_t(i);
}
}  // namespace

TEST_CASE("tanh_packets: within 2 ulp of tanh (computed in double) over [-20, 20], exact signs and limits") {
  const int n = 1 << 16;
  alignas(64) static float u[1 << 16], z[1 << 16];
  for (int i = 0; i < n; i++) u[i] = -20.0f + 40.0f * float(i) / float(n - 1);
  u[0] = 0.0f;
  u[1] = -0.0f;
  u[2] = 1e-30f;
  u[3] = 90.0f;
  u[4] = -90.0f;
  tanh_packets(z, u, n);
  int64_t worst = 0;
  for (int i = 0; i < n; i++) {
    const float ref = float(std::tanh(double(u[i])));
    worst = std::max<int64_t>(worst, std::abs(ordered(z[i]) - ordered(ref)));
  }
  CHECK(worst <= 2);
  CHECK(z[0] == 0.0f);
  CHECK(std::signbit(z[1]));
  CHECK(z[2] == 1e-30f);
  CHECK(z[3] == 1.0f);
  CHECK(z[4] == -1.0f);
}

TEST_CASE("tanh_packets: NaN in, NaN out (a diverging run must still be caught)") {
  alignas(64) float u[16], z[16];
  for (int i = 0; i < 16; i++) u[i] = 0.1f * i;
  u[5] = std::nanf("");
  tanh_packets(z, u, 16);
  CHECK(std::isnan(z[5]));
  CHECK(z[4] == doctest::Approx(std::tanh(0.4f)));
}
