#include "core/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace attnlab {

namespace {

// Test hook, inert unless set: ATTNLAB_TEST_STALL_WRITE_MS=N makes every atomic write
// pause N milliseconds after half of its bytes are in the temporary file, so that a
// crash test can land kills inside a checkpoint write (tests/e2e/crash.sh).
int stall_write_ms() {
  static const int ms = [] {
    const char* s = std::getenv("ATTNLAB_TEST_STALL_WRITE_MS");
    return s ? std::max(0, std::atoi(s)) : 0;
  }();
  return ms;
}

// Writes all of [p, p+n) to fd; false with errno set on failure (EFBIG, ENOSPC, EIO, ...).
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

void sync_parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) user_error("cannot sync directory '{}': {}", dir, std::strerror(errno));
  const int rc = ::fsync(fd), e = errno;
  ::close(fd);
  // some file systems cannot fsync a directory (EINVAL): the rename is as durable as they make it
  if (rc != 0 && e != EINVAL) user_error("cannot sync directory '{}': {}", dir, std::strerror(e));
}

void write_file_atomic(const std::string& path, const std::string& content) {
  // content -> path.tmp, fsync, rename over path, fsync the directory (so the rename itself
  // survives a power cut). On any failure the temporary file is removed and `path` keeps its
  // previous content; the error names `path` and the cause (EFBIG from a file-size limit needs
  // SIGXFSZ ignored, see ignore_file_size_signal).
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) user_error("cannot write '{}': {}", path, std::strerror(errno));
  auto fail = [&](int e, const char* doing) {
    ::close(fd);
    ::unlink(tmp.c_str());
    user_error("cannot write '{}': {} ({}; the previous version of the file, if any, is unchanged)", path,
               std::strerror(e), doing);
  };
  const size_t half = stall_write_ms() > 0 ? content.size() / 2 : content.size();
  if (!write_all(fd, content.data(), half)) fail(errno, "writing");
  if (half < content.size()) {
    ::usleep(useconds_t(stall_write_ms()) * 1000);
    if (!write_all(fd, content.data() + half, content.size() - half)) fail(errno, "writing");
  }
  if (::fsync(fd) != 0) fail(errno, "flushing to disk");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    user_error("cannot write '{}': {} (closing)", path, std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    user_error("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(e));
  }
  sync_parent_dir(path);
}

void append_bytes(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) user_error("cannot append to '{}': {}", path, std::strerror(errno));
  struct stat sb {};
  const off_t before = ::fstat(fd, &sb) == 0 ? sb.st_size : -1;
  size_t off = 0;
  int err = 0;
  while (off < data.size()) {
    const ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : EIO;
      break;
    }
    off += size_t(w);
  }
  if (err != 0 && before >= 0) (void)!::ftruncate(fd, before);
  ::close(fd);
  if (err != 0) user_error("cannot append to '{}': {}", path, std::strerror(err));
}

void append_line(const std::string& path, const std::string& line) { append_bytes(path, line + "\n"); }

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return;
    user_error("cannot sync '{}': {}", path, std::strerror(errno));
  }
  const int rc = ::fsync(fd), e = errno;
  ::close(fd);
  if (rc != 0) user_error("cannot sync '{}': {}", path, std::strerror(e));
}

void ignore_file_size_signal() {
  // With a file-size limit (ulimit -f), the write past it raises SIGXFSZ, whose default
  // action kills the process without a word; ignored, the write fails with EFBIG instead and
  // the error says so.
  ::signal(SIGXFSZ, SIG_IGN);
}

}  // namespace attnlab
