// attnlab_cuda_bench: the GPU timing table of the flash kernels (scripts/gpu_check.sh runs it).
//
//   attnlab_cuda_bench [--n 512,1024,...] [--tokens 16384] [--heads 16] [--dim 64] [--iters 5]
//                      [--dtype f32,bf16] [--mask none,causal] [--csv FILE]
//   attnlab_cuda_bench --info     driver and runtime versions and the device; exit 2 when the
//                                 driver is older than the runtime or no device is visible
//
// For each sequence length n the batch is B = max(1, tokens / n), so every row of the table
// processes the same number of tokens. Inputs are random on the device (no host transfers are
// timed). FLOPs: forward 4·B·H·n²·D (QKᵀ and PV), halved when causal; forward+backward 3.5× that
// (the backward counted as 2.5 forwards, the usual convention, although these kernels recompute
// more). Times are medians of --iters runs after one warm-up.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_attention.h"

namespace {

std::string version_text(int v) {
  return v == 0 ? std::string("none") : std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

// --info: what a person debugging a first GPU run needs before anything else
int print_info() {
  using namespace attnlab;
  const CudaVersions v = cuda_versions();
  std::printf("CUDA driver:  %s (the newest CUDA the installed driver supports)\n",
              version_text(v.driver).c_str());
  std::printf("CUDA runtime: %s (linked into this program)\n", version_text(v.runtime).c_str());
  if (v.driver == 0) {
    std::fprintf(stderr, "error: no NVIDIA driver found (is this a GPU machine?)\n");
    return 2;
  }
  if (v.driver < v.runtime) {
    std::fprintf(stderr,
                 "error: the driver is too old for the runtime: it supports CUDA %s, the runtime is "
                 "CUDA %s; update the NVIDIA driver, or build with a CUDA toolkit no newer than %s\n",
                 version_text(v.driver).c_str(), version_text(v.runtime).c_str(),
                 version_text(v.driver).c_str());
    return 2;
  }
  std::printf("device:       %s\n", cuda_device_name().c_str());
  return cuda_available() ? 0 : 2;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int to_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x <= 0 || x > (1L << 30))
    attnlab::user_error("{}: expected a positive integer, got '{}'", flag, v);
  return int(x);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace attnlab;
  try {
    std::vector<int> ns = {512, 1024, 2048, 4096, 8192, 16384};
    int tokens = 16384, heads = 16, dim = 64, iters = 5;
    std::vector<std::string> dtypes = {"f32", "bf16"}, masks = {"none", "causal"};
    std::string csv;
    for (int i = 1; i < argc; i++) {
      const std::string flag = argv[i];
      if (flag == "--info") return print_info();
      if (flag == "--help" || flag == "-h") {
        std::printf("usage: %s [--n LIST] [--tokens N] [--heads H] [--dim D] [--iters N] "
                    "[--dtype f32,bf16] [--mask none,causal] [--csv FILE] | --info\n", argv[0]);
        return 0;
      }
      if (i + 1 >= argc) user_error("{}: missing value", flag);
      const std::string v = argv[++i];
      if (flag == "--n") {
        ns.clear();
        for (const auto& p : split(v)) ns.push_back(to_int(flag, p));
      } else if (flag == "--tokens") {
        tokens = to_int(flag, v);
      } else if (flag == "--heads") {
        heads = to_int(flag, v);
      } else if (flag == "--dim") {
        dim = to_int(flag, v);
      } else if (flag == "--iters") {
        iters = to_int(flag, v);
      } else if (flag == "--dtype") {
        dtypes = split(v);
        for (const auto& d : dtypes)
          if (d != "f32" && d != "bf16") user_error("--dtype: expected f32 or bf16, got '{}'", d);
      } else if (flag == "--mask") {
        masks = split(v);
        for (const auto& m : masks)
          if (m != "none" && m != "causal") user_error("--mask: expected none or causal, got '{}'", m);
      } else if (flag == "--csv") {
        csv = v;
      } else {
        user_error("unknown option '{}' (see --help)", flag);
      }
    }
    if (!cuda_available()) {
      std::fprintf(stderr, "error: no CUDA device is visible (%s)\n", cuda_device_name().c_str());
      return 2;
    }
    std::printf("device: %s\n", cuda_device_name().c_str());
    std::printf("flash attention, tokens per row = %d (B = tokens/n), H = %d, D = %d, median of %d\n",
                tokens, heads, dim, iters);
    std::printf("FLOPs: fwd 4·B·H·n²·D (halved when causal), fwd+bwd 3.5 × fwd\n\n");
    std::printf("%7s %4s %5s %7s | %10s %9s | %12s %9s\n", "n", "B", "dtype", "mask", "fwd ms",
                "TFLOP/s", "fwd+bwd ms", "TFLOP/s");
    std::FILE* f = nullptr;
    if (!csv.empty()) {
      f = std::fopen(csv.c_str(), "w");
      if (!f) user_error("--csv: cannot write '{}'", csv);
      std::fprintf(f, "n,B,H,D,dtype,mask,fwd_ms,fwd_tflops,fwd_bwd_ms,fwd_bwd_tflops\n");
    }
    for (const std::string& mask : masks)
      for (const std::string& dt : dtypes)
        for (const int n : ns) {
          CudaAttnShape s;
          s.B = std::max(1, tokens / n);
          s.Hq = s.Hkv = heads;
          s.Tq = s.Tk = n;
          s.D = dim;
          const CudaBenchResult r =
              cuda_bench_attention(s, mask == "causal", dt == "bf16" ? CudaDType::bf16 : CudaDType::f32, iters);
          const double tf = r.fwd_flops / (r.fwd_ms * 1e-3) / 1e12;
          const double tfb = r.fwd_bwd_flops / (r.fwd_bwd_ms * 1e-3) / 1e12;
          std::printf("%7d %4d %5s %7s | %10.3f %9.2f | %12.3f %9.2f\n", n, s.B, dt.c_str(), mask.c_str(),
                      r.fwd_ms, tf, r.fwd_bwd_ms, tfb);
          std::fflush(stdout);
          if (f)
            std::fprintf(f, "%d,%d,%d,%d,%s,%s,%.4f,%.3f,%.4f,%.3f\n", n, s.B, heads, dim, dt.c_str(),
                         mask.c_str(), r.fwd_ms, tf, r.fwd_bwd_ms, tfb);
        }
    if (f) std::fclose(f);
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
}
