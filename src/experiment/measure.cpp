// Attention measurements of the paper experiments, read from a trained model's attention maps
// (definitions in docs/experiments.md):
//
//   mirror_weight (E3, Bahdanau et al. 2014 Fig. 3: reversal aligns output t with source L-1-t)
//       m_l = mean_{b, t < L_b} (1/H) Σ_h A_l[b,h,t,L_b-1-t]        A_l: decoder cross-attention, layer l
//   answer_mass / noise_mass (E7, Ye et al. 2024 §3.2: attention to answer vs noise)
//       a_l = mean_q (1/H) Σ_h A_l[b,h,q,ans(q)]       n_l = mean_q (1/H) Σ_h Σ_{j filler} A_l[b,h,q,j]
//       over the labelled (query) positions q; reported at the layer with the largest a_l.
// The maps come from one teacher-forced forward over the first measure_examples val examples.
//   cache_values / decode_ms_per_token (E8, Shazeer 2019 Table 2: fewer KV heads, faster decoding)
//       cached greedy decoding after a long context (decode.h); cache_values is
//       read from the caches' buffers afterwards, not from the config.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include <omp.h>

#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "experiment/decode.h"
#include "experiment/internal.h"
#include "model/model.h"
#include "train/checkpoint.h"

namespace attnlab {

const std::map<std::string, std::string>& measurement_outputs() {
  static const std::map<std::string, std::string> m = {{"mirror_weight", "mirror_weight"},
                                                       {"mirror_layer", "mirror_weight"},
                                                       {"answer_mass", "recall_mass"},
                                                       {"noise_mass", "recall_mass"},
                                                       {"answer_share", "recall_mass"},
                                                       {"noise_share", "recall_mass"},
                                                       {"retrieval_layer", "recall_mass"},
                                                       {"cache_values", "decode"},
                                                       {"decode_ms_per_token", "decode"}};
  return m;
}

std::string measurement_names() {
  std::string s;
  for (const auto& [k, v] : measurement_outputs()) s += (s.empty() ? "" : ", ") + k;
  return s + ", bleu_by_length, chrf_by_length";
}

std::string measurement_of(const std::string& output) {
  if (is_bleu_by_length_column(output)) return "bleu_by_length";
  const auto it = measurement_outputs().find(output);
  return it == measurement_outputs().end() ? "" : it->second;
}

bool Experiment::needs(const std::string& measurement) const {
  for (const auto& m : measure)
    if (measurement_of(m) == measurement) return true;
  return false;
}

double mirror_weight_of(const float* w, int B, int H, int Tq, int Tk, const std::vector<int>& src_len) {
  ATTNLAB_CHECK(int(src_len.size()) == B);
  double sum = 0.0;
  long n = 0;
  for (int b = 0; b < B; b++) {
    const int L = std::min(src_len[size_t(b)], Tk);
    for (int t = 0; t < std::min(L, Tq); t++) {
      double s = 0.0;
      for (int h = 0; h < H; h++) s += w[((size_t(b) * H + h) * Tq + t) * Tk + size_t(L - 1 - t)];
      sum += s / H;
      n++;
    }
  }
  return n ? sum / double(n) : std::nan("");
}

RecallMass recall_mass_of(const float* w, int B, int H, int T, const std::vector<std::vector<int>>& inputs,
                          const std::vector<std::vector<int>>& labels,
                          const std::function<bool(int b, int j)>& is_filler) {
  ATTNLAB_CHECK(int(inputs.size()) == B && int(labels.size()) == B);
  RecallMass r;
  for (int b = 0; b < B; b++) {
    const auto& in = inputs[size_t(b)];
    const auto& lab = labels[size_t(b)];
    const int n = std::min<int>(T, int(in.size()));
    for (int q = 0; q < n && q < int(lab.size()); q++) {
      if (lab[size_t(q)] < 0) continue;
      int ans = -1;  // the latest value token of the queried pair: in[j-1] = key, in[j] = label
      for (int j = q - 1; j >= 1 && ans < 0; j--)
        if (in[size_t(j)] == lab[size_t(q)] && in[size_t(j - 1)] == in[size_t(q)]) ans = j;
      if (ans < 0) continue;
      double a = 0.0, noise = 0.0, a_share = 0.0, noise_share = 0.0;
      for (int h = 0; h < H; h++) {
        const float* row = w + ((size_t(b) * H + h) * T + q) * T;
        double row_noise = 0.0, l1 = 0.0;
        for (int j = 0; j < n; j++) {
          l1 += std::fabs(double(row[j]));
          if (is_filler(b, j)) row_noise += row[j];
        }
        a += row[ans];
        noise += row_noise;
        if (l1 > 0.0) {
          a_share += row[ans] / l1;
          noise_share += row_noise / l1;
        }
      }
      r.answer += a / H;
      r.noise += noise / H;
      r.answer_share += a_share / H;
      r.noise_share += noise_share / H;
      r.queries++;
    }
  }
  if (r.queries > 0) {
    r.answer /= r.queries;
    r.noise /= r.queries;
    r.answer_share /= r.queries;
    r.noise_share /= r.queries;
  }
  return r;
}

namespace {

// The attention modules of one slot ("decoder_cross", "decoder_self", "encoder_self"), by layer.
std::vector<Attention*> slot_layers(Model& m, const std::string& slot) {
  std::vector<std::pair<int, Attention*>> found;
  for (auto& [label, a] : m.named_attention()) {
    const auto us = label.rfind("_L");
    if (us == std::string::npos || label.substr(0, us) != slot) continue;
    found.push_back({std::atoi(label.c_str() + us + 2), a});
  }
  std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<Attention*> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

int argmax(const std::vector<double>& v) {
  int best = -1;
  for (size_t i = 0; i < v.size(); i++)
    if (std::isfinite(v[i]) && (best < 0 || v[i] > v[size_t(best)])) best = int(i);
  return best;
}

// cache_values, decode_ms_per_token: the cell's model decodes after exp.decode_context tokens.
void measure_decode(const Experiment& exp, const std::string& checkpoint, Measurements& out) {
  const int context = exp.decode_context, need = context + exp.decode_tokens;
  LoadedModel lm = load_model_for_positions(checkpoint, need);
  const Config& cfg = lm.config;
  Model* model = lm.model.get();
  // the prompt: a val window of the text, else random ids (the timing does not depend on them)
  std::vector<int> prompt;
  if (cfg.data.task == "text") {
    const auto data = make_dataset(cfg);
    Batch b;
    Rng rng(uint64_t(cfg.train.seed));
    data->next_batch(b, 1, context, Split::val, rng);
    prompt.assign(b.x.begin(), b.x.begin() + context);
  } else {
    Rng rng(uint64_t(cfg.train.seed));
    for (int i = 0; i < context; i++) prompt.push_back(int(rng.below(uint64_t(model->vocab_size()))));
  }
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  DecodeAtContextOptions o;
  o.tokens = exp.decode_tokens;
  o.repeats = exp.decode_repeats;
  const DecodeAtContext r = decode_at_context(*model, prompt, o);
  out.values["decode_ms_per_token"] = r.median_ms_per_token;
  out.values["cache_values"] = *std::max_element(r.cache_values.begin(), r.cache_values.end());
  out.layers["cache_values"] = r.cache_values;
  std::string ms;
  for (double x : r.ms_per_token) ms += fmt::format(" {:.4f}", x);
  std::string text = lm.tokenizer.decode(r.generated);
  out.notes.push_back(fmt::format("decode: {} tokens after a context of {} ({} positions cached), {} thread(s); "
                                  "ms/token per repeat:{}; greedy continuation: {}",
                                  exp.decode_tokens, context, r.positions, omp_get_max_threads(), ms,
                                  nlohmann::json(text).dump()));
}

// mirror_weight: the decoder's cross-attention over the source, teacher-forced (tasks.h layout:
// src = input, x = sep output, y = output end).
void measure_mirror(Model& model, const TaskDataset& task, int B, Measurements& out) {
  const auto& val = task.eval_set(Split::val);
  out.values["mirror_weight"] = std::nullopt;
  out.values["mirror_layer"] = std::nullopt;
  const auto layers = slot_layers(model, "decoder_cross");
  if (layers.empty()) {
    out.notes.push_back("mirror_weight: the model has no cross-attention (model.bottleneck)");
    return;
  }
  Batch batch;
  batch.B = B;
  for (int b = 0; b < B; b++) {
    batch.S = std::max(batch.S, int(val[size_t(b)].input.size()));
    batch.T = std::max(batch.T, int(val[size_t(b)].output.size()) + 1);
  }
  batch.src.assign(size_t(B) * batch.S, task.pad_id());
  batch.x.assign(size_t(B) * batch.T, task.pad_id());
  batch.y.assign(size_t(B) * batch.T, -1);
  batch.src_len.assign(size_t(B), 0);
  batch.x_len.assign(size_t(B), 0);
  for (int b = 0; b < B; b++) {
    const TaskExample& ex = val[size_t(b)];
    const int L = int(ex.input.size()), n_out = int(ex.output.size());
    std::copy(ex.input.begin(), ex.input.end(), batch.src.begin() + size_t(b) * batch.S);
    batch.src_len[size_t(b)] = L;
    int* x = batch.x.data() + size_t(b) * batch.T;
    int* y = batch.y.data() + size_t(b) * batch.T;
    x[0] = task.sep_id();
    for (int i = 0; i < n_out; i++) x[1 + i] = y[i] = ex.output[size_t(i)];
    y[n_out] = task.end_id();
    batch.x_len[size_t(b)] = n_out + 1;
  }
  for (auto* a : layers) a->keep_weights(true);
  model.forward(batch, false, nullptr);
  std::vector<double> per_layer;
  for (auto* a : layers) {
    const std::vector<float> w = a->attention_weights();
    const int H = a->spec().n_heads;
    if (w.size() != size_t(B) * H * batch.T * batch.S) {
      out.notes.push_back(fmt::format("mirror_weight: cross-attention type '{}' kept no weights", a->spec().type));
      per_layer.push_back(std::nan(""));
      continue;
    }
    per_layer.push_back(mirror_weight_of(w.data(), B, H, batch.T, batch.S, batch.src_len));
  }
  for (auto* a : layers) a->keep_weights(false);
  out.layers["mirror_weight"] = per_layer;
  const int best = argmax(per_layer);
  if (best >= 0) {
    out.values["mirror_weight"] = per_layer[size_t(best)];
    out.values["mirror_layer"] = best;
  }
}

// answer_mass, noise_mass and their shares: self-attention at the labelled (query) positions.
void measure_recall(Model& model, const TaskDataset& task, ModelConfig::Kind model_kind, int B, Measurements& out) {
  const auto& val = task.eval_set(Split::val);
  for (const char* k : {"answer_mass", "noise_mass", "answer_share", "noise_share", "retrieval_layer"})
    out.values[k] = std::nullopt;
  const std::string slot = model_kind == ModelConfig::Kind::encoder ? "encoder_self" : "decoder_self";
  const auto layers = slot_layers(model, slot);
  const int n_sym = task.options().n_symbols;
  const bool mqar = task.name() == "mqar";
  // the noise (task_recall.cpp): mqar, every position after the pairs that is not a query (filler
  // 0, or random ids with data.filler random); needle, the filler tokens f0..f{n/2-1} (ids below n/2)
  std::vector<std::vector<int>> inputs, labels;
  const int n_pairs = task.options().n_pairs;
  const std::function<bool(int, int)> is_filler = [&](int b, int j) {
    return mqar ? j >= 2 * n_pairs && labels[size_t(b)][size_t(j)] < 0 : inputs[size_t(b)][size_t(j)] < n_sym / 2;
  };
  Batch batch;
  batch.B = B;
  for (int b = 0; b < B; b++) batch.T = std::max(batch.T, int(val[size_t(b)].input.size()));
  batch.x.assign(size_t(B) * batch.T, task.pad_id());
  batch.y.assign(size_t(B) * batch.T, -1);
  batch.x_len.assign(size_t(B), 0);
  for (int b = 0; b < B; b++) {
    const TaskExample& ex = val[size_t(b)];
    std::copy(ex.input.begin(), ex.input.end(), batch.x.begin() + size_t(b) * batch.T);
    std::copy(ex.labels.begin(), ex.labels.end(), batch.y.begin() + size_t(b) * batch.T);
    batch.x_len[size_t(b)] = int(ex.input.size());
    inputs.push_back(ex.input);
    labels.push_back(ex.labels);
  }
  for (auto* a : layers) a->keep_weights(true);
  model.forward(batch, false, nullptr);
  std::vector<double> ans, noise, ans_share, noise_share;
  for (auto* a : layers) {
    const std::vector<float> w = a->attention_weights();
    const int H = a->spec().n_heads;
    if (w.size() != size_t(B) * H * batch.T * batch.T) {
      out.notes.push_back(fmt::format("answer_mass: attention type '{}' kept no weights", a->spec().type));
      for (auto* v : {&ans, &noise, &ans_share, &noise_share}) v->push_back(std::nan(""));
      continue;
    }
    const RecallMass r = recall_mass_of(w.data(), B, H, batch.T, inputs, labels, is_filler);
    ans.push_back(r.queries ? r.answer : std::nan(""));
    noise.push_back(r.queries ? r.noise : std::nan(""));
    ans_share.push_back(r.queries ? r.answer_share : std::nan(""));
    noise_share.push_back(r.queries ? r.noise_share : std::nan(""));
  }
  for (auto* a : layers) a->keep_weights(false);
  out.layers["answer_mass"] = ans;
  out.layers["noise_mass"] = noise;
  out.layers["answer_share"] = ans_share;
  out.layers["noise_share"] = noise_share;
  const int best = argmax(ans_share);  // scale-free: the same layer as answer_mass for softmax
  if (best >= 0) {
    out.values["answer_mass"] = ans[size_t(best)];
    out.values["noise_mass"] = noise[size_t(best)];
    out.values["answer_share"] = ans_share[size_t(best)];
    out.values["noise_share"] = noise_share[size_t(best)];
    out.values["retrieval_layer"] = best;
  }
}

}  // namespace

Measurements measure_checkpoint(const Experiment& exp, const std::string& checkpoint) {
  Measurements out;
  if (exp.needs("decode")) measure_decode(exp, checkpoint, out);
  if (exp.needs("bleu_by_length")) measure_bleu_by_length(exp, checkpoint, out);
  if (!exp.needs("mirror_weight") && !exp.needs("recall_mass")) return out;
  LoadedModel lm = load_model(checkpoint);
  const Config& cfg = lm.config;
  const auto data = make_dataset(cfg);
  const TaskDataset* task = data->task();
  if (!task) user_error("measurements need a synthetic task; '{}' trains on data.task '{}'", checkpoint, cfg.data.task);
  const int B = std::min<int>(exp.measure_examples, int(task->eval_set(Split::val).size()));
  if (exp.needs("mirror_weight")) measure_mirror(*lm.model, *task, B, out);
  if (exp.needs("recall_mass")) measure_recall(*lm.model, *task, cfg.model.kind, B, out);
  return out;
}

}  // namespace attnlab
