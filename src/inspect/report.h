// `attnlab report`: one self-contained HTML page about a run directory (no network, no external
// script): config and model summary, the curves of metrics.jsonl, the eval table, the status, the
// best checkpoint's attention maps on one held-out example, decoded examples of seq2seq tasks, and
// the maps of attention_history.jsonl under a slider over the evaluations.
//
//   collect_report(dir)    everything the page shows, as JSON (maps already PNG, base64)
//   render_report_html(r)  the page
//   write_report(dir, out) both, written atomically to out (default dir/report.html); returns
//                          the path and what the page holds, for the CLI's summary
//
// The pieces live in report_data.cpp (run, metrics, status, examples), report_maps.cpp (the
// held-out example, the forward with captured weights, the history file), report_png.cpp (PNG
// and base64), report_svg.cpp (curves and heatmaps) and report_html.cpp (the page).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace attnlab {

struct ReportOptions {
  int decoded_examples = 5;                    // seq2seq: val examples decoded greedily
  size_t history_budget = size_t(4) << 20;     // bytes of history maps (PNG, base64) at most
};

nlohmann::json collect_report(const std::string& run_dir, const ReportOptions& opt = {});
std::string render_report_html(const nlohmann::json& report);
nlohmann::json write_report(const std::string& run_dir, const std::string& out, const ReportOptions& opt = {});

// ---- pieces shared by the report's files ----
namespace report_detail {

// (base64_encode / base64_decode: core/text.h; palette PNGs: encode_png_indexed in core/png.h)
// The heatmap palettes: sequential (0 = no weight, 255 = all of it) and diverging (128 = 0).
const std::vector<uint8_t>& palette_sequential();
const std::vector<uint8_t>& palette_diverging();
// Weights [rows, cols] of one head -> PNG (base64): sqrt colour scale over [0, 1]; negative
// weights (differential attention) use the diverging palette over [-1, 1].
std::string heatmap_png(const float* w, int rows, int cols);
// The same from bytes 0..255 (= round(255 * weight)), as attention_history.jsonl stores them.
std::string heatmap_png_u8(const uint8_t* b, int rows, int cols);
// A token for an axis label: valid UTF-8, visible whitespace (␣ ↵ ⇥), \xNN for other bytes.
std::string display_token(const std::string& tok);
std::string html_escape(const std::string& s);

// Maps of the held-out example: {"example": {...}, "groups": [{slot, layer, type, heads, rows, cols,
// q_tokens, k_tokens, png: [...]}], "notes": [...]} for the checkpoint at `ckpt`.
nlohmann::json best_maps(const std::string& ckpt);
// attention_history.jsonl parsed and turned into PNG frames (at most `budget` bytes of them):
// {"present", "frames": [{step, maps: {"slot/L": [png per head]}}], "groups": [...], "total", "kept"}.
nlohmann::json history_frames(const std::string& path, size_t budget);
// seq2seq: the first n val examples decoded greedily by the checkpoint's model.
nlohmann::json decoded_examples(const std::string& ckpt, int n);

// SVG: a line chart of several series over steps (each: name, colour, xs, ys; polyline with
// data-points), and a heatmap of one head with the tokens on both axes.
struct Series {
  std::string name, colour;
  std::vector<double> x, y;
};
std::string svg_chart(const std::string& title, const std::vector<Series>& series, bool log_y,
                      const std::string& id);
std::string svg_heatmap(const std::string& png_b64, const std::vector<std::string>& q_tokens,
                        const std::vector<std::string>& k_tokens, const std::string& key, int head,
                        int box_rows = 0, int box_cols = 0);  // box: room for the largest history frame

}  // namespace report_detail
}  // namespace attnlab
