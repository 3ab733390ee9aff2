// Small helpers the model's parts share: GPT-2 style initialisation and optional parameters.
#pragma once
#include <algorithm>
#include <vector>

#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

inline void fill_normal(Param* p, Rng& rng, float std) {
  for (auto& x : p->w) x = std * rng.normal();
}
inline void fill_const(Param* p, float v) { std::fill(p->w.begin(), p->w.end(), v); }
inline const float* w_or_null(const Param* p) { return p ? p->w.data() : nullptr; }
inline float* g_or_null(Param* p) { return p ? p->g.data() : nullptr; }
inline void zero(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }

}  // namespace attnlab
