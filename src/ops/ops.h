// Core ops: forward/backward pairs over contiguous row-major float buffers.
//
// Conventions (llm.c style):
//  * shapes are given in the comments as [dim, dim, ...], row-major;
//  * forward writes its outputs (overwrites);
//  * backward ADDS into every gradient buffer it is given (+=), so that a
//    tensor used twice (residual stream, tied embeddings) just accumulates;
//    the trainer zeroes gradients once per step. A null gradient pointer
//    means "not needed" and is skipped;
//  * loops over rows are OpenMP-parallel; results do not depend on the
//    thread count except where noted (reductions over rows in backward are
//    done in a fixed order).
#pragma once
#include <cstddef>
#include <cstdint>

namespace attnlab {
class Rng;

// ---- linear: out[N,OC] = inp[N,IC] · W[OC,IC]ᵀ + b[OC]   (b may be null)
void linear_forward(float* out, const float* inp, const float* W, const float* b, int N, int IC,
                    int OC);
// dinp[N,IC] += dout[N,OC] · W ;  dW[OC,IC] += doutᵀ · inp ;  db[OC] += Σ_n dout[n,:]
// (add_dinp = false: dinp is written, =, instead of added to: no zeroing pass before)
void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp,
                     const float* W, int N, int IC, int OC, bool add_dinp = true);

// ---- layernorm over the last dim: out[N,C] = (inp - mean) * rstd * w[C] + b[C]
// saves mean[N] and rstd[N] = 1/sqrt(var + eps) (biased variance) for the backward
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int N, int C, float eps = 1e-5f);
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C);

// ---- GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))   over n elements
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);
// In place: d holds ∂L/∂out on entry and ∂L/∂x on exit (overwritten, not added).
void gelu_backward_inplace(float* d, const float* x, size_t n);

// ---- GELU, exact form: x Φ(x) = ½ x (1 + erf(x/√2))   over n elements (model.activation: gelu)
void gelu_erf_forward(float* out, const float* inp, size_t n);
void gelu_erf_backward(float* dinp, const float* inp, const float* dout, size_t n);
// In place, as gelu_backward_inplace.
void gelu_erf_backward_inplace(float* d, const float* x, size_t n);

// ---- softmax over the last dim: out[N,C] = exp(inp - max) / Σ exp(inp - max)
void softmax_forward(float* out, const float* inp, int N, int C);
// dinp[N,C] += out ⊙ (dout - Σ_c dout·out)
void softmax_backward(float* dinp, const float* out, const float* dout, int N, int C);
// (in place, over attention's score blocks: softmax_backward_rows in ops/attention_core.h)

// ---- embedding lookup: out[N,C] = table[ids[n], :]     table [V,C]
void embedding_forward(float* out, const int* ids, const float* table, int N, int C);
// dtable[ids[n], :] += dout[n, :]
void embedding_backward(float* dtable, const int* ids, const float* dout, int N, int C);

// ---- cross-entropy fused with softmax, with an ignore index and label smoothing ε.
// logits[N,V], targets[N]. For a row with target t ≠ ignore_index, p = softmax(logits):
//   loss_n = -(1-ε) log p_t - (ε/V) Σ_v log p_v
// Writes probs[N,V] (kept for the backward) and losses[N] (0 for ignored rows).
// Returns the mean loss over non-ignored rows (0 if there are none); *count gets their number.
float cross_entropy_forward(float* probs, float* losses, const float* logits, const int* targets,
                            int N, int V, int ignore_index, float smoothing, int* count = nullptr);
// dlogits[N,V] += scale * (p - q) on non-ignored rows, q = (1-ε)·onehot(t) + ε/V.
// For the mean loss, scale = 1 / count.
void cross_entropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V,
                            int ignore_index, float smoothing, float scale);

// ---- dropout (inverted): mask[i] = 1/(1-p) with probability 1-p, else 0; out = inp ⊙ mask.
// The mask is drawn sequentially from rng, so it is the same for every thread count.
// p == 0 writes mask = 1 and draws nothing.
void dropout_forward(float* out, float* mask, const float* inp, size_t n, float p, Rng& rng);
void dropout_backward(float* dinp, const float* mask, const float* dout, size_t n);

// ---- residual add: out = a + b
void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_backward(float* da, float* db, const float* dout, size_t n);

}  // namespace attnlab
