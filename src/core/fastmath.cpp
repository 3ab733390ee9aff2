#include "core/fastmath.h"

#include <Eigen/Core>
#include <cmath>

namespace attnlab {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void tanh_packets(float* z, float* p, const float* u, int m) {
  constexpr float c3 = -1.0f / 3, c5 = 2.0f / 15, c7 = -17.0f / 315, c9 = 62.0f / 2835,
                  c11 = -1382.0f / 155925, c13 = 21844.0f / 6081075, c15 = -929569.0f / 638512875,
                  c17 = 6404582.0f / 10854718875.0f;
  using Arr = Eigen::Map<Eigen::ArrayXf, Eigen::AlignedMax>;
  Arr Z(z, m), P(p, m);
  for (int i = 0; i < m; i++) z[i] = std::fabs(u[i]);
  P = Z.square();
  P = Z + Z * P * (c3 + P * (c5 + P * (c7 + P * (c9 + P * (c11 + P * (c13 + P * (c15 + P * c17)))))));
  Z = (-2.0f * Z).exp();
  Z = (1.0f - Z) / (1.0f + Z);
  for (int i = 0; i < m; i++) z[i] = std::copysign(std::fabs(u[i]) < 0.625f ? p[i] : z[i], u[i]);
}
#pragma GCC diagnostic pop

}  // namespace attnlab
