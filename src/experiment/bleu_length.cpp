// bleu_by_length (docs/experiments.md, "Running experiments"; Bahdanau et al. 2014 Fig. 2: BLEU
// against sentence length): the final checkpoint decodes the examples of one split with
// evaluate(), the code `attnlab eval` runs (greedy, or beam search when sample.beam_width > 1),
// on the checkpoint's data or on other data settings (`set:`, as `attnlab eval --set`). The
// decoded outputs are grouped by source length in tokens into the buckets (0, e1], (e1, e2], ...,
// and each bucket is scored as a corpus of its own: corpus BLEU and chrF (train/text_metrics.h).
//
//   bleu_len_<lo>-<hi>, chrf_len_<lo>-<hi>   0..100, null for a bucket without examples
//   counts: examples per bucket, and "beyond" (sources longer than the last edge, not scored)
#include <omp.h>

#include "core/error.h"
#include "data/tasks.h"
#include "experiment/internal.h"
#include "train/checkpoint.h"
#include "train/eval_data.h"
#include "train/evaluate.h"
#include "train/text_metrics.h"

namespace attnlab {

std::vector<std::string> BleuByLength::labels() const {
  std::vector<std::string> out;
  int lo = 1;
  for (int e : edges) {
    out.push_back(fmt::format("{}-{}", lo, e));
    lo = e + 1;
  }
  return out;
}

std::vector<std::string> bleu_by_length_columns(const BleuByLength& b, const std::string& metric) {
  std::vector<std::string> out;
  for (const auto& l : b.labels()) out.push_back(metric + "_len_" + l);
  return out;
}

bool is_bleu_by_length_column(const std::string& name) {
  return name.rfind("bleu_len_", 0) == 0 || name.rfind("chrf_len_", 0) == 0;
}

int length_bucket(const std::vector<int>& edges, int length) {
  for (size_t i = 0; i < edges.size(); i++)
    if (length <= edges[i]) return int(i);
  return -1;
}

void measure_bleu_by_length(const Experiment& exp, const std::string& checkpoint, Measurements& out) {
  const BleuByLength& spec = *exp.bleu_by_length;
  LoadedModel lm = load_model(checkpoint);
  if (lm.config.train.threads > 0) omp_set_num_threads(lm.config.train.threads);
  const CheckpointData cd = checkpoint_data(lm, checkpoint, spec.sets);
  const TaskDataset* task = cd.data->task();
  if (!task || task->format() != TaskFormat::seq2seq)
    user_error("measurement bleu_by_length needs a seq2seq task; '{}' trains on data.task '{}'", checkpoint,
               cd.config.data.task);
  EvalOptions opt;
  opt.split = spec.split == "test" ? Split::test : Split::val;
  opt.beam_width = lm.config.sample.beam_width;
  opt.length_penalty = float(lm.config.sample.length_penalty);
  const EvalReport rep = evaluate(*lm.model, *cd.data, cd.config, opt);
  const auto& examples = task->eval_set(opt.split);
  const auto labels = spec.labels();
  std::vector<std::vector<std::string>> hyps(labels.size()), refs(labels.size());
  long beyond = 0;
  for (size_t i = 0; i < rep.examples.size(); i++) {
    const int b = length_bucket(spec.edges, int(examples[i].input.size()));
    if (b < 0) {
      beyond++;
      continue;
    }
    hyps[size_t(b)].push_back(rep.examples[i].predicted);
    refs[size_t(b)].push_back(task->reference(examples[i]));
  }
  for (size_t b = 0; b < labels.size(); b++) {
    const bool any = !hyps[b].empty();
    out.values["bleu_len_" + labels[b]] = any ? std::optional<double>(corpus_bleu(hyps[b], refs[b])) : std::nullopt;
    out.values["chrf_len_" + labels[b]] = any ? std::optional<double>(corpus_chrf(hyps[b], refs[b])) : std::nullopt;
    out.counts[labels[b]] = long(hyps[b].size());
  }
  out.counts["beyond"] = beyond;
  std::string sets;
  for (const auto& o : cd.overrides) sets += fmt::format(" {}={} (trained with {})", o.key, o.value, o.trained);
  out.notes.push_back(fmt::format("bleu_by_length: {} {} examples, {}{}{}", rep.examples.size(), spec.split,
                                  opt.beam_width > 1 ? fmt::format("beam search, width {}", opt.beam_width)
                                                     : std::string("greedy"),
                                  sets.empty() ? "" : "; data overrides:", sets));
}

}  // namespace attnlab
