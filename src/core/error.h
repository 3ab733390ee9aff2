// Errors a person can act on.
//   UserError    -> the CLI prints "error: <message>" and exits 2 (bad config, bad input file, ...)
//   anything else -> internal error, exit 1
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace attnlab {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void user_error(fmt::format_string<Args...> f, Args&&... args) {
  throw UserError(fmt::format(f, std::forward<Args>(args)...));
}

#define ATTNLAB_CHECK(cond, ...)                                                          \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw std::logic_error(fmt::format("{}:{}: check failed: {}", __FILE__, __LINE__, \
                                         #cond));                                         \
  } while (0)

}  // namespace attnlab
