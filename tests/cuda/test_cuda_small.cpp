// One small case per kernel, named so that scripts/gpu_check.sh can run each alone under
// compute-sanitizer (memcheck, racecheck, synccheck): `test_cuda -tc="small case: flash forward"`.
// Small because racecheck is slow; still every path of the kernel: a partial last tile (70
// queries, 90 keys), causal with Tq < Tk, key padding that leaves some queries no key, GQA, and
// fp32 and bf16 (so the conversion kernels run too). Each also checks the result against the
// reference; without a GPU each prints "SKIPPED ..." (a CTest skip).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cuda/cuda_attention.h"
#include "cuda_reference.h"  // tests/cuda/

using namespace attnlab;
using namespace cudatest;

namespace {

// forward only (backward = false) or forward and backward, against the reference
void small_case(bool linear, bool backward, int D, CudaDType dt) {
  const Case c{2, 4, 2, 70, 90, D, Mask::causal_padding, dt};
  if (backward) return check_case(c, linear, 1200 + D);
  const Inputs in = make_inputs(c, 1300 + D, linear);
  const Problem& p = in.p;
  const CudaAttnShape s{p.B, p.Hq, p.Hkv, p.Tq, p.Tk, p.D};
  CudaAttnOptions o;
  o.scale = float(p.scale);
  o.causal = p.causal;
  o.key_keep = p.keep.data();
  o.dtype = dt;
  std::vector<float> out(p.nq()), stat(p.rows());
  if (linear)
    cuda_linear_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data());
  else
    cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data());
  const bool bf16 = dt == CudaDType::bf16;
  const Vec q = to_double(in.q, bf16), k = to_double(in.k, bf16), v = to_double(in.v, bf16);
  const Grads ref = linear ? ref_linear(p, q, k, v, nullptr) : ref_softmax(p, q, k, v, nullptr);
  std::string why;
  const double e_out = rel_err(out, ref.out, &why);
  INFO(fmt::format("{} out: rel err {:.3g} {}", c.name(), e_out, why));
  CHECK(e_out <= kTolF32.value);
  const double e_stat = rel_err(stat, ref.stat, &why);
  INFO(fmt::format("{} lse/den: rel err {:.3g} {}", c.name(), e_stat, why));
  CHECK(e_stat <= kTolF32.value);
}

}  // namespace

TEST_CASE("small case: flash forward") {
  if (skip_without_gpu("small case: flash forward")) return;
  for (int D : {32, 128})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16}) small_case(false, false, D, dt);
}

TEST_CASE("small case: flash backward") {
  if (skip_without_gpu("small case: flash backward")) return;
  for (int D : {32, 128})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16}) small_case(false, true, D, dt);
}

TEST_CASE("small case: linear forward") {
  if (skip_without_gpu("small case: linear forward")) return;
  for (int D : {24, 128})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16}) small_case(true, false, D, dt);
}

TEST_CASE("small case: linear backward") {
  if (skip_without_gpu("small case: linear backward")) return;
  for (int D : {24, 128})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16}) small_case(true, true, D, dt);
}
