// Parameters: a named weight tensor with its gradient, owned by a ParamStore.
//
// Modules register their parameters at construction and keep the Param*
// (the store is a deque, so pointers stay valid). The optimizer, checkpoints
// and `inspect` walk the store in registration order, which is therefore part
// of the model's definition: names are unique and stable.
#pragma once
#include <deque>
#include <string>
#include <vector>

namespace attnlab {

// What a parameter is, so the optimizer can choose weight decay per group.
enum class ParamKind { weight, bias, norm, embedding };

struct Param {
  std::string name;        // e.g. "blocks.0.attn.w_q"
  std::vector<int> shape;  // row-major
  std::vector<float> w;    // value
  std::vector<float> g;    // gradient (accumulated by backward; zeroed by the trainer)
  ParamKind kind = ParamKind::weight;
  size_t numel() const { return w.size(); }
};

class ParamStore {
 public:
  Param* add(std::string name, std::vector<int> shape, ParamKind kind);
  const std::deque<Param>& all() const { return params_; }
  std::deque<Param>& all() { return params_; }
  Param* find(const std::string& name);
  size_t count() const;  // total number of scalars
  void zero_grad();

 private:
  std::deque<Param> params_;
};

}  // namespace attnlab
