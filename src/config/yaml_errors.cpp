#include "config/yaml_errors.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

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

}  // namespace attnlab
