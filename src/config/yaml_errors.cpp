#include "config/yaml_errors.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "core/error.h"

namespace attnlab {

std::string where_of(const std::string& origin, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return origin;
  return fmt::format("{}:{}:{}", origin, m.line + 1, m.column + 1);
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

void reject_experiment_file(const YAML::Node& root, const std::string& origin) {
  for (auto it = root.begin(); it != root.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == "experiment")
      user_error("{}: unknown key 'experiment': this is an experiment file: run `attnlab experiment run {}`",
                 where_of(origin, it->first), origin);
}

}  // namespace attnlab
