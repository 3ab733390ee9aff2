#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/tasks.h"
#include "train/text_metrics.h"

namespace attnlab {

std::vector<int> answer_seq2seq(Model& model, const TaskDataset& task, const std::vector<int>& input,
                                SampleOptions opt, Rng& rng) {
  opt.stop_token = task.end_id();
  // a split vocabulary (data.shared_vocab false): the answer is target-side, never a source-only id
  if (task.tokenizer().is_split()) opt.min_token = task.tokenizer().target_offset();
  std::vector<int> out;
  if (model.config().kind == ModelConfig::Kind::encoder_decoder) {
    out = translate(model, input, task.sep_id(), opt, rng);
  } else {
    std::vector<int> prompt = input;
    prompt.push_back(task.sep_id());
    out = generate(model, prompt, opt, rng);
  }
  if (!out.empty() && out.back() == task.end_id()) out.pop_back();
  return out;
}

std::vector<int> decode_output(Model& model, const TaskDataset& task, const std::vector<int>& input, int beam_width,
                               float length_penalty) {
  SampleOptions opt;
  opt.temperature = 0.0f;
  opt.beam_width = beam_width;
  opt.length_penalty = length_penalty;
  // a decoder's prompt is the input and the separator; the row holds batch_T() + 1 tokens
  opt.max_new_tokens = model.config().kind == ModelConfig::Kind::encoder_decoder
                           ? task.batch_T()
                           : std::max(1, task.batch_T() + 1 - int(input.size() + 1));
  Rng rng(0);  // unused by greedy decoding and beam search
  return answer_seq2seq(model, task, input, opt, rng);
}

EvalReport evaluate(Model& model, const Dataset& data, const Config& cfg, const EvalOptions& opt) {
  const TaskDataset* task = data.task();
  if (opt.split == Split::test && !data.has_split(Split::test))
    user_error("text data has a train and a val split only (data.val_fraction); there is no test split");
  EvalReport rep;
  rep.task = cfg.data.task;
  // loss and teacher-forced accuracy over fixed batches
  Rng rng(uint64_t(cfg.train.seed) ^ (opt.split == Split::test ? 0x7e57ull : 0x5eedull));
  Batch batch;
  double loss_sum = 0.0;
  long counted = 0, correct = 0;
  const bool decoding = task && task->format() == TaskFormat::seq2seq && opt.decode;
  const long n_decode = !decoding ? 0
                        : opt.max_examples < 0 ? long(task->eval_set(opt.split).size())
                                                : std::min<long>(opt.max_examples, long(task->eval_set(opt.split).size()));
  const long work = cfg.train.eval_batches + n_decode;
  long worked = 0;
  auto tick = [&] {
    if (opt.progress) opt.progress(++worked, work);
  };
  double nats = 0.0, text_bytes = 0.0;  // text: loss_per_char = nats / bytes of the predicted tokens
  for (int i = 0; i < cfg.train.eval_batches; i++) {
    data.next_batch(batch, cfg.train.batch_size, cfg.model.block_size, opt.split, rng);
    const double batch_loss = model.forward(batch, false, nullptr);
    loss_sum += batch_loss;
    counted += model.loss_count();
    correct += model.correct_count();
    if (!task) {
      nats += batch_loss * double(model.loss_count());
      for (int t : batch.y)
        if (t >= 0) text_bytes += double(data.tokenizer().tokens()[size_t(t)].size());
    }
    tick();
  }
  const double loss = loss_sum / cfg.train.eval_batches;
  const double acc = counted > 0 ? double(correct) / double(counted) : 0.0;
  // the task declares its metrics (names and order); text data has loss, ppl and token_acc
  rep.names = data.metrics();
  rep.values["loss"] = loss;
  rep.values["ppl"] = std::exp(std::min(loss, 80.0));
  if (text_bytes > 0) rep.values["loss_per_char"] = nats / text_bytes;
  // the teacher-forced accuracy over the counted targets, under the name the task uses for it
  for (const char* name : {"token_acc", "label_acc", "class_acc"}) rep.values[name] = acc;
  auto keep_declared = [&] {
    std::map<std::string, double> declared;
    for (const auto& n : rep.names)
      if (rep.values.count(n)) declared[n] = rep.values[n];
    rep.values = std::move(declared);
    std::erase_if(rep.names, [&](const std::string& n) { return !rep.values.count(n); });
  };
  if (!decoding) {
    keep_declared();
    return rep;
  }

  // decoding: exact match and position-wise accuracy of the decoded answers
  const auto& examples = task->eval_set(opt.split);
  const int n = opt.max_examples < 0 ? int(examples.size()) : std::min<int>(opt.max_examples, int(examples.size()));
  long exact = 0, pos_total = 0, pos_ok = 0;
  std::vector<std::string> hyps, refs;  // the decoded outputs and their references, for BLEU and chrF
  for (int i = 0; i < n; i++) {
    const TaskExample& ex = examples[size_t(i)];
    const std::vector<int> got = decode_output(model, *task, ex.input, opt.beam_width, opt.length_penalty);
    const bool ok = got == ex.output;
    exact += ok;
    // the answer and its end token, position by position (a missing end token counts as wrong)
    for (size_t t = 0; t <= ex.output.size(); t++) {
      const int want = t < ex.output.size() ? ex.output[t] : task->end_id();
      const int have = t < got.size() ? got[t] : (t == got.size() ? task->end_id() : -1);
      pos_ok += want == have;
      pos_total++;
    }
    rep.examples.push_back({task->show(ex.input), task->show(ex.output), task->show(got), ok});
    hyps.push_back(rep.examples.back().predicted);
    refs.push_back(task->reference(ex));
    tick();
  }
  rep.values["exact_match"] = n > 0 ? double(exact) / n : 0.0;
  rep.values["bleu"] = corpus_bleu(hyps, refs);  // 0..100, sacreBLEU's scale
  rep.values["chrf"] = corpus_chrf(hyps, refs);
  // the position-wise accuracy is named after the decoding that made the outputs: greedy (the name
  // training logs in metrics.jsonl) or beam search (`eval --beam N`, sample.beam_width)
  const double token_acc = pos_total > 0 ? double(pos_ok) / double(pos_total) : 0.0;
  if (opt.beam_width > 1) {
    std::replace(rep.names.begin(), rep.names.end(), std::string("greedy_token_acc"), std::string("beam_token_acc"));
    rep.values["beam_token_acc"] = token_acc;
  } else {
    rep.values["greedy_token_acc"] = token_acc;
  }
  keep_declared();
  return rep;
}

}  // namespace attnlab
