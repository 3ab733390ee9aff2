// Experiment files (experiment/experiment.h): parsing, grid expansion with ties, validation errors,
// resume (a done cell is skipped, a changed cell reruns), the results tables, and the two
// attention measurements on hand-made maps.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/generate.h"
#include "model/model.h"
#include "bench/bench.h"
#include "corpus.h"
#include "experiment/decode.h"
#include "experiment/experiment.h"
#include "experiment_runner/helpers.h"

using namespace attnlab;
using test::error_of;
using test::slurp;
using test::spit;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) { return test::fresh_dir("exp", name); }

// A base config whose cells train in well under a second.
const char* kBase = R"(model: {kind: encoder_decoder, n_layers: 1, d_model: 16, n_heads: 2, d_ff: 32, block_size: 16}
data: {task: reverse, n_symbols: 6, min_len: 4, max_len: 4, n_val: 16}
train: {steps: 20, batch_size: 8, warmup_steps: 2, eval_interval: 10, eval_batches: 1, log_interval: 10, threads: 1}
)";

// Writes base.yaml and exp.yaml (the given text) into a new directory; returns exp.yaml's path.
std::string write_experiment(const std::string& dir, const std::string& text) {
  spit(dir + "/base.yaml", kBase);
  spit(dir + "/exp.yaml", text);
  return dir + "/exp.yaml";
}

std::string override_of(const ExperimentCell& c, const std::string& key) {
  std::string v;
  for (const auto& o : c.overrides)
    if (o.rfind(key + "=", 0) == 0) v = o.substr(key.size() + 1);
  return v;
}

}  // namespace

TEST_CASE("experiment file: the grid is the cartesian product, first key outermost, with ties") {
  const std::string dir = fresh_dir("grid");
  const std::string path = write_experiment(dir, R"(experiment: tiny
base: base.yaml
set: [train.lr=0.002]
grid:
  model.bottleneck: [false, true]
  data.max_len: [4, 6, 8]
tie: {data.min_len: data.max_len}
metrics: [greedy_token_acc, loss@10]
table: {rows: data.max_len, cols: model.bottleneck, value: greedy_token_acc}
)");
  const Experiment exp = load_experiment(path);
  CHECK(exp.name == "tiny");
  CHECK(exp.base == fs::path(dir + "/base.yaml").lexically_normal().string());
  REQUIRE(exp.cells.size() == 6);
  CHECK(exp.grid_keys == std::vector<std::string>{"model.bottleneck", "data.max_len"});
  const char* bottleneck[] = {"false", "false", "false", "true", "true", "true"};
  const int len[] = {4, 6, 8, 4, 6, 8};
  for (size_t i = 0; i < 6; i++) {
    const auto& c = exp.cells[i];
    CHECK(c.values[0].second == bottleneck[i]);
    CHECK(c.config.model.bottleneck == (std::string(bottleneck[i]) == "true"));
    CHECK(c.config.data.max_len == len[i]);
    CHECK(c.config.data.min_len == len[i]);  // tied
    CHECK(c.config.train.lr == doctest::Approx(0.002));
    CHECK(override_of(c, "data.min_len") == std::to_string(len[i]));
  }
  CHECK(exp.cells[4].name == "bottleneck=true_max_len=6");
  CHECK(exp.metrics == std::vector<std::string>{"greedy_token_acc", "loss@10"});
  REQUIRE(exp.table.has_value());
  CHECK(exp.table->value == "greedy_token_acc");
}

TEST_CASE("experiment file: a list of grids runs their products one after the other") {
  const std::string dir = fresh_dir("gridlist");
  const std::string path = write_experiment(dir, R"(experiment: scores
base: base.yaml
grid:
  - {model.decoder.cross_attention.type: [bahdanau]}
  - {model.decoder.cross_attention.type: [luong], model.decoder.cross_attention.score: [dot, general, concat]}
metrics: [exact_match]
)");
  const Experiment exp = load_experiment(path);
  REQUIRE(exp.cells.size() == 4);
  CHECK(exp.cells[0].config.model.decoder_cross.type == "bahdanau");
  CHECK(exp.cells[0].values.size() == 1);
  CHECK(exp.cells[3].config.model.decoder_cross.type == "luong");
  CHECK(exp.cells[3].config.model.decoder_cross.score == "concat");
  // names use the shortest unique suffix of each key
  CHECK(exp.cells[3].name == "type=luong_score=concat");
}

TEST_CASE("experiment file: train.threads is capped so that jobs x threads <= cores") {
  const std::string dir = fresh_dir("threads");
  const std::string path = write_experiment(dir, R"(experiment: t
base: base.yaml
set: [train.threads=0]
grid: {train.seed: [1, 2]}
metrics: [loss]
)");
  ExperimentOptions opt;
  opt.cores = 4;
  opt.jobs = 2;
  const Experiment a = load_experiment(path, opt);
  CHECK(a.cells[0].config.train.threads == 2);
  opt.jobs = 1;
  CHECK(load_experiment(path, opt).cells[1].config.train.threads == 4);
  opt.jobs = 8;
  CHECK(load_experiment(path, opt).cells[0].config.train.threads == 1);
}

TEST_CASE("experiment file: mistakes are UserErrors naming the file and the key, before anything runs") {
  const std::string dir = fresh_dir("errors");
  auto err = [&](const std::string& text) { return error_of(write_experiment(dir, text)); };
  const std::string head = "experiment: e\nbase: base.yaml\n";
  std::string e = err(head + "grid: {data.maxlen: [4, 6]}\nmetrics: [loss]\n");
  CHECK(e.find("exp.yaml:3:") != std::string::npos);
  CHECK(e.find("'data.maxlen'") != std::string::npos);
  CHECK(e.find("data.max_len") != std::string::npos);  // the suggestion
  e = err(head + "grid: {data.max_len: [4]}\ntie: {data.min_len: data.n_symbols}\nmetrics: [loss]\n");
  CHECK(e.find("not a grid key") != std::string::npos);
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [accuracy]\n");
  CHECK(e.find("'accuracy'") != std::string::npos);
  CHECK(e.find("greedy_token_acc") != std::string::npos);  // lists the task's metrics
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [loss@15]\n");
  CHECK(e.find("not an evaluation step") != std::string::npos);
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [answer_mass]\n");
  CHECK(e.find("answer_mass") != std::string::npos);
  CHECK(e.find("mqar") != std::string::npos);
  e = err(head + "grid: {model.n_heads: [2, 3]}\nmetrics: [loss]\n");  // the second cell's config is invalid
  CHECK(e.find("n_heads=3") != std::string::npos);
  CHECK(e.find("model.n_heads") != std::string::npos);
  e = err(head + "grids: {data.max_len: [4]}\nmetrics: [loss]\n");
  CHECK(e.find("unknown key 'grids'") != std::string::npos);
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [loss]\nplot: {x: data.min_len, y: loss}\n");
  CHECK(e.find("plot.x") != std::string::npos);
  // learning curves need at least two NAME@STEP columns of y
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [loss@10, loss]\nplot: {x: step, y: loss}\n");
  CHECK(e.find("plot.y: x 'step' plots the columns loss@STEP, and the metrics have 1 of them") !=
        std::string::npos);
  e = err(head + "grid: {data.max_len: [4]}\nmetrics: [loss@10, loss@20]\nplot: {x: step}\n");
  CHECK(e.find("key 'y' is missing") != std::string::npos);
  const Experiment curves = load_experiment(write_experiment(
      dir, head + "grid: {data.max_len: [4]}\nmetrics: [loss@10, loss@20]\nplot: {x: step, y: loss, series: data.max_len}\n"));
  REQUIRE(curves.plots.size() == 1);
  CHECK(curves.plots[0].x == "step");
  CHECK(curves.plots[0].y == "loss");
  CHECK(curves.plots[0].series == "data.max_len");
  e = err("experiment: e\nbase: nothere.yaml\nmetrics: [loss]\n");
  CHECK(e.find("nothere.yaml") != std::string::npos);
  ExperimentOptions opt;
  opt.sets = {"data.max_len=5"};
  e = error_of(write_experiment(dir, head + "grid: {data.max_len: [4]}\nmetrics: [loss]\n"), opt);
  CHECK(e.find("grid key") != std::string::npos);
}

TEST_CASE("experiment run: results tables, a rerun skips done cells, a changed cell runs again") {
  const std::string dir = fresh_dir("run");
  const std::string path = write_experiment(dir, R"(experiment: tiny
base: base.yaml
grid: {model.bottleneck: [false, true]}
metrics: [greedy_token_acc, loss@10, mirror_weight]
)");
  const std::string out = dir + "/out";
  std::vector<std::string> lines;
  RunExperimentOptions ro;
  ro.print = [&](const std::string& s) { lines.push_back(s); };
  Experiment exp = load_experiment(path);
  REQUIRE(run_experiment(exp, out, ro) == 0);
  CHECK(cell_done(exp, 0, out));
  CHECK(cell_done(exp, 1, out));
  bool progress = false;
  for (const auto& l : lines) progress |= l.rfind("cell 2/2 (model.bottleneck=true) | ETA", 0) == 0;
  CHECK(progress);
  // results.csv: a header and one row per cell; mirror_weight is empty for the bottleneck
  std::stringstream csv(slurp(out + "/results.csv"));
  std::vector<std::string> rows;
  for (std::string l; std::getline(csv, l);) rows.push_back(l);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == "model.bottleneck,greedy_token_acc,loss@10,mirror_weight,seconds");
  CHECK(rows[1].rfind("false,", 0) == 0);
  CHECK(rows[2].find(",,") != std::string::npos);
  const auto done = nlohmann::json::parse(slurp(out + "/cells/bottleneck=false/done.json"));
  CHECK(done["steps"] == 20);
  const double mw = done["measurements"]["values"]["mirror_weight"].get<double>();
  CHECK(mw > 0.0);
  CHECK(mw < 1.0);
  CHECK(done["measurements"]["layers"]["mirror_weight"].size() == 1);
  // loss@10 is the val row at step 10
  double loss10 = -1.0;
  for (const auto& r : done["val"])
    if (r["step"] == 10) loss10 = r["loss"].get<double>();
  CHECK(rows[1].find(fmt::format("{}", loss10)) != std::string::npos);
  const std::string md = slurp(out + "/results.md");
  CHECK(md.find("| model.bottleneck | greedy_token_acc | loss@10 | mirror_weight | seconds |") != std::string::npos);

  // rerun: nothing trains (the run directories are untouched)
  const std::string metrics0 = slurp(out + "/cells/bottleneck=false/metrics.jsonl");
  const auto t0 = fs::last_write_time(out + "/cells/bottleneck=false/metrics.jsonl");
  lines.clear();
  REQUIRE(run_experiment(exp, out, ro) == 0);
  CHECK(lines.at(0).find("2 done earlier, 0 to run") != std::string::npos);
  CHECK(fs::last_write_time(out + "/cells/bottleneck=false/metrics.jsonl") == t0);
  CHECK(run_cell(exp, 0, out, false).skipped);

  // a cell whose config changed is not done any more, and reruns from scratch
  ExperimentOptions opt;
  opt.sets = {"train.steps=30", "train.eval_interval=10"};
  Experiment longer = load_experiment(path, opt);
  CHECK_FALSE(cell_done(longer, 0, out));
  const CellOutcome oc = run_cell(longer, 0, out, false);
  CHECK_FALSE(oc.skipped);
  const auto done2 = nlohmann::json::parse(slurp(out + "/cells/bottleneck=false/done.json"));
  CHECK(done2["steps"] == 30);
  CHECK(slurp(out + "/cells/bottleneck=false/metrics.jsonl") != metrics0);
}

TEST_CASE("experiment results: a train.seed grid key gives mean ± sd over seeds, in results.md and results_seeds.csv") {
  const std::string dir = fresh_dir("seeds");
  const std::string path = write_experiment(dir, R"(experiment: seeds
base: base.yaml
grid: {model.bottleneck: [false, true], data.n_symbols: [6], train.seed: [1, 2, 3]}
metrics: [loss]
table: {rows: model.bottleneck, cols: data.n_symbols, value: loss}
)");
  const std::string out = dir + "/out";
  const Experiment exp = load_experiment(path);
  REQUIRE(exp.cells.size() == 6);
  // done.json written by hand: losses 1, 2, 4 (bottleneck false) and 3, 3 with the third cell unfinished
  const double loss[6] = {1.0, 2.0, 4.0, 3.0, 3.0, -1.0};
  for (size_t i = 0; i < 6; i++) {
    if (loss[i] < 0) continue;
    const std::string cd = out + "/cells/" + exp.cells[i].name;
    fs::create_directories(cd);
    const nlohmann::json j = {{"config", exp.cells[i].identity}, {"steps", 20}, {"seconds", 1.0},
                              {"val", nlohmann::json::array({{{"step", 20}, {"loss", loss[i]}}})}};
    spit(cd + "/done.json", j.dump());
  }
  CHECK(write_results(exp, out) == 5);
  const std::string md = slurp(out + "/results.md");
  // mean 7/3, sd sqrt(((1-7/3)² + (2-7/3)² + (4-7/3)²) / 2) = sqrt(7/3) = 1.5275
  CHECK(md.find("## Over seeds") != std::string::npos);
  CHECK(md.find("| model.bottleneck | data.n_symbols | n | loss | seconds |") != std::string::npos);
  CHECK(md.find("| false | 6 | 3 | 2.3333 ± 1.5275 | 1 ± 0 |") != std::string::npos);
  CHECK(md.find("| true | 6 | 2 | 3 ± 0 | 1 ± 0 |") != std::string::npos);
  // the pivot shows the same statistics
  CHECK(md.find("| false | 2.3333 ± 1.5275 |") != std::string::npos);
  std::stringstream csv(slurp(out + "/results_seeds.csv"));
  std::vector<std::string> rows;
  for (std::string l; std::getline(csv, l);) rows.push_back(l);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == "model.bottleneck,data.n_symbols,n,loss_mean,loss_sd,seconds_mean,seconds_sd");
  std::vector<std::string> f;
  std::stringstream r1(rows[1]);
  for (std::string x; std::getline(r1, x, ',');) f.push_back(x);
  REQUIRE(f.size() == 7);
  CHECK(f[0] == "false");
  CHECK(f[2] == "3");
  CHECK(std::stod(f[3]) == doctest::Approx(7.0 / 3.0).epsilon(1e-12));
  CHECK(std::stod(f[4]) == doctest::Approx(std::sqrt(7.0 / 3.0)).epsilon(1e-12));
  CHECK(rows[2] == "true,6,2,3,0,1,0");
  // one seed: no "Over seeds" section
  const std::string p1 = write_experiment(dir, R"(experiment: one
base: base.yaml
grid: {model.bottleneck: [false, true], train.seed: [1]}
metrics: [loss]
)");
  const std::string out1 = dir + "/out1";
  write_results(load_experiment(p1), out1);
  CHECK(slurp(out1 + "/results.md").find("## Over seeds") == std::string::npos);
  CHECK_FALSE(fs::exists(out1 + "/results_seeds.csv"));
}

TEST_CASE("mirror_weight_of: head-averaged weight on source position L-1-t, over every output position") {
  // B = 2 examples (L = 3 and L = 2, source padded to Tk = 3), H = 2 heads, Tq = 3
  const int B = 2, H = 2, Tq = 3, Tk = 3;
  std::vector<float> w(size_t(B) * H * Tq * Tk, 0.0f);
  auto at = [&](int b, int h, int t, int s) -> float& { return w[((size_t(b) * H + h) * Tq + t) * Tk + s]; };
  // example 0: head 0 is a perfect mirror; head 1 puts 0.5 on the mirror and 0.5 elsewhere
  for (int t = 0; t < 3; t++) {
    at(0, 0, t, 2 - t) = 1.0f;
    at(0, 1, t, 2 - t) = 0.5f;
    at(0, 1, t, 0) += 0.5f;  // extra weight on source position 0 (the mirror itself for t = 2)
  }
  // example 1 (L = 2): both heads attend to source position 0 only (mirror for t = 1 only);
  // query t = 2 is past its length and must not count
  for (int h = 0; h < H; h++)
    for (int t = 0; t < 3; t++) at(1, h, t, 0) = 1.0f;
  // per (b, t) head means: ex0: t0 (1+0.5)/2, t1 (1+0.5)/2, t2 (1+ (0.5+0.5))/2 = 1 -> 0.75, 0.75, 1
  //                        ex1: t0 weight on position 1 = 0, t1 on position 0 = 1
  const double expected = (0.75 + 0.75 + 1.0 + 0.0 + 1.0) / 5.0;
  CHECK(mirror_weight_of(w.data(), B, H, Tq, Tk, {3, 2}) == doctest::Approx(expected));
  // a uniform map over L source positions gives 1/L
  std::vector<float> u(size_t(1) * 1 * 4 * 4, 0.25f);
  CHECK(mirror_weight_of(u.data(), 1, 1, 4, 4, {4}) == doctest::Approx(0.25));
}

TEST_CASE("recall_mass_of: weight on the value of the queried pair vs the mass on filler") {
  // an mqar-like row: k1 v5 k2 v6 _ _ k2 _   (filler "_" = 0); query at position 6 (key k2 -> v6)
  const std::vector<int> in = {1, 5, 2, 6, 0, 0, 2, 0};
  std::vector<int> lab(8, -1);
  lab[6] = 6;
  const int T = 8, H = 2;
  std::vector<float> w(size_t(H) * T * T, 0.0f);
  auto at = [&](int h, int q, int j) -> float& { return w[(size_t(h) * T + q) * T + j]; };
  at(0, 6, 3) = 0.8f;  // the answer (the value token v6 at position 3)
  at(0, 6, 2) = 0.1f;  // the key: neither answer nor noise
  at(0, 6, 4) = 0.1f;  // filler
  at(1, 6, 3) = 0.2f;
  at(1, 6, 5) = 0.5f;  // filler
  at(1, 6, 1) = 0.3f;  // another pair's value: not noise
  // rows of other positions must be ignored
  for (int j = 0; j < T; j++) at(0, 2, j) = 1.0f;
  auto filler = [&](int, int j) { return in[size_t(j)] == 0; };
  RecallMass r = recall_mass_of(w.data(), 1, H, T, {in}, {lab}, filler);
  CHECK(r.queries == 1);
  CHECK(r.answer == doctest::Approx((0.8 + 0.2) / 2));
  CHECK(r.noise == doctest::Approx((0.1 + 0.5) / 2));
  // rows summing to 1 with no negative entry: the shares equal the masses
  CHECK(r.answer_share == doctest::Approx(r.answer));
  CHECK(r.noise_share == doctest::Approx(r.noise));
  // a differential-style row: A1 − λA2 with λ = 0.5 sums to 0.5 and has a negative entry; the
  // shares divide each row by Σ|w| (head 0: 0.8 + 0.1 + 0.1 + 0.4 = 1.4), the masses do not
  at(0, 6, 0) = -0.4f;
  r = recall_mass_of(w.data(), 1, H, T, {in}, {lab}, filler);
  CHECK(r.answer == doctest::Approx((0.8 + 0.2) / 2));
  CHECK(r.answer_share == doctest::Approx((0.8 / 1.4 + 0.2 / 1.0) / 2));
  CHECK(r.noise_share == doctest::Approx((0.1 / 1.4 + 0.5 / 1.0) / 2));
  at(0, 6, 0) = 0.0f;
  // a query whose key never appeared with that value has no answer position and is skipped
  std::vector<int> lab2 = lab;
  lab2[6] = 5;
  r = recall_mass_of(w.data(), 1, H, T, {in}, {lab2}, filler);
  CHECK(r.queries == 0);
}

TEST_CASE("experiment files: every shipped configs/experiments file with `experiment:` loads and validates") {
  // from the repository root, where the files are run (a text corpus path is relative to it)
  struct Cwd {
    fs::path old = fs::current_path();
    explicit Cwd(const fs::path& p) { fs::current_path(p); }
    ~Cwd() { fs::current_path(old); }
  } cwd(ATTNLAB_SOURCE_DIR);
  int found = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(ATTNLAB_SOURCE_DIR) + "/configs/experiments")) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream f(e.path());
    std::stringstream text;
    text << f.rdbuf();
    if (("\n" + text.str()).find("\nexperiment:") == std::string::npos) continue;  // a plain train config
    INFO(e.path().string());
    Experiment exp;
    std::string what;
    try {
      exp = load_experiment(e.path().string());
    } catch (const UserError& err) {
      what = err.what();
    }
    for (const auto& cell : exp.cells)  // loaded as shipped: a text corpus comes from data/
      if (exp.run == "train" && cell.config.data.task == "text")
        CHECK_MESSAGE(cell.config.data.path.rfind("data/", 0) == 0,
                      "a shipped config reads its corpus from data/: " << cell.config.data.path);
    if (!what.empty()) {
      // The repository holds no text corpus, so E8's data/tinyshakespeare.txt may be absent. Then
      // the file is loaded again with data.path on the copy in ATTNLAB_DATA_DIR or, when there is
      // none, on a stand-in text, so that everything else in it is still validated.
      const std::string marker = "cannot read text file '";
      size_t at = what.find(marker);
      if (at == std::string::npos && what.find("': cannot be read") != std::string::npos &&
          (at = what.find("data.path '")) != std::string::npos) {
        // a parallel corpus scripts/get_data.sh generates (E9): validated with stand-in pairs
        const size_t from = at + 11;
        const std::string missing = what.substr(from, what.find('\'', from) - from);
        CHECK_MESSAGE(missing.rfind("data/", 0) == 0, "a shipped config reads its corpus from data/: " << missing);
        const std::string dir = fresh_dir("standin_pairs");
        std::string tsv;
        const char* words[] = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
        for (int i = 0; i < 729; i++)
          tsv += fmt::format("{} {} {}\t{} {} {}\n", words[i % 9], words[i / 9 % 9], words[i / 81], i % 9 + 1,
                             i / 9 % 9 + 1, i / 81 + 1);
        spit(dir + "/pairs.tsv", tsv);
        ExperimentOptions opt;
        opt.sets = {"data.path=" + dir + "/pairs.tsv"};
        exp = load_experiment(e.path().string(), opt);
        fs::remove_all(dir);
        MESSAGE("validated with stand-in pairs, not the corpus: " << missing << " (scripts/get_data.sh)");
        CHECK(!exp.cells.empty());
        found++;
        continue;
      }
      if (at == std::string::npos) FAIL(what);
      const std::string missing = what.substr(at + marker.size(), what.find('\'', at + marker.size()) - at - marker.size());
      CHECK_MESSAGE(missing.rfind("data/", 0) == 0, "a shipped config reads its corpus from data/: " << missing);
      const auto corpus = test::find_corpus(fs::path(missing).filename().string());
      ExperimentOptions opt;
      struct Dir {  // the stand-in's directory, removed at scope end
        std::string path;
        ~Dir() {
          std::error_code ec;
          if (!path.empty()) fs::remove_all(path, ec);
        }
      } standin_dir;
      if (corpus.path) {
        opt.sets = {"data.path=" + *corpus.path};
      } else {
        if (corpus.must_exist) FAIL(corpus.missing);
        standin_dir.path = fresh_dir("standin");
        const std::string standin = standin_dir.path + "/standin.txt";
        std::string text;
        while (text.size() < 40000) text += "Now is the winter of our discontent, made glorious summer.\n";
        spit(standin, text);
        opt.sets = {"data.path=" + standin};
        MESSAGE("validated with a stand-in text, not the corpus: " << corpus.missing);
      }
      exp = load_experiment(e.path().string(), opt);
    }
    CHECK(!exp.cells.empty());
    found++;
  }
  CHECK(found >= 3);
}

// ---- E8: the decode measurement (cache_values, decode_ms_per_token) ----

namespace {

ModelConfig tiny_decoder(int n_heads, int n_kv_heads, int block_size) {
  ModelConfig mc;
  mc.kind = ModelConfig::Kind::decoder;
  mc.n_layers = 2;
  mc.d_model = 32;
  mc.n_heads = n_heads;
  mc.d_ff = 64;
  mc.block_size = block_size;
  mc.positions = ModelConfig::Positions::rope;
  mc.attention.type = "causal";
  mc.attention.n_kv_heads = n_kv_heads;
  mc.decoder_self = mc.attention;
  return mc;
}

}  // namespace

TEST_CASE("decode_at_context: the caches hold 2·n_kv_heads·d_head values per token per layer (MHA, GQA, MQA)") {
  const int H = 4, D = 32 / H, V = 11;
  for (int kv : {4, 2, 1}) {
    INFO("n_kv_heads = " << kv);
    Model model(tiny_decoder(H, kv, 64), V, 7);
    Rng rng(3);
    std::vector<int> prompt(40);
    for (int& t : prompt) t = int(rng.below(uint64_t(V)));
    DecodeAtContextOptions o;
    o.tokens = 8;
    o.repeats = 2;
    o.prefill_chunk = 16;  // the prompt goes in as 16 + 16 + 8
    const DecodeAtContext r = decode_at_context(model, prompt, o);
    CHECK(r.context == 40);
    CHECK(r.positions == 48);
    REQUIRE(r.cache_values.size() == 2);
    for (double cv : r.cache_values) {
      CHECK(cv == double(2 * kv * D));
      if (kv < H) CHECK(cv != double(2 * H * D));  // a cache of every query head would not pass
    }
    REQUIRE(r.ms_per_token.size() == 2);
    CHECK(r.median_ms_per_token > 0.0);
    // it is greedy decoding: the same tokens as generate() at temperature 0 with the cache
    SampleOptions so;
    so.max_new_tokens = 8;
    so.temperature = 0.0f;
    Rng unused(0);
    CHECK(r.generated == generate(model, prompt, so, unused));
  }
  // the context must fit the model
  Model small(tiny_decoder(H, 1, 32), V, 7);
  std::vector<int> prompt(30, 1);
  DecodeAtContextOptions o;
  o.tokens = 8;
  CHECK_THROWS_AS(decode_at_context(small, prompt, o), UserError);
}

TEST_CASE("experiment run: cache_values and decode_ms_per_token from a trained decoder on text") {
  const std::string dir = fresh_dir("decode");
  std::string text;
  for (int i = 0; i < 300; i++) text += "to be or not to be, that is the question. ";
  spit(dir + "/corpus.txt", text);
  // block_size 16 < context + tokens = 44: RoPE lets the measurement rebuild the model for 44
  spit(dir + "/base.yaml", "model: {kind: decoder, n_layers: 2, d_model: 16, n_heads: 4, d_ff: 32, block_size: 16, "
                           "positions: rope, attention: {type: causal}}\n"
                           "data: {task: text, path: " + dir + "/corpus.txt}\n"
                           "train: {steps: 4, batch_size: 4, warmup_steps: 1, eval_interval: 0, eval_batches: 1, "
                           "log_interval: 2, threads: 1}\n");
  spit(dir + "/exp.yaml", R"(experiment: tiny_decode
base: base.yaml
grid: {model.attention.n_kv_heads: [4, 2, 1]}
metrics: [loss, cache_values, decode_ms_per_token]
decode: {context: 40, tokens: 4, repeats: 3}
)");
  const Experiment exp = load_experiment(dir + "/exp.yaml");
  CHECK(exp.decode_context == 40);
  CHECK(exp.decode_tokens == 4);
  CHECK(exp.decode_repeats == 3);
  CHECK(exp.needs("decode"));
  RunExperimentOptions ro;
  REQUIRE(run_experiment(exp, dir + "/out", ro) == 0);
  const int D = 16 / 4;
  for (int kv : {4, 2, 1}) {
    INFO("n_kv_heads = " << kv);
    const auto done = nlohmann::json::parse(slurp(fmt::format("{}/out/cells/n_kv_heads={}/done.json", dir, kv)));
    const auto& m = done["measurements"];
    CHECK(m["values"]["cache_values"].get<double>() == 2 * kv * D);
    REQUIRE(m["layers"]["cache_values"].size() == 2);
    for (const auto& cv : m["layers"]["cache_values"]) CHECK(cv.get<double>() == 2 * kv * D);
    CHECK(m["values"]["decode_ms_per_token"].get<double>() > 0.0);
    CHECK(m["notes"][0].get<std::string>().find("44 positions cached") != std::string::npos);
  }
}

TEST_CASE("experiment file: the decode measurement needs a decoder with a cache and room for the context") {
  const std::string dir = fresh_dir("decode_errors");
  // kBase is an encoder_decoder
  std::string e = error_of(write_experiment(dir, "experiment: e\nbase: base.yaml\nmetrics: [cache_values]\n"));
  CHECK(e.find("cache_values") != std::string::npos);
  CHECK(e.find("model.kind decoder") != std::string::npos);
  CHECK(e.find("encoder_decoder") != std::string::npos);
  // a decoder with learned positions cannot grow past its block_size
  const std::string dec =
      "model: {kind: decoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 32, positions: learned}\n"
      "data: {task: copy, n_symbols: 4, min_len: 2, max_len: 4, n_val: 8}\ntrain: {steps: 2, threads: 1}\n";
  spit(dir + "/dec.yaml", dec);
  auto err = [&](const std::string& body) {
    spit(dir + "/exp.yaml", "experiment: e\nbase: dec.yaml\n" + body);
    return error_of(dir + "/exp.yaml");
  };
  e = err("metrics: [loss, decode_ms_per_token]\ndecode: {context: 64, tokens: 8}\n");
  CHECK(e.find("block_size is 32") != std::string::npos);
  CHECK(e.find("72 positions") != std::string::npos);
  CHECK(err("metrics: [loss, decode_ms_per_token]\ndecode: {context: 16, tokens: 8}\n").empty());
  e = err("metrics: [loss]\nmeasure: [cache_values]\ndecode: {context: 16, token: 8}\n");
  CHECK(e.find("unknown key 'token'") != std::string::npos);
  e = err("metrics: [loss]\nmeasure: [cache_values]\ndecode: {context: 0}\n");
  CHECK(e.find("decode.context") != std::string::npos);
  e = err("metrics: [loss, cache_values@2]\n");
  CHECK(e.find("final checkpoint") != std::string::npos);
}

// ---- E9: bleu_by_length ----

TEST_CASE("bleu_by_length: bucket columns, counts per bucket in done.json, errors for bad settings") {
  const std::string dir = fresh_dir("bleulen");
  const std::string head = "experiment: e\nbase: base.yaml\ngrid: {model.bottleneck: [false]}\n";
  // reversal of 2..6 symbols, evaluated with lengths up to 6: the buckets (0,3], (3,5], (5,9]
  const std::string text = head +
                           "set: [data.min_len=2, data.max_len=6]\n"
                           "bleu_by_length: {edges: [3, 5, 9], set: [data.n_val=40]}\n"
                           "metrics: [exact_match, bleu_by_length, chrf_len_4-5]\n";
  const Experiment exp = load_experiment(write_experiment(dir, text));
  CHECK(exp.metrics == std::vector<std::string>{"exact_match", "bleu_len_1-3", "bleu_len_4-5", "bleu_len_6-9",
                                                "chrf_len_4-5"});
  CHECK(exp.measure.size() == 6);  // every bucket's bleu and chrf is measured, named in metrics or not
  CHECK(exp.needs("bleu_by_length"));
  CHECK(!exp.needs("mirror_weight"));
  RunExperimentOptions ro;
  ro.print = [](const std::string&) {};
  REQUIRE(run_experiment(exp, dir + "/out", ro) == 0);
  const auto done = nlohmann::json::parse(slurp(dir + "/out/cells/bottleneck=false/done.json"));
  const auto& counts = done["measurements"]["counts"];
  // lengths 2..6 drawn uniformly: each bucket has examples, none is past the last edge
  CHECK(counts["1-3"].get<long>() + counts["4-5"].get<long>() + counts["6-9"].get<long>() == 40);
  CHECK(counts["1-3"].get<long>() > 0);
  CHECK(counts["6-9"].get<long>() > 0);
  CHECK(counts["beyond"].get<long>() == 0);
  for (const char* c : {"bleu_len_1-3", "chrf_len_4-5", "chrf_len_6-9"}) {
    INFO(c);
    REQUIRE(done["measurements"]["values"][c].is_number());
    const double v = done["measurements"]["values"][c].get<double>();
    CHECK((v >= 0.0 && v <= 100.0));
  }
  const std::string csv = slurp(dir + "/out/results.csv");
  CHECK(csv.rfind("model.bottleneck,exact_match,bleu_len_1-3,bleu_len_4-5,bleu_len_6-9,chrf_len_4-5,seconds\n", 0) == 0);

  auto err = [&](const std::string& t) { return error_of(write_experiment(dir, t)); };
  CHECK(err(head + "bleu_by_length: {edges: [5, 5]}\nmetrics: [loss]\n").find("ascending positive integers") !=
        std::string::npos);
  CHECK(err(head + "bleu_by_length: {edges: [5], set: [train.steps=3]}\nmetrics: [loss]\n")
            .find("'train.steps=3': expected data.KEY=VALUE") != std::string::npos);
  CHECK(err(head + "bleu_by_length: {edges: [5], split: train}\nmetrics: [loss]\n").find("expected val or test") !=
        std::string::npos);
  CHECK(err(head + "bleu_by_length: {edges: [5], bins: 3}\nmetrics: [loss]\n").find("bins") != std::string::npos);
  CHECK(err(head + "metrics: [chrf_by_length]\n").find("needs the key bleu_by_length") != std::string::npos);
}
