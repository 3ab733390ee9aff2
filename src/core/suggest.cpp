#include "core/suggest.h"

#include <algorithm>

#include <fmt/format.h>

namespace attnlab {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);  // one row of the table, updated in place
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string nearest_name(const std::string& word, const std::vector<std::string>& names, size_t limit) {
  std::string best;
  for (const auto& n : names) {
    const size_t d = edit_distance(word, n);
    if (d < limit) limit = d, best = n;
  }
  return best;
}

std::string did_you_mean(const std::string& name) {
  return name.empty() ? "" : fmt::format(" (did you mean '{}'?)", name);
}

}  // namespace attnlab
