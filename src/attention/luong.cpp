// PLACEHOLDER while the variant is being written in this session; replaced before commit.
#include "attention/variants.h"
#include "core/error.h"

namespace attnlab {
std::unique_ptr<Attention> make_luong(const AttentionSpec& spec, ParamStore&, Rng&) {
  user_error("attention type '{}' is not built yet", spec.type);
}
}  // namespace attnlab
