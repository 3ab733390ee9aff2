// Seq2seq tasks with a numeric answer (docs/tasks.md), char tokens:
//
//   addition  "a+b" -> "c" with c = a + b; a and b uniform in [0, 10^n_digits), written in
//             ordinary decimal without leading zeros ("7+120" -> "127"), as in minGPT's adder
//             toy but not reversed and not zero-padded.
//   dates     a day uniform in 1950-01-01 .. 2049-12-31, written in one of six formats chosen
//             uniformly, -> ISO 8601 "yyyy-mm-dd":
//               0 "tuesday 3 march 1987"     3 "03.03.1987"   (dd.mm.yyyy)
//               1 "3/3/87"  (m/d/yy, US)      4 "tue, 3 mar 1987"
//               2 "march 3, 1987"             5 "the 3rd of march 1987"
//             Two-digit years are unambiguous in this range: 50..99 -> 19yy, 00..49 -> 20yy.
//             Weekdays come from the day count: days_from_civil (proleptic Gregorian calendar,
//             H. Hinnant's algorithm) and 1970-01-01 was a Thursday.
#include <fmt/format.h>

#include "core/error.h"
#include "data/task_gen.h"

namespace attnlab {

namespace {

// ---------------------------------------------------------------- addition

class Addition : public TaskGen {
 public:
  explicit Addition(const TaskOptions& o) : o_(o) {
    if (o.n_digits < 1 || o.n_digits > 18)
      key_error({"data.n_digits"}, "data.n_digits must be in 1..18 for task addition, got {}", o.n_digits);
    tok = Tokenizer::from_vocab(".=+0123456789");
    end = tok.id('.');
    sep = tok.id('=');
    pad = end;
    format = TaskFormat::seq2seq;
    max_in = 2 * o.n_digits + 1;
    max_out = o.n_digits + 1;
    length_keys = "data.n_digits";
    limit_ = 1;
    for (int i = 0; i < o.n_digits; ++i) limit_ *= 10;
  }
  void draw(Rng& rng, TaskExample& ex) const override { make(rng.below(limit_), rng.below(limit_), ex); }
  uint64_t space() const override { return sat_mul(limit_, limit_); }
  bool enumerable() const override { return true; }  // called only when space() <= kEnumLimit
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for (uint64_t a = 0; a < limit_; ++a)
      for (uint64_t b = 0; b < limit_; ++b) {
        make(a, b, ex);
        f(ex);
      }
  }
  int stratum(const TaskExample&) const override { return 0; }  // operands are uniform: pick uniformly
  std::vector<int> answer(const std::vector<int>& input) const override {
    const std::string s = tok.decode(input);
    const size_t plus = s.find('+');
    uint64_t v[2] = {0, 0};
    const std::string parts[2] = {s.substr(0, plus), plus == std::string::npos ? "" : s.substr(plus + 1)};
    for (int k = 0; k < 2; ++k) {
      const std::string& p = parts[k];
      bool ok = plus != std::string::npos && !p.empty() && int(p.size()) <= o_.n_digits &&
                (p.size() == 1 || p[0] != '0');
      for (char c : p) ok = ok && c >= '0' && c <= '9';
      if (!ok) user_error("task addition: '{}' is not an input of the form a+b with {}-digit operands", s, o_.n_digits);
      for (char c : p) v[k] = v[k] * 10 + uint64_t(c - '0');
    }
    return tok.encode(std::to_string(v[0] + v[1]));
  }
  std::string describe() const override {
    return fmt::format("operands of up to {} digits, no leading zeros", o_.n_digits);
  }

 private:
  void make(uint64_t a, uint64_t b, TaskExample& ex) const {
    ex = TaskExample{};
    ex.input = tok.encode(std::to_string(a) + "+" + std::to_string(b));
    ex.output = tok.encode(std::to_string(a + b));
  }
  TaskOptions o_;
  uint64_t limit_ = 1;
};

// ---------------------------------------------------------------- dates

constexpr int kFirstYear = 1950, kLastYear = 2049, kFormats = 6;
const char* const kMonths[12] = {"january", "february", "march",     "april",   "may",      "june",
                                 "july",    "august",   "september", "october", "november", "december"};
const char* const kWeekdays[7] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};

// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

struct Date {
  int y, m, d;
};

// The inverse (Hinnant's civil_from_days).
Date civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = unsigned(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {int(int64_t(yoe) + era * 400 + (m <= 2)), int(m), int(d)};
}

// 0 = monday .. 6 = sunday; day 0 (1970-01-01) was a thursday.
int weekday(int64_t days) { return int(((days % 7) + 7 + 3) % 7); }

std::string ordinal(int d) {
  const char* suffix = (d % 10 == 1 && d != 11) ? "st" : (d % 10 == 2 && d != 12) ? "nd" : (d % 10 == 3 && d != 13) ? "rd" : "th";
  return std::to_string(d) + suffix;
}

std::string format_date(int64_t days, int format) {
  const Date t = civil_from_days(days);
  const std::string month = kMonths[t.m - 1];
  const std::string wd = kWeekdays[weekday(days)];
  switch (format) {
    case 0: return fmt::format("{} {} {} {}", wd, t.d, month, t.y);
    case 1: return fmt::format("{}/{}/{:02d}", t.m, t.d, t.y % 100);
    case 2: return fmt::format("{} {}, {}", month, t.d, t.y);
    case 3: return fmt::format("{:02d}.{:02d}.{}", t.d, t.m, t.y);
    case 4: return fmt::format("{}, {} {} {}", wd.substr(0, 3), t.d, month.substr(0, 3), t.y);
    default: return fmt::format("the {} of {} {}", ordinal(t.d), month, t.y);
  }
}

std::string iso(int64_t days) {
  const Date t = civil_from_days(days);
  return fmt::format("{}-{:02d}-{:02d}", t.y, t.m, t.d);
}

class Dates : public TaskGen {
 public:
  explicit Dates(const TaskOptions& o) : o_(o) {
    tok = Tokenizer::from_vocab(".= ,-/0123456789abcdefghijklmnopqrstuvwxyz");
    end = tok.id('.');
    sep = tok.id('=');
    pad = end;
    format = TaskFormat::seq2seq;
    first_ = days_from_civil(kFirstYear, 1, 1);
    n_days_ = days_from_civil(kLastYear + 1, 1, 1) - first_;
    static const int longest = [first = first_, n = n_days_] {  // computed once per process
      int m = 0;
      for (int64_t k = 0; k < n; ++k)
        for (int f = 0; f < kFormats; ++f) m = std::max(m, int(format_date(first + k, f).size()));
      return m;
    }();
    max_in = longest;
    max_out = 10;
    length_keys = "";  // fixed by the formats
  }
  void draw(Rng& rng, TaskExample& ex) const override {
    const int64_t day = first_ + int64_t(rng.below(uint64_t(n_days_)));
    make(day, int(rng.below(kFormats)), ex);
  }
  uint64_t space() const override { return uint64_t(n_days_) * kFormats; }
  bool enumerable() const override { return true; }
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for (int64_t k = 0; k < n_days_; ++k)
      for (int fm = 0; fm < kFormats; ++fm) {
        make(first_ + k, fm, ex);
        f(ex);
      }
  }
  int stratum(const TaskExample&) const override { return 0; }  // days and formats are uniform
  std::vector<int> answer(const std::vector<int>& input) const override {
    const std::string s = tok.decode(input);
    // read the numbers and the month name, then check that the text is exactly one of the formats
    std::vector<int> nums;
    std::vector<int> digits;  // digits in each number
    int month = 0;
    for (size_t i = 0; i < s.size();) {
      if (s[i] >= '0' && s[i] <= '9') {
        int v = 0, n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && n < 6) v = v * 10 + (s[i++] - '0'), ++n;
        nums.push_back(v);
        digits.push_back(n);
      } else if (s[i] >= 'a' && s[i] <= 'z') {
        size_t j = i;
        while (j < s.size() && s[j] >= 'a' && s[j] <= 'z') ++j;
        const std::string w = s.substr(i, j - i);
        for (int m = 0; m < 12; ++m)
          if (w.size() >= 3 && std::string(kMonths[m]).compare(0, w.size(), w) == 0) month = m + 1;
        i = j;
      } else {
        ++i;
      }
    }
    int y = 0, m = 0, d = 0;
    if (nums.size() == 3 && s.find('/') != std::string::npos) {
      m = nums[0], d = nums[1], y = nums[2] + (nums[2] >= 50 ? 1900 : 2000);
    } else if (nums.size() == 3 && s.find('.') != std::string::npos) {
      d = nums[0], m = nums[1], y = nums[2];
    } else if (nums.size() == 2 && month > 0) {
      m = month;
      const bool year_first = digits[0] == 4;
      y = year_first ? nums[0] : nums[1];
      d = year_first ? nums[1] : nums[0];
    }
    if (y >= kFirstYear && y <= kLastYear && m >= 1 && m <= 12 && d >= 1 && d <= 31) {
      const int64_t days = days_from_civil(y, unsigned(m), unsigned(d));
      if (civil_from_days(days).d == d)  // not e.g. 31 april
        for (int f = 0; f < kFormats; ++f)
          if (format_date(days, f) == s) return tok.encode(iso(days));
    }
    user_error("task dates: '{}' is not a date in one of the task's formats ({}..{})", s, kFirstYear, kLastYear);
  }
  std::string describe() const override {
    return fmt::format("days {}-01-01..{}-12-31 in {} formats", kFirstYear, kLastYear, kFormats);
  }

 private:
  void make(int64_t day, int fm, TaskExample& ex) const {
    ex = TaskExample{};
    ex.input = tok.encode(format_date(day, fm));
    ex.output = tok.encode(iso(day));
  }
  TaskOptions o_;
  int64_t first_ = 0, n_days_ = 0;
};

}  // namespace

std::unique_ptr<TaskGen> make_arith_task(const TaskOptions& o) {
  if (o.name == "addition") return std::make_unique<Addition>(o);
  if (o.name == "dates") return std::make_unique<Dates>(o);
  return nullptr;
}

}  // namespace attnlab
