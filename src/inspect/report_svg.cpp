// The report's inline SVG: line charts of the metrics (axes, ticks, legend; one polyline per
// series carrying data-points = its point count) and heatmaps of one attention head with the
// tokens on both axes (the map itself is a palette PNG, drawn without smoothing).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "inspect/report.h"

namespace attnlab::report_detail {

namespace {

constexpr double kW = 430, kH = 250, kLeft = 58, kRight = 14, kTop = 30, kBottom = 38;

// About `want` round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int want) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / want, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-6; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string tick_text(double v) {
  const double a = std::fabs(v);
  if (a != 0 && (a < 1e-4 || a >= 1e6)) return fmt::format("{:.0e}", v);
  return fmt::format("{:.4g}", v);
}

size_t glyphs(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

}  // namespace

std::string svg_chart(const std::string& title, const std::vector<Series>& series, bool log_y,
                      const std::string& id) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  auto ty = [&](double y) { return log_y ? std::log10(std::max(y, 1e-12)) : y; };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); i++) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  x0 = std::min(x0, 0.0);
  if (x1 <= x0) x1 = x0 + 1;
  if (!(y1 - y0 > 1e-9 * std::max(1.0, std::fabs(y0)))) {  // one value (or all equal): a band around it
    const double half = std::max(0.5, std::fabs(y0) * 0.1);
    y0 -= half, y1 += half;
  }
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return kTop + (1.0 - (ty(y) - y0) / (y1 - y0)) * ph; };
  std::string o = fmt::format(
      "<svg class=\"chart\" id=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\">"
      "<text class=\"ctitle\" x=\"{}\" y=\"18\">{}</text>"
      "<rect class=\"plot\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
      id, kW, kH, kW, kH, kLeft, html_escape(title), kLeft, kTop, pw, ph);
  for (double t : ticks(y0, y1, 5)) {
    const double y = kTop + (1.0 - (t - y0) / (y1 - y0)) * ph;
    o += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>", kLeft,
                     kLeft + pw, y, y);
    o += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", kLeft - 5,
                     y + 4, tick_text(log_y ? std::pow(10.0, t) : t));
  }
  for (double t : ticks(x0, x1, 5)) {
    const double x = px(t);
    o += fmt::format("<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>", x, x, kTop,
                     kTop + ph);
    o += fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", x,
                     kTop + ph + 15, tick_text(t));
  }
  o += fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">step</text>",
                   kLeft + pw / 2, kH - 4);
  double lx = kLeft + pw;
  for (size_t k = series.size(); series.size() > 1 && k-- > 0;) {  // legend, right-aligned along the title line
    const auto& s = series[k];
    lx -= 7.0 * double(glyphs(s.name)) + 24;
    o += fmt::format("<rect x=\"{:.1f}\" y=\"10\" width=\"12\" height=\"4\" fill=\"{}\"/><text class=\"legend\" "
                     "x=\"{:.1f}\" y=\"17\">{}</text>",
                     lx, s.colour, lx + 16, html_escape(s.name));
  }
  for (const auto& s : series) {
    std::string pts;
    size_t n = 0;
    for (size_t i = 0; i < s.x.size(); i++) {
      if (!std::isfinite(s.y[i])) continue;
      pts += fmt::format("{}{:.1f},{:.1f}", n ? " " : "", px(s.x[i]), py(s.y[i]));
      n++;
    }
    o += fmt::format("<polyline class=\"curve\" data-series=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{}\" "
                     "points=\"{}\"/>",
                     html_escape(s.name), n, s.colour, pts);
    if (s.x.size() <= 60)  // few points (evaluations): mark each
      for (size_t i = 0; i < s.x.size(); i++)
        if (std::isfinite(s.y[i]))
          o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"><title>step {}: {}</title>"
                           "</circle>",
                           px(s.x[i]), py(s.y[i]), s.colour, s.x[i], tick_text(s.y[i]));
  }
  return o + "</svg>";
}

std::string svg_heatmap(const std::string& png_b64, const std::vector<std::string>& q_tokens,
                        const std::vector<std::string>& k_tokens, const std::string& key, int head, int box_rows,
                        int box_cols) {
  const int rows = int(q_tokens.size()), cols = int(k_tokens.size());
  const int br = std::max(rows, box_rows), bc = std::max(cols, box_cols);  // room for every frame
  const int longest = std::max({br, bc, 1});
  const double cell = std::clamp(std::floor(320.0 / longest), 6.0, 24.0);
  // long sequences: a label every `stride` tokens, large enough to read (the page's tooltip names
  // the query and key under the pointer)
  const int stride = cell >= 9 ? 1 : int(std::ceil(9.0 / cell));
  const double font = stride > 1 ? 8.0 : std::min(11.0, cell - 0.5);
  size_t ql = 3, kl = 3;  // room for labels of at least 3 glyphs (a history frame may have longer ones)
  for (const auto& t : q_tokens) ql = std::max(ql, glyphs(t));
  for (const auto& t : k_tokens) kl = std::max(kl, glyphs(t));
  const double left = 6 + font * 0.65 * double(std::min<size_t>(ql, 12)),
               top = 6 + font * 0.65 * double(std::min<size_t>(kl, 12));
  const double w = left + bc * cell + 2, h = top + br * cell + 2;
  auto label = [](const std::vector<std::string>& t, int i) {
    return i < int(t.size()) ? html_escape(t[size_t(i)]) : std::string();
  };
  std::string o = fmt::format(
      "<svg class=\"heatmap\" data-key=\"{}\" data-head=\"{}\" data-cell=\"{}\" width=\"{:.0f}\" "
      "height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" style=\"font-size:{:.1f}px\" data-q=\"{}\" data-k=\"{}\">",
      key, head, cell, w, h, w, h, font, html_escape(nlohmann::json(q_tokens).dump()),
      html_escape(nlohmann::json(k_tokens).dump()));
  for (int i = 0; i < br; i += stride)
    o += fmt::format("<text class=\"q\" data-i=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" "
                     "dominant-baseline=\"central\">{}</text>",
                     i, left - 3, top + (i + 0.5) * cell, label(q_tokens, i));
  for (int j = 0; j < bc; j += stride)
    o += fmt::format("<text class=\"k\" data-i=\"{}\" transform=\"translate({:.1f},{:.1f}) rotate(-90)\" "
                     "dominant-baseline=\"central\">{}</text>",
                     j, left + (j + 0.5) * cell, top - 3, label(k_tokens, j));
  o += fmt::format("<image class=\"map-img\" data-key=\"{}\" data-head=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" "
                   "width=\"{:.1f}\" height=\"{:.1f}\" preserveAspectRatio=\"none\" href=\"data:image/png;base64,{}\"/>",
                   key, head, left, top, cols * cell, rows * cell, png_b64);
  o += fmt::format("<rect class=\"frame\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>", left,
                   top, cols * cell, rows * cell);
  return o + "</svg>";
}

}  // namespace attnlab::report_detail
