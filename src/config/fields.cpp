// The config schema's field makers (see fields.h).
#include "config/fields.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace attnlab::config_fields {

void fail(const Where& w, const std::string& key, const std::string& what) {
  user_error("{}: key '{}': {}", w.text, key, what);
}

std::string fmt_double(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

Field int_field(std::string key, IntRef ref, long long lo, long long hi, std::string doc) {
  Field f;
  f.key = key;
  f.type = hi == INT32_MAX ? fmt::format("int ≥ {}", lo) : fmt::format("int in [{}, {}]", lo, hi);
  f.doc = std::move(doc);
  f.set = [key, ref, lo, hi](Config& c, const YAML::Node& n, const Where& w) {
    long long v;
    std::string s = scalar_text(n);
    try {
      if (!n.IsScalar()) throw YAML::Exception(YAML::Mark(), "");
      size_t pos = 0;
      v = std::stoll(s, &pos);
      if (pos != s.size()) throw std::invalid_argument("trailing");
    } catch (...) {
      fail(w, key, fmt::format("expected an integer, got {}", n.IsScalar() ? "'" + s + "'" : s));
    }
    if (v < lo || v > hi)
      fail(w, key, hi == INT32_MAX ? fmt::format("expected an integer ≥ {}, got {}", lo, v)
                                   : fmt::format("expected an integer in [{}, {}], got {}", lo, hi, v));
    ref(c) = int(v);
  };
  f.get = [ref](const Config& c) { return std::to_string(ref(const_cast<Config&>(c))); };
  return f;
}

Field seed_field(std::string key, std::function<int64_t&(Config&)> ref, std::string doc) {
  Field f;
  f.key = key;
  f.type = "int ≥ 0";
  f.doc = std::move(doc);
  f.set = [key, ref](Config& c, const YAML::Node& n, const Where& w) {
    std::string s = scalar_text(n);
    long long v = -1;
    try {
      size_t pos = 0;
      v = std::stoll(s, &pos);
      if (pos != s.size() || !n.IsScalar()) v = -1;
    } catch (...) {
    }
    if (v < 0) fail(w, key, fmt::format("expected a non-negative integer, got '{}'", s));
    ref(c) = v;
  };
  f.get = [ref](const Config& c) { return std::to_string(ref(const_cast<Config&>(c))); };
  return f;
}

Field dbl_field(std::string key, DblRef ref, double lo, double hi, bool lo_open, std::string doc) {
  Field f;
  f.key = key;
  f.type = std::isinf(hi) ? fmt::format("float {} {}", lo_open ? ">" : "≥", lo)
                          : fmt::format("float in {}{}, {}]", lo_open ? "(" : "[", lo, hi);
  f.doc = std::move(doc);
  const std::string range = f.type.substr(6);
  f.set = [key, ref, lo, hi, lo_open, range](Config& c, const YAML::Node& n, const Where& w) {
    std::string s = scalar_text(n);
    double v;
    try {
      if (!n.IsScalar()) throw std::invalid_argument("");
      size_t pos = 0;
      v = std::stod(s, &pos);
      if (pos != s.size()) throw std::invalid_argument("");
    } catch (...) {
      fail(w, key, fmt::format("expected a number, got {}", n.IsScalar() ? "'" + s + "'" : s));
    }
    if (!std::isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
      fail(w, key, fmt::format("expected a number {}, got {}", range, s));
    ref(c) = v;
  };
  f.get = [ref](const Config& c) { return fmt_double(ref(const_cast<Config&>(c))); };
  return f;
}

Field omitted(Field f) { return f.omit_default = true, f; }

Field bool_field(std::string key, BoolRef ref, std::string doc) {
  Field f;
  f.key = key;
  f.type = "bool";
  f.doc = std::move(doc);
  f.set = [key, ref](Config& c, const YAML::Node& n, const Where& w) {
    const std::string s = scalar_text(n);
    if (s == "true" || s == "True" || s == "yes" || s == "on") ref(c) = true;
    else if (s == "false" || s == "False" || s == "no" || s == "off") ref(c) = false;
    else fail(w, key, fmt::format("expected true or false, got '{}'", s));
  };
  f.get = [ref](const Config& c) { return ref(const_cast<Config&>(c)) ? "true" : "false"; };
  return f;
}

Field str_field(std::string key, StrRef ref, std::vector<std::string> choices, std::string doc) {
  Field f;
  f.key = key;
  std::string list;
  for (const auto& ch : choices) list += (list.empty() ? "" : " | ") + ch;
  f.type = choices.empty() ? "string" : list;
  f.doc = std::move(doc);
  f.quoted = true;
  f.set = [key, ref, choices, list](Config& c, const YAML::Node& n, const Where& w) {
    if (!n.IsScalar() && !n.IsNull()) fail(w, key, fmt::format("expected a string, got {}", scalar_text(n)));
    const std::string s = n.IsNull() ? "" : n.Scalar();
    if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end())
      fail(w, key, fmt::format("expected one of {}, got '{}'", list, s));
    ref(c) = s;
  };
  f.get = [ref](const Config& c) { return ref(const_cast<Config&>(c)); };
  return f;
}

}  // namespace attnlab::config_fields
