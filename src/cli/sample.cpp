#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "data/tasks.h"
#include "model/generate.h"
#include "train/checkpoint.h"
#include "train/eval_data.h"
#include "train/evaluate.h"
#include "train/run_dir.h"

namespace attnlab::cli {

Run add_sample(CLI::App& app) {
  struct Opts {
    std::string checkpoint, prompt, stop;
    std::vector<std::string> inputs, sets;
    int max_new_tokens = -1, top_k = -1, beam = -1;
    double temperature = -1.0, top_p = -1.0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "sample", "Generate from a checkpoint: continue a prompt, or answer --input for a seq2seq task");
  sub->add_option("checkpoint", o->checkpoint,
                  "A .safetensors checkpoint written by `attnlab train`, or a run directory (its best checkpoint, "
                  "else its latest)")
      ->required();
  sub->add_option("--prompt", o->prompt, "Text to continue (decoder; default: sample.prompt, else a newline)");
  sub->add_option("--input", o->inputs,
                  "Seq2seq task input(s) to answer: an encoder_decoder translates it, a decoder continues "
                  "'<input><sep>' up to the end token (repeatable)");
  sub->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate (default: sample.max_new_tokens)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--temperature", o->temperature, "Softmax temperature; 0 = greedy (default: sample.temperature)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens; 0 = all (default: sample.top_k)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->top_p, "Nucleus sampling mass in (0, 1]; 1 = off (default: sample.top_p)");
  sub->add_option("--beam", o->beam, "Beam search width; 1 = off (default: sample.beam_width)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", o->seed, "Random seed for sampling")->default_val(0);
  sub->add_option("--stop", o->stop,
                  "Text generation: stop once the generated text contains STRING; the output ends just before it");
  sub->add_option("--set", o->sets,
                  fmt::format("Seq2seq --input: the task's data settings, e.g. --set data.max_len=16 for longer "
                              "inputs (repeatable); only {}",
                              fmt::join(data_override_keys(), ", ")));
  return [o]() {
    const CheckpointArg ck = resolve_checkpoint_arg(o->checkpoint);
    if (!ck.note.empty()) fmt::print(stderr, "note: {}\n", ck.note);  // stdout holds the samples alone
    o->checkpoint = ck.path;
    LoadedModel lm = load_model(o->checkpoint);
    const SampleConfig& sc = lm.config.sample;
    SampleOptions opt;
    opt.max_new_tokens = o->max_new_tokens >= 0 ? o->max_new_tokens : sc.max_new_tokens;
    opt.temperature = float(o->temperature >= 0 ? o->temperature : sc.temperature);
    opt.top_k = o->top_k >= 0 ? o->top_k : sc.top_k;
    opt.top_p = float(o->top_p >= 0 ? o->top_p : sc.top_p);
    opt.beam_width = o->beam > 0 ? o->beam : sc.beam_width;
    opt.length_penalty = float(sc.length_penalty);
    Rng rng(o->seed);
    const std::string& kind = option_name(lm.config.model.kind);
    if (kind == "encoder") user_error("sample: '{}' is an encoder; it does not generate (try `attnlab eval`)", o->checkpoint);

    std::vector<std::string> inputs = o->inputs;
    if (kind == "encoder_decoder" && inputs.empty()) {
      if (o->prompt.empty() && sc.prompt.empty())
        user_error("sample: an encoder_decoder model needs --input TEXT (the source to translate)");
      inputs.push_back(!o->prompt.empty() ? o->prompt : sc.prompt);
    }
    if (!inputs.empty()) {
      // a seq2seq task: rebuild it from the embedded config for its separator and end tokens
      if (lm.config.data.task == "text") user_error("sample --input: '{}' was trained on text, not a seq2seq task", o->checkpoint);
      if (!o->stop.empty())
        user_error("sample --stop is for text generation; a seq2seq answer (--input) ends at the task's end token");
      // --set: the task with other settings (longer inputs); the model's context grows where its
      // positions allow
      const CheckpointData cd = checkpoint_data(lm, o->checkpoint, o->sets);
      const TaskDataset* task = cd.data->task();
      if (!task || task->format() != TaskFormat::seq2seq)
        user_error("sample --input: task '{}' is not a seq2seq task (it has no output to generate)", lm.config.data.task);
      if (o->max_new_tokens < 0) opt.max_new_tokens = task->batch_T();
      const int block = lm.model->context();
      for (const auto& in : inputs) {
        const std::vector<int> src = lm.tokenizer.encode(in);
        // a decoder reads '<input><sep>' and writes its answer in the same block of positions
        if (kind == "decoder" && int(src.size()) + 1 >= block)
          user_error("input of {} tokens exceeds what {} leaves for it: a decoder reads the input, a separator "
                     "and its answer in one block, so an input has at most {} tokens",
                     src.size(),
                     block == lm.config.model.block_size
                         ? fmt::format("model.block_size {}", block)
                         : fmt::format("the model's context {} (raised for the rows --set data.* asks for)", block),
                     block - 2);
        const std::vector<int> out = answer_seq2seq(*lm.model, *task, src, opt, rng);
        std::string note;  // the task's answer when the input is one the task can produce
        try {
          const std::vector<int> want = task->answer(src);
          note = want == out ? "   (correct)" : fmt::format("   (expected {})", task->show(want));
        } catch (const UserError&) {
        }
        fmt::print("{} -> {}{}\n", in, task->show(out), note);
      }
      return 0;
    }
    if (!o->sets.empty())
      user_error("sample --set data.* sets a seq2seq task's data for --input; text generation reads no data");
    std::string prompt = !o->prompt.empty() ? o->prompt : sc.prompt;
    if (prompt.empty()) prompt = lm.tokenizer.contains('\n') ? "\n" : lm.tokenizer.decode({0});
    if (!o->stop.empty()) opt.stop_when = stop_at_text(lm.tokenizer, o->stop);
    const std::vector<int> out = generate(*lm.model, lm.tokenizer.encode(prompt), opt, rng);
    std::fputs((prompt + cut_at_stop(lm.tokenizer.decode(out), o->stop) + "\n").c_str(), stdout);
    return 0;
  };
}

}  // namespace attnlab::cli
