// "Did you mean ...?" hints for misspelt names.
#pragma once
#include <string>
#include <vector>

namespace attnlab {

// Levenshtein distance: the fewest single-character insertions, deletions and substitutions.
size_t edit_distance(const std::string& a, const std::string& b);

// The first of `names` nearest to `word` by edit_distance, if that distance is below `limit`;
// "" otherwise.
std::string nearest_name(const std::string& word, const std::vector<std::string>& names, size_t limit);

// " (did you mean 'NAME'?)", or "" when name is empty.
std::string did_you_mean(const std::string& name);

}  // namespace attnlab
