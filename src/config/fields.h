// The config schema's building blocks (config.cpp's table is made of them): a Field reads one
// YAML scalar into the config and prints it back; the *_field functions make the Field of one
// typed key with its range or choices. Internal to src/config/.
#pragma once
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "config/config.h"
#include "config/yaml_errors.h"

namespace attnlab::config_fields {

// Where a value came from, for error messages: "file:line:col" or "--set a.b=v".
struct Where {
  std::string text;
};

[[noreturn]] void fail(const Where& w, const std::string& key, const std::string& what);

// One schema entry: how to read a YAML scalar into the config and print it back.
struct Field {
  std::string key, type, doc;
  bool quoted = false;  // printed as a quoted YAML string
  // Left out of dump_config while the key has its default value: for keys added after configs
  // were first embedded in checkpoints, so that a run that does not use the key writes the same
  // bytes (config.yaml, checkpoints) as before the key existed.
  bool omit_default = false;
  std::function<void(Config&, const YAML::Node&, const Where&)> set;
  std::function<std::string(const Config&)> get;
};

using IntRef = std::function<int&(Config&)>;
using DblRef = std::function<double&(Config&)>;
using StrRef = std::function<std::string&(Config&)>;
using BoolRef = std::function<bool&(Config&)>;

std::string fmt_double(double v);  // a double as the config prints it: "2.0", not "2"
Field int_field(std::string key, IntRef ref, long long lo, long long hi, std::string doc);
Field seed_field(std::string key, std::function<int64_t&(Config&)> ref, std::string doc);
Field dbl_field(std::string key, DblRef ref, double lo, double hi, bool lo_open, std::string doc);
Field omitted(Field f);  // a key newer than saved configs: see Field::omit_default
Field bool_field(std::string key, BoolRef ref, std::string doc);
// A string; with `choices` non-empty, one of them.
Field str_field(std::string key, StrRef ref, std::vector<std::string> choices, std::string doc);

// One of a closed set, stored as its enum (OptionNames<E> spells its values).
template <class Ref>
Field enum_field(std::string key, Ref ref, std::string doc) {
  using E = std::decay_t<decltype(ref(std::declval<Config&>()))>;
  Field f;
  f.key = key;
  std::string list;
  for (const char* ch : OptionNames<E>::names) list += (list.empty() ? "" : " | ") + std::string(ch);
  f.type = list;
  f.doc = std::move(doc);
  f.quoted = true;
  f.set = [key, ref, list](Config& c, const YAML::Node& n, const Where& w) {
    if (!n.IsScalar() && !n.IsNull()) fail(w, key, fmt::format("expected a string, got {}", scalar_text(n)));
    const std::string s = n.IsNull() ? "" : n.Scalar();
    if (!option_from_name(s, ref(c))) fail(w, key, fmt::format("expected one of {}, got '{}'", list, s));
  };
  f.get = [ref](const Config& c) { return option_name(ref(const_cast<Config&>(c))); };
  return f;
}

}  // namespace attnlab::config_fields
