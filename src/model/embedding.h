// The input layer of a stack: token embedding plus absolute positions, then dropout.
//
//   x0[b,t] = s · tok[ids[b,t]] + pos[pos0 + t]
//
// positions learned: pos is a [block_size, C] parameter table, s = 1.
// positions sinusoidal: pos is the fixed table PE[t, 2i] = sin(t / 10000^(2i/C)),
//   PE[t, 2i+1] = cos(...) (Vaswani et al. 2017, 3.5), and s = √C (3.4): the table's entries are
//   O(1) while token embeddings start at N(0, 0.02), so unscaled the positions drown the tokens.
// rope, alibi, none: no position term here (rope and alibi act inside self-attention).
#pragma once
#include <vector>

#include "config/config.h"
#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

class Embedding {
 public:
  // tok [V,C] (two embeddings may share one table); pos [block_size,C] with learned positions,
  // else null. The caller registers and initialises both.
  Embedding(const ModelConfig& cfg, int vocab_size, Param* tok, Param* pos);

  // ids [B,T] at positions pos0..pos0+T-1 -> output() [B,T,C]. p_drop > 0 draws a dropout mask from rng.
  void forward(const int* ids, int B, int T, int pos0, float p_drop, Rng* rng);
  // dx0 [B,T,C] of output() -> the tables' gradients (+=).
  void backward(const float* dx0, int B, int T);
  const float* output() const { return x0_.data(); }

 private:
  int V_, C_;
  Param* tok_;
  Param* pos_;
  std::vector<float> sinusoid_;  // [block_size, C] with sinusoidal positions
  float scale_ = 1.0f;
  std::vector<int> ids_;
  std::vector<float> x0_, mask_;        // [N,C]
  std::vector<float> masked_, scaled_;  // backward scratch, reused once the shapes are stable
};

}  // namespace attnlab
