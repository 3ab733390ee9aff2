// Builds the dataset a config asks for: data.task 'text' -> TextDataset, else a TaskDataset, both
// laid out for model.kind (a task that does not suit the kind is a UserError naming both).
#pragma once
#include <memory>

#include "config/config.h"
#include "data/dataset.h"
#include "data/tasks.h"

namespace attnlab {

// Errors about the config (a task that does not suit the kind, lengths against block_size, n_val
// against the split, vocabulary sizes, a missing data file) name the key at fault with the
// file:line:col where it was written (config_error).
// `tokenizer`: with data.tokenizer bpe, and for data.task parallel, the tokenizer to use instead
// of reading data.tokenizer_file or building one from the data (a checkpoint's own, so that eval
// needs no file and reads new files with the vocabulary it was trained on); ignored otherwise.
std::unique_ptr<Dataset> make_dataset(const Config& cfg, const Tokenizer* tokenizer = nullptr);
// What `attnlab train` checks before it builds the model, and `attnlab config check` runs too:
// make_dataset, then whether model.device can run here. Returns the dataset. `tokenizer`: as
// make_dataset's (train --resume passes the checkpoint's, so a changed or deleted
// data.tokenizer_file does not change a resumed run).
std::unique_ptr<Dataset> make_training_data(const Config& cfg, const Tokenizer* tokenizer = nullptr);
TaskOptions task_options(const Config& cfg);
// The tokenizer data.tokenizer asks for: chars -> the distinct bytes of `text` (Tokenizer::build);
// bpe -> data.tokenizer_file read (`text` unused). Throws ConfigKeyError naming
// data.tokenizer_file when that file cannot be read or is not a byte-level BPE file.
Tokenizer make_text_tokenizer(const Config& cfg, std::string_view text);
// The data a config asks for, in one line, from the config alone (no data is made or read): the
// task and the values of the options it uses, e.g. "dates (val_fraction 0.1, n_val 200)",
// "reverse (n_symbols 8, min_len 4, max_len 8, val_fraction 0.1, n_val 200)", "text data/x.txt
// (val_fraction 0.1)". An unknown task is named as it is.
std::string describe_data_config(const Config& cfg);

}  // namespace attnlab
