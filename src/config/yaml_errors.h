// Pieces of the error messages about YAML files (configs and experiment files).
#pragma once
#include <string>

namespace YAML {
class Node;
}

namespace attnlab {

// "origin:line:col" of a node read from a file; just origin for a node without a position.
std::string where_of(const std::string& origin, const YAML::Node& n);

// A node as an error message shows it: a scalar's text, else "a list", "a mapping" or "nothing".
std::string scalar_text(const YAML::Node& n);

// A config whose top level has the key `experiment` is an experiment file given to the wrong
// command: UserError pointing at `attnlab experiment run`.
void reject_experiment_file(const YAML::Node& root, const std::string& origin);

}  // namespace attnlab
