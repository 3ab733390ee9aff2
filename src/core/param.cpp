#include "core/param.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab {

Param* ParamStore::add(std::string name, std::vector<int> shape, ParamKind kind) {
  ATTNLAB_CHECK(find(name) == nullptr);
  size_t n = 1;
  for (int d : shape) n *= size_t(d);
  Param& p = params_.emplace_back();
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.w.assign(n, 0.0f);
  p.g.assign(n, 0.0f);
  p.kind = kind;
  return &p;
}

Param* ParamStore::find(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

size_t ParamStore::count() const {
  size_t n = 0;
  for (const auto& p : params_) n += p.numel();
  return n;
}

void ParamStore::zero_grad() {
  for (auto& p : params_) std::fill(p.g.begin(), p.g.end(), 0.0f);
}

}  // namespace attnlab
