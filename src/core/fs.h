// Writes that are whole or absent: atomic file replacement, whole appends (a line, a record), fsync.
// Every failure is a UserError that names the file and the cause.
#pragma once
#include <string>
#include <string_view>

namespace attnlab {

// Write `content` to `path` atomically (temp file in the same directory, fsync, rename,
// fsync of the directory). On failure (a full disk, a file-size limit, a read-only
// directory) `path` is left as it was, the temp file is removed, and the UserError names
// `path` and the cause. Test hook: ATTNLAB_TEST_STALL_WRITE_MS=N pauses each such write
// halfway for N ms (unset: no effect), for tests that kill a process mid-write.
void write_file_atomic(const std::string& path, const std::string& content);
// Appends `data` with one write to an O_APPEND descriptor (the file is created if missing). A
// failed or short write cuts the file back to its previous length: no torn record.
void append_bytes(const std::string& path, std::string_view data);
// append_bytes(path, line + "\n"): the line and its newline in one write, so no half line.
void append_line(const std::string& path, const std::string& line);
// fsync a file (a missing file is fine: nothing to sync).
void sync_file(const std::string& path);
// fsync the directory holding `path` (makes a rename or a new file in it durable).
void sync_parent_dir(const std::string& path);
// Ignore SIGXFSZ so that exceeding a file-size limit (ulimit -f) is a write error (EFBIG),
// reported like a full disk, instead of killing the process.
void ignore_file_size_signal();

}  // namespace attnlab
