// `attnlab report`: the page. One HTML file: inline CSS, inline SVG, PNG data URIs and a few lines
// of inline script for the history slider (its frames are embedded as JSON; nothing is fetched).
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "inspect/report.h"

namespace attnlab {

using json = nlohmann::json;
using namespace report_detail;

namespace {

const char* kStyle = R"CSS(
:root{--ink:#1d2733;--muted:#5b6b7d;--line:#d9e1ea;--card:#fff;--bg:#f3f6f9;--accent:#2166ac}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif}
main{max-width:1400px;margin:0 auto;padding:20px 24px 48px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:12px 20px;margin-bottom:6px}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:14px 0 6px}
.sub{color:var(--muted)}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:13px}
.finished{background:#dff3e4;color:#1b6b32}.stopped{background:#fff2cc;color:#7a5a00}
.failed{background:#fbe0e0;color:#9b1c1c}.other{background:#e6ecf2;color:#3c4b5c}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:16px 0}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:6px 18px;margin:0}
.facts div{overflow-wrap:anywhere}.facts b{color:var(--muted);font-weight:500}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid var(--line);border-radius:6px}
svg.chart .plot{fill:#fbfcfd;stroke:#c5d0db}svg.chart .grid{stroke:#e8edf2}
svg.chart .tick{font-size:11px;fill:var(--muted)}svg.chart .axis{font-size:11px;fill:var(--muted)}
svg.chart .ctitle{font-size:13px;font-weight:600;fill:var(--ink)}svg.chart .legend{font-size:11px;fill:var(--ink)}
svg.chart polyline{stroke-width:1.8;stroke-linejoin:round}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right}
th{background:#f0f4f8;font-weight:600}td.l,th.l{text-align:left}
tr.best td{background:#e8f1fb;font-weight:600}
.scroll{max-height:360px;overflow:auto;display:inline-block;border:1px solid var(--line);border-radius:6px}
.cols{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:10px;max-height:420px;overflow:auto;
font-size:12px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.ok{color:#1b6b32;font-weight:600}.bad{color:#9b1c1c;font-weight:600}
.slot{margin-top:10px}.layer{display:flex;gap:10px;align-items:flex-start;margin:6px 0 12px}
.lname{writing-mode:vertical-rl;transform:rotate(180deg);color:var(--muted);font-size:12px;padding:4px 0}
.heads{display:flex;flex-wrap:wrap;gap:10px 14px}
figure.head{margin:0;text-align:center}figure.head figcaption{font-size:11px;color:var(--muted)}
svg.heatmap text{fill:#34495e;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
svg.heatmap image{image-rendering:pixelated;image-rendering:crisp-edges}
svg.heatmap .frame{fill:none;stroke:#9fb0c2;stroke-width:.8}
.note{color:#7a5a00;background:#fff8e1;border-left:3px solid #e0b000;padding:4px 10px;margin:6px 0}
.player{display:flex;align-items:center;gap:14px;margin:4px 0 10px;position:sticky;top:0;background:#fff;
padding:8px 0;z-index:2;border-bottom:1px solid var(--line)}
.player input{flex:1;max-width:640px}.player button{font:inherit;padding:3px 12px;border-radius:5px;
border:1px solid #9fb0c2;background:#f0f4f8;cursor:pointer}
.tip{position:absolute;display:none;background:#1d2733;color:#fff;font:12px ui-monospace,monospace;
padding:3px 8px;border-radius:4px;pointer-events:none;z-index:5}
#history-step{font-weight:600;min-width:160px}
.legendbar{display:inline-block;width:140px;height:10px;vertical-align:middle;border:1px solid #c5d0db;
background:linear-gradient(90deg,#fff,#deebf7,#9ecae1,#4292c6,#08519c,#081d58)}
)CSS";

std::string num(const json& v) {
  if (!v.is_number()) return "–";
  const double d = v.get<double>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (d != 0 && (std::fabs(d) < 1e-3 || std::fabs(d) >= 1e5)) return fmt::format("{:.3e}", d);
  return fmt::format("{:.4f}", d);
}

std::string esc(const json& v) { return html_escape(v.is_string() ? v.get<std::string>() : v.dump()); }

std::string header(const json& r) {
  const json& st = r["status"];
  const std::string state = st["state"].get<std::string>();
  const std::string cls = state == "finished" || state == "stopped" || state == "failed" ? state : "other";
  const json& c = r["run"]["config"];
  std::string o = fmt::format("<header><h1>attnlab report</h1><span class=\"mono\">{}</span>"
                              "<span class=\"badge {}\" id=\"status\" data-state=\"{}\">{}</span>"
                              "<span class=\"sub\">written {}</span></header>",
                              esc(r["run_dir"]), cls, esc(state), esc(st["text"]), esc(r["generated"]));
  o += "<section id=\"summary\"><h2>Run</h2><div class=\"facts\">";
  auto fact = [&](const std::string& k, const std::string& v) {
    o += fmt::format("<div title=\"{}\"><b>{}</b> {}</div>", v, k, v);
  };
  fact("model", esc(c["kind"]) + ", " + esc(c["layers"]));
  fact("width", fmt::format("d_model {}, {} heads", c["d_model"].get<int>(), c["n_heads"].get<int>()));
  fact("attention", esc(c["attention"]));
  fact("positions", esc(c["positions"]));
  fact("data", esc(c["data"]));
  fact("training", fmt::format("{} steps × {} sequences, lr {} ({})", c["steps"].get<int>(),
                               c["batch_size"].get<int>(), num(c["lr"]), esc(c["schedule"])));
  if (r["model"].is_object())
    fact("parameters", fmt::format("{}", r["model"]["parameters"]["total"].get<long long>()));
  const json& b = r["best"];
  fact("best", b.is_null() ? "no evaluation yet"
                           : fmt::format("val loss {} at step {}", num(b["loss"]), b["step"].get<int>()));
  fact("evaluations", fmt::format("{} (train rows {})", r["metrics"]["val_rows"].get<size_t>(),
                                  r["metrics"]["train_rows"].get<size_t>()));
  return o + "</div></section>";
}

std::vector<double> doubles(const json& a) {
  std::vector<double> v;
  for (const auto& x : a) v.push_back(x.is_number() ? x.get<double>() : NAN);
  return v;
}

std::string curves(const json& r) {
  const json& m = r["metrics"];
  const auto ts = doubles(m["train"]["step"]), vs = doubles(m["val"]["step"]);
  std::string o = "<section id=\"curves\"><h2>Curves</h2><div class=\"charts\">";
  std::vector<Series> loss = {{"train loss", "#2166ac", ts, doubles(m["train"]["loss"])}};
  if (m["val"]["metrics"].contains("loss")) loss.push_back({"val loss", "#d6604d", vs, doubles(m["val"]["metrics"]["loss"])});
  o += svg_chart("loss", loss, false, "chart-loss");
  o += svg_chart("learning rate", {{"lr", "#5e3c99", ts, doubles(m["train"]["lr"])}}, false, "chart-lr");
  for (const auto& n : m["names"]) {
    const std::string name = n.get<std::string>();
    if (name == "loss") continue;
    o += svg_chart("val " + name, {{"val " + name, "#1b7837", vs, doubles(m["val"]["metrics"][name])}}, false,
                   "chart-" + name);
  }
  return o + "</div></section>";
}

std::string eval_table(const json& r) {
  const json& v = r["metrics"]["val"];
  const int best = r["best"].is_null() ? -1 : r["best"]["step"].get<int>();
  std::string o = "<section id=\"evals\"><h2>Evaluations</h2>";
  if (v["step"].empty()) return o + "<p>No evaluation yet.</p></section>";
  o += "<div class=\"scroll\"><table id=\"eval-table\"><tr><th>step</th>";
  for (const auto& n : r["metrics"]["names"]) o += "<th>" + esc(n) + "</th>";
  o += "</tr>";
  for (size_t i = 0; i < v["step"].size(); i++) {
    const int step = v["step"][i].get<int>();
    o += fmt::format("<tr{}><td>{}</td>", step == best ? " class=\"best\" title=\"best val loss\"" : "", step);
    for (const auto& n : r["metrics"]["names"]) o += "<td>" + num(v["metrics"][n.get<std::string>()][i]) + "</td>";
    o += "</tr>";
  }
  o += "</table></div>";
  if (best >= 0) o += fmt::format("<p>Best val loss at step <b id=\"best-step\">{}</b> (highlighted).</p>", best);
  return o + "</section>";
}

std::string model_section(const json& r) {
  std::string o = "<section id=\"model\"><h2>Model and config</h2><div class=\"cols\">";
  const json& m = r["model"];
  if (m.is_object()) {
    o += "<div><h3>Attention per slot</h3><table><tr><th class=\"l\">slot</th><th class=\"l\">type</th>"
         "<th class=\"l\">mask</th><th>heads</th><th>kv heads</th><th class=\"l\">positions</th></tr>";
    for (const auto& a : m["attention"])
      o += fmt::format("<tr><td class=\"l mono\">{}</td><td class=\"l\"><b>{}</b></td><td class=\"l\">{}</td><td>{}"
                       "</td><td>{}</td><td class=\"l\">{}</td></tr>",
                       esc(a["short"]), esc(a["type"]), a["causal"].get<bool>() ? "causal" : "none",
                       a["n_heads"].get<int>(), a["n_kv_heads"].get<int>(), esc(a["positions"]));
    o += "</table><h3>Parameters per module</h3><div class=\"scroll\"><table><tr><th class=\"l\">module</th>"
         "<th>parameters</th><th>share</th></tr>";
    const double total = m["parameters"]["total"].get<double>();
    for (const auto& p : m["parameters"]["modules"])
      o += fmt::format("<tr><td class=\"l mono\">{}</td><td>{}</td><td>{:.1f}%</td></tr>", esc(p["name"]),
                       p["count"].get<long long>(), total > 0 ? 100.0 * p["count"].get<double>() / total : 0.0);
    o += fmt::format("<tr><td class=\"l\"><b>total</b></td><td><b>{}</b></td><td></td></tr></table></div>",
                     m["parameters"]["total"].get<long long>());
    o += fmt::format("<p class=\"sub\">From {} (step {}); tokenizer {}, {} tokens.</p></div>",
                     esc(r["checkpoint"]["file"]), m["step"].get<int>(), esc(m["tokenizer"]["type"]),
                     m["tokenizer"]["vocab_size"].get<int>());
  } else {
    o += "<p>No checkpoint yet: no model summary.</p>";
  }
  o += "<div style=\"flex:1;min-width:360px\"><h3>config.yaml (resolved)</h3><pre>" + esc(r["config_text"]) +
       "</pre></div></div></section>";
  return o;
}

std::string examples_section(const json& r) {
  const json& ex = r["examples"];
  if (!ex.is_array()) return "";
  std::string o = "<section id=\"examples\"><h2>Decoded examples</h2><p class=\"sub\">The first val examples, "
                  "decoded greedily by the " + esc(r["checkpoint"]["which"]) + " checkpoint.</p>"
                  "<table><tr><th class=\"l\">input</th><th class=\"l\">reference</th><th class=\"l\">output</th>"
                  "<th class=\"l\">match</th></tr>";
  for (const auto& e : ex)
    o += fmt::format("<tr><td class=\"l mono\">{}</td><td class=\"l mono\">{}</td><td class=\"l mono\">{}</td>"
                     "<td class=\"l {}\">{}</td></tr>",
                     esc(e["input"]), esc(e["reference"]), esc(e["output"]), e["match"].get<bool>() ? "ok" : "bad",
                     e["match"].get<bool>() ? "✓ yes" : "✗ no");
  return o + "</table></section>";
}

std::vector<std::string> strings(const json& a) {
  std::vector<std::string> v;
  for (const auto& s : a) v.push_back(s.get<std::string>());
  return v;
}

// Maps grouped by slot, one row per layer, one small map per head. `png_of(group, head)` gives
// each map (the best checkpoint's or a history frame's).
template <typename F>
std::string map_groups(const json& groups, F png_of) {
  std::string o, slot;
  for (const auto& g : groups) {
    if (g["slot"] != slot) {
      if (!slot.empty()) o += "</div>";
      slot = g["slot"].get<std::string>();
      o += fmt::format("<div class=\"slot\"><h3>{}{}</h3>", esc(slot),
                       g.contains("type") ? " · " + esc(g["type"]) : "");
    }
    o += fmt::format("<div class=\"layer\"><div class=\"lname\">layer {}</div><div class=\"heads\">",
                     g["layer"].get<int>());
    if (g.contains("note")) o += "<div class=\"note\">" + esc(g["note"]) + "</div>";
    else
      for (int h = 0; h < g["heads"].get<int>(); h++)
        o += "<figure class=\"head\">" +
             svg_heatmap(png_of(g, h), strings(g["q_tokens"]), strings(g["k_tokens"]), g["key"].get<std::string>(), h,
                         g.value("rows", 0), g.value("cols", 0)) +
             fmt::format("<figcaption>head {}</figcaption></figure>", h);
    o += "</div></div>";
  }
  return slot.empty() ? o : o + "</div>";
}

std::string example_line(const json& ex) {
  std::string o = "<p>Held-out example (the start of the validation data): ";
  if (ex.contains("src_tokens") && ex["src_tokens"].is_array())
    o += "source <span class=\"mono\">" + esc(fmt::format("{}", fmt::join(strings(ex["src_tokens"]), " "))) +
         "</span>, decoder (the separator, then the model's own greedy answer) ";
  return o + "<span class=\"mono\">" + esc(fmt::format("{}", fmt::join(strings(ex["tokens"]), " "))) +
         "</span>. Rows are queries, columns keys; colour ∝ √weight <span class=\"legendbar\"></span> 0 → 1.</p>";
}

std::string maps_section(const json& r) {
  std::string o = "<section id=\"maps\"><h2>Attention maps of the best checkpoint</h2>";
  const json& m = r["maps"];
  if (!m.is_object()) return o + "<p>No checkpoint yet: no maps.</p></section>";
  o += fmt::format("<p class=\"sub\">{}, step {}: every slot, layer and head, at full precision.</p>",
                   esc(r["checkpoint"]["file"]), m["step"].get<int>());
  for (const auto& n : m["notes"]) o += "<div class=\"note\">" + esc(n) + "</div>";
  if (m.contains("example")) o += example_line(m["example"]);
  o += map_groups(m["groups"], [](const json& g, int h) { return g["png"][size_t(h)].get<std::string>(); });
  return o + "</section>";
}

std::string history_section(const json& r) {
  const json& h = r["history"];
  std::string o = "<section id=\"history\"><h2>Attention over training</h2>";
  if (!h.value("present", false))
    return o + "<p>This run has no attention_history.jsonl (it was trained before the maps were stored at each "
               "evaluation, or with <code>train.attention_maps: false</code>).</p></section>";
  if (h["frames"].empty()) return o + "<p>attention_history.jsonl has no evaluation yet.</p></section>";
  const size_t n = h["frames"].size();
  o += "<p class=\"sub\">The same held-out example at every evaluation: drag the slider (or play) to watch the "
       "maps form.</p>";
  if (h["kept"].get<size_t>() < h["total"].get<size_t>())
    o += fmt::format("<div class=\"note\">{} of the {} evaluations are shown (evenly spaced, first and last "
                     "included) to keep this page small.</div>",
                     h["kept"].get<size_t>(), h["total"].get<size_t>());
  o += example_line(h["example"]);
  o += fmt::format("<div class=\"player\"><button id=\"history-play\" type=\"button\">▶ play</button>"
                   "<input type=\"range\" id=\"history-slider\" min=\"0\" max=\"{}\" value=\"{}\" step=\"1\" "
                   "data-frames=\"{}\"><span id=\"history-step\">step {}</span></div>",
                   n - 1, n - 1, n, h["frames"][n - 1]["step"].get<int>());
  const json& last = h["frames"][n - 1]["maps"];
  o += map_groups(h["groups"], [&](const json& g, int hd) {
    const std::string key = g["key"].get<std::string>();
    return last.contains(key) ? last[key][size_t(hd)].get<std::string>() : std::string();
  });
  json data = {{"frames", json::array()}};
  for (const auto& f : h["frames"]) data["frames"].push_back({{"step", f["step"]}, {"maps", f["maps"]}, {"lab", f["lab"]}});
  std::string text = data.dump();
  for (size_t p = 0; (p = text.find("</", p)) != std::string::npos; p += 3) text.replace(p, 2, "<\\/");
  o += "<script type=\"application/json\" id=\"history-data\">" + text + "</script>";
  return o + "</section>";
}

const char* kScript = R"JS(
(function () {
  var el = document.getElementById('history-data');
  if (el) {
    var d = JSON.parse(el.textContent), s = document.getElementById('history-slider');
    var lab = document.getElementById('history-step'), play = document.getElementById('history-play');
    var maps = document.querySelectorAll('#history svg.heatmap'), timer = null;
    var show = function (i) {
      var f = d.frames[i];
      lab.textContent = 'step ' + f.step + '  (' + (i + 1) + ' of ' + d.frames.length + ')';
      for (var k = 0; k < maps.length; k++) {  // the map, its size and its token labels
        var svg = maps[k], key = svg.getAttribute('data-key'), m = f.maps[key], tl = f.lab[key];
        if (!m) continue;
        var c = +svg.getAttribute('data-cell'), im = svg.querySelector('image'), fr = svg.querySelector('.frame');
        im.setAttribute('href', 'data:image/png;base64,' + m[+svg.getAttribute('data-head')]);
        [im, fr].forEach(function (e) { e.setAttribute('width', tl[1].length * c); e.setAttribute('height', tl[0].length * c); });
        svg.setAttribute('data-q', JSON.stringify(tl[0]));
        svg.setAttribute('data-k', JSON.stringify(tl[1]));
        svg.querySelectorAll('text').forEach(function (t) {
          t.textContent = tl[t.getAttribute('class') === 'q' ? 0 : 1][+t.getAttribute('data-i')] || '';
        });
      }
    };
    var stop = function () { clearInterval(timer); timer = null; play.textContent = '\u25b6 play'; };
    s.addEventListener('input', function () { show(+s.value); });
    play.addEventListener('click', function () {
      if (timer) return stop();
      if (+s.value >= d.frames.length - 1) { s.value = 0; show(0); }
      play.textContent = '\u275a\u275a pause';
      timer = setInterval(function () {
        if (+s.value >= d.frames.length - 1) return stop();
        s.value = +s.value + 1; show(+s.value);
      }, 450);
    });
    var want = /frame=(\d+)/.exec(location.hash);  // report.html#frame=N opens at evaluation N
    if (want) s.value = Math.min(+want[1], d.frames.length - 1);
    show(+s.value);
    document.body.setAttribute('data-history-frames', String(d.frames.length));
  }
  var tip = document.createElement('div');  // the query and key under the pointer
  tip.className = 'tip';
  document.body.appendChild(tip);
  document.querySelectorAll('svg.heatmap').forEach(function (svg) {
    var im = svg.querySelector('image');
    im.addEventListener('mousemove', function (e) {
      var q = JSON.parse(svg.getAttribute('data-q')), k = JSON.parse(svg.getAttribute('data-k'));
      var r = im.getBoundingClientRect();
      var i = Math.min(q.length - 1, Math.floor((e.clientY - r.top) / r.height * q.length));
      var j = Math.min(k.length - 1, Math.floor((e.clientX - r.left) / r.width * k.length));
      tip.textContent = 'query ' + i + ' \u201c' + q[i] + '\u201d \u2192 key ' + j + ' \u201c' + k[j] + '\u201d';
      tip.style.left = (e.pageX + 14) + 'px';
      tip.style.top = (e.pageY + 14) + 'px';
      tip.style.display = 'block';
    });
    im.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });
  document.body.setAttribute('data-report-ready', '1');
})();
)JS";

}  // namespace

std::string render_report_html(const nlohmann::json& r) {
  std::string o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                   "content=\"width=device-width,initial-scale=1\"><title>attnlab report: " +
                   esc(r["run_dir"]) + "</title><style>" + kStyle + "</style></head><body><main>";
  o += header(r) + curves(r) + eval_table(r) + examples_section(r) + maps_section(r) + history_section(r) +
       model_section(r);
  o += "</main><script>" + std::string(kScript) + "</script></body></html>\n";
  return o;
}

}  // namespace attnlab
