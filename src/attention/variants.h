// Factories of the attention variants, one per file; registry.cpp maps config names to them.
#pragma once
#include <memory>

#include "attention/attention.h"

namespace attnlab {

std::unique_ptr<Attention> make_scaled_dot_product(const AttentionSpec&, ParamStore&, Rng&);
std::unique_ptr<Attention> make_bahdanau(const AttentionSpec&, ParamStore&, Rng&);
std::unique_ptr<Attention> make_luong(const AttentionSpec&, ParamStore&, Rng&);
std::unique_ptr<Attention> make_linear(const AttentionSpec&, ParamStore&, Rng&);
std::unique_ptr<Attention> make_differential(const AttentionSpec&, ParamStore&, Rng&);

}  // namespace attnlab
