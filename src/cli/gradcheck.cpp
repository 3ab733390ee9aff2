#include <fmt/format.h>

#include "attention/gradcheck.h"
#include "cli/commands.h"
#include "core/error.h"

namespace attnlab::cli {

Run add_gradcheck(CLI::App& app) {
  struct Opts {
    std::string type;
    bool all = false;
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("gradcheck",
                                 "Check an attention variant's backward against finite differences "
                                 "(every mask × head layout × self/cross it supports)");
  std::string names;  // the registry's, as model.attention.type takes them
  for (const auto& n : attention_types()) names += (names.empty() ? "" : ", ") + n;
  auto* t = sub->add_option("--attention", o->type, "Attention type: one of " + names)->option_text("TYPE");
  sub->add_flag("--all", o->all, "Every registered type")->excludes(t);
  sub->add_option("--seed", o->seed, "Seed for the inputs and weights")->capture_default_str();
  return [o]() {
    std::vector<std::string> types;
    if (o->all) {
      for (const auto& n : attention_types())
        if (attention_registry().at(n).info.force_causal < 0) types.push_back(n);  // shorthands are aliases
    } else if (!o->type.empty()) {
      if (!attention_registry().count(o->type)) {
        std::string known;
        for (const auto& n : attention_types()) known += (known.empty() ? "" : ", ") + n;
        user_error("--attention: unknown type '{}' (known: {})", o->type, known);
      }
      types.push_back(o->type);
    } else {
      user_error("give --attention NAME or --all");
    }
    fmt::print("max relative error |analytic − numeric| / max(|a|, |n|, 5% of max |grad|); a tensor passes "
               "when its error beyond the finite difference's rounding noise is < {:g}\n",
               kGradcheckTolerance);
    int failed = 0, total = 0;
    for (const auto& type : types) {
      for (const auto& c : gradcheck_cases(type)) {
        std::string line = fmt::format("{:<20} {:<18}", type, c.label);
        bool ok = true;
        for (const auto& r : gradcheck_attention(c, o->seed)) {
          line += r.zero ? fmt::format(" {}=0", r.name) : fmt::format(" {} {:.1e}", r.name, r.max_rel);
          ok &= r.ok;
        }
        fmt::print("{} {}\n", ok ? "ok  " : "FAIL", line);
        failed += !ok;
        total++;
      }
    }
    fmt::print("{} of {} cases pass\n", total - failed, total);
    return failed ? 1 : 0;
  };
}

}  // namespace attnlab::cli
