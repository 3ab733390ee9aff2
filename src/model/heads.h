// What sits on top of a stack's (final-normed) output h [B,T,C]: a head that turns it into
// logits, and the cross-entropy loss of those logits.
//
//   LMHead          logits[b,t] = W h[b,t] (+ b)           [B·T, V]  (W may be the token embedding;
//                                                                   b with model.head_bias)
//   ClassifierHead  logits[b]   = W pool(h[b]) + bias      [B, K]    pool: first position or the
//                                                                    mean over the real positions
#pragma once
#include <string>
#include <vector>

#include "attention/attention.h"
#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

// out[b] = mean over t < len[b] of x[b,t] (rows [B,T,C] -> [B,C]; an empty row gives 0).
void mean_pool(float* out, const float* x, const int* len, int B, int T, int C);
// dx[b,t] += dout[b] / len[b] for t < len[b]: the gradient of mean_pool.
void mean_pool_backward(float* dx, const float* dout, const int* len, int B, int T, int C);

class Head {
 public:
  virtual ~Head() = default;
  // h [B,T,C] -> logits [rows(), width()]; len [B] = each row's real length.
  virtual const float* forward(const float* h, int B, int T, const int* len) = 0;
  // dlogits -> dh [B,T,C] (+=) and the head's parameter gradients (+=).
  virtual void backward(float* dh, const float* dlogits) = 0;
  virtual int rows() const = 0;
  virtual int width() const = 0;
  const float* logits() const { return logits_.data(); }

 protected:
  std::vector<float> logits_;
};

class LMHead final : public Head {
 public:
  // b (model.head_bias) may be null
  LMHead(Param* w, Param* b, int vocab_size, int C) : w_(w), b_(b), V_(vocab_size), C_(C) {}
  const float* forward(const float* h, int B, int T, const int* len) override;
  void backward(float* dh, const float* dlogits) override;
  int rows() const override { return N_; }
  int width() const override { return V_; }

 private:
  Param* w_;
  Param* b_;
  int V_, C_, N_ = 0;
  const float* h_ = nullptr;
};

class ClassifierHead final : public Head {
 public:
  // registers cls_head.w and cls_head.b, initialised by init_linear under `init` (gpt2: N(0, 0.02),
  // 0); pool: "first" | "mean"
  ClassifierHead(const std::string& pool, int n_classes, int C, InitScheme init, float init_std, ParamStore& store,
                 Rng& rng);
  const float* forward(const float* h, int B, int T, const int* len) override;
  void backward(float* dh, const float* dlogits) override;
  int rows() const override { return B_; }
  int width() const override { return K_; }

 private:
  bool first_;
  int K_, C_, B_ = 0, T_ = 0;
  Param *w_, *b_;
  const int* len_ = nullptr;
  std::vector<float> pooled_, dpooled_;
};

// Mean cross-entropy (with label smoothing) of logits [rows, width] against targets
// (-1 = not counted). `what` names the targets' range in errors ("vocabulary", "classes").
class Loss {
 public:
  float forward(const float* logits, const int* targets, int rows, int width, float smoothing, bool train,
                const char* what);
  // d(loss)/d(logits) [rows, width] for loss = (sum of the counted targets' losses) / denom;
  // denom = 0 means count(), the gradient of the mean. A larger denom (the targets of a whole batch
  // of which this forward saw one micro-batch) weights this part as its share of that batch's mean.
  // Only after a forward that counted a target.
  const float* backward(int denom = 0);
  int count() const { return count_; }
  int correct() const { return correct_; }  // counted targets where argmax == target (eval forwards)
  void clear() { count_ = correct_ = 0; }

 private:
  int rows_ = 0, width_ = 0, count_ = 0, correct_ = 0;
  float smoothing_ = 0.0f;
  std::vector<int> targets_;
  std::vector<float> probs_, losses_, dlogits_;
};

}  // namespace attnlab
