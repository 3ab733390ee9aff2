// Reordering the rows of a batch-major buffer, as beam search does to every per-row state
// (attention caches, the encoded source) when hypotheses change places.
#pragma once
#include <algorithm>
#include <vector>

#include "core/error.h"

namespace attnlab {

// buf holds rows.size() equal rows back to back; afterwards row b is the old row rows[b].
// An empty buffer (a state not in use) is left alone.
template <class T>
void permute_rows(std::vector<T>& buf, const std::vector<int>& rows) {
  if (buf.empty() || rows.empty()) return;
  const size_t B = rows.size();
  ATTNLAB_CHECK(buf.size() % B == 0);
  const size_t row = buf.size() / B;
  const std::vector<T> old(buf);
  for (size_t b = 0; b < B; b++) {
    ATTNLAB_CHECK(rows[b] >= 0 && size_t(rows[b]) < B);
    std::copy(old.begin() + size_t(rows[b]) * row, old.begin() + size_t(rows[b] + 1) * row, buf.begin() + b * row);
  }
}

}  // namespace attnlab
