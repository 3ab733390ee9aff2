#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text.h"
#include "train/text_metrics.h"

namespace attnlab::cli {

Run add_score(CLI::App& app) {
  struct Opts {
    std::string hyp, ref;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("score", "Corpus BLEU and chrF of a file of hypotheses against a file of references "
                                          "(one sentence per line; sacreBLEU's default rules)");
  sub->add_option("--hyp", o->hyp, "The hypotheses, one per line")->required();
  sub->add_option("--ref", o->ref, "The references, one per line, as many lines as --hyp")->required();
  sub->add_flag("--json", o->json, "Print one JSON object instead of two lines");
  return [o]() {
    const auto hyps = read_lines(o->hyp, "--hyp"), refs = read_lines(o->ref, "--ref");
    if (hyps.size() != refs.size())
      user_error("--hyp '{}' has {} lines but --ref '{}' has {}: give one reference line per hypothesis line", o->hyp,
                 hyps.size(), o->ref, refs.size());
    const double bleu = corpus_bleu(hyps, refs), chrf = corpus_chrf(hyps, refs);
    if (o->json) {
      std::puts(nlohmann::json({{"bleu", bleu}, {"chrf", chrf}, {"lines", hyps.size()}}).dump(2).c_str());
      return 0;
    }
    fmt::print("BLEU {:.2f}\nchrF {:.2f}\n", bleu, chrf);
    return 0;
  };
}

}  // namespace attnlab::cli
