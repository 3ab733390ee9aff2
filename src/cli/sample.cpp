#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "model/generate.h"
#include "train/checkpoint.h"

namespace attnlab::cli {

Run add_sample(CLI::App& app) {
  struct Opts {
    std::string checkpoint, prompt;
    int max_new_tokens = -1, top_k = -1;
    double temperature = -1.0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("sample", "Generate text from a checkpoint");
  sub->add_option("checkpoint", o->checkpoint, "A .safetensors checkpoint written by `attnlab train`")->required();
  sub->add_option("--prompt", o->prompt, "Text to continue (default: the config's sample.prompt, else a newline)");
  sub->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate (default: sample.max_new_tokens)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--temperature", o->temperature, "Softmax temperature; 0 = greedy (default: sample.temperature)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens; 0 = all (default: sample.top_k)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->seed, "Random seed for sampling")->default_val(0);
  return [o]() {
    LoadedModel lm = load_model(o->checkpoint);
    const SampleConfig& sc = lm.config.sample;
    std::string prompt = !o->prompt.empty() ? o->prompt : sc.prompt;
    if (prompt.empty()) prompt = lm.tokenizer.contains('\n') ? "\n" : std::string(1, lm.tokenizer.vocab()[0]);
    SampleOptions opt;
    opt.max_new_tokens = o->max_new_tokens >= 0 ? o->max_new_tokens : sc.max_new_tokens;
    opt.temperature = float(o->temperature >= 0 ? o->temperature : sc.temperature);
    opt.top_k = o->top_k >= 0 ? o->top_k : sc.top_k;
    Rng rng(o->seed);
    const std::vector<int> out = generate(*lm.model, lm.tokenizer.encode(prompt), opt, rng);
    std::fputs((prompt + lm.tokenizer.decode(out) + "\n").c_str(), stdout);
    return 0;
  };
}

}  // namespace attnlab::cli
