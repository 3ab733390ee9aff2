// make_dataset / task_options (see factory.h).
#include "data/factory.h"

#include <fmt/format.h>

#include "cuda/cuda_attention.h"

namespace attnlab {

TaskOptions task_options(const Config& cfg) {
  TaskOptions o;
  o.name = cfg.data.task;
  o.n_symbols = cfg.data.n_symbols;
  o.min_len = cfg.data.min_len;
  o.max_len = cfg.data.max_len;
  o.val_fraction = cfg.data.val_fraction;
  o.n_val = cfg.data.n_val;
  o.n_pairs = cfg.data.n_pairs;
  o.n_digits = cfg.data.n_digits;
  o.seed = uint64_t(cfg.train.seed);
  return o;
}

std::unique_ptr<Dataset> make_dataset(const Config& cfg) {
  try {
    if (cfg.data.task == "text")
      return std::make_unique<TextDataset>(cfg.data.path, cfg.data.val_fraction, cfg.model.block_size,
                                           option_name(cfg.model.kind), cfg.data.mask_prob);
    return std::make_unique<TaskDataset>(task_options(cfg), option_name(cfg.model.kind), cfg.model.block_size);
  } catch (const ConfigKeyError& e) {
    config_error(cfg, e.keys, e.what());  // the dataset knows the keys, the config where they were written
  }
}

std::unique_ptr<Dataset> make_training_data(const Config& cfg) {
  std::unique_ptr<Dataset> data = make_dataset(cfg);
  // the attention modules check this too, but only once the model is being built
  if (cfg.model.device == ModelConfig::Device::cuda && !cuda_available())
    config_error(cfg, {"model.device"},
                 fmt::format("cuda needs a build configured with -DATTNLAB_CUDA=ON and a visible GPU (GPU: {}); "
                             "use cpu here",
                             cuda_device_name()));
  return data;
}

}  // namespace attnlab
