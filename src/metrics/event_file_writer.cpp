#include "resumable/metrics/event_file_writer.h"

#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "resumable/util/atomic_file.h"
#include "resumable/util/logging.h"

namespace resumable {
namespace {

// --- protocol buffer wire format, as much as Event needs (tensorflow/core/util/event.proto,
// summary.proto): Event{1: wall_time double, 2: step int64, 3: file_version string, 5: summary,
// 7: session_log (6 is the deprecated log_message)}, Summary{1: repeated Value}, Value{1: tag string, 2: simple_value float},
// SessionLog{1: status enum, START = 1}.

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void tag(std::string& out, int field, int wire_type) { varint(out, static_cast<uint64_t>(field) << 3 | wire_type); }
void bytes_field(std::string& out, int field, const std::string& bytes) {
  tag(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}
template <class T>
void fixed_field(std::string& out, int field, T value) {  // little-endian hosts only (x86, arm)
  tag(out, field, sizeof(T) == 8 ? 1 : 5);
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

double wall_time() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return tv.tv_sec + tv.tv_usec / 1e6;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0x82f63b78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  char name[512];
  std::snprintf(name, sizeof name, "/events.out.tfevents.%010ld.%06ld.%s.%d", static_cast<long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec), host, static_cast<int>(getpid()));
  path_ = dir + name;
  try {
    create_directories(dir);
  } catch (const std::exception& e) {
    log_warn("TensorBoard: cannot create " + dir + ": " + e.what() + "; no event file this run");
    return;
  }
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) {
    log_warn("TensorBoard: cannot create " + path_ + ": " + std::strerror(errno) + "; no event file this run");
    return;
  }
  std::string body;
  bytes_field(body, 3, "brain.Event:2");
  write_event(0, body);
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::scalar(const std::string& name, int64_t step, double value) {
  std::string v, summary, body;
  bytes_field(v, 1, name);
  fixed_field(v, 2, static_cast<float>(value));
  bytes_field(summary, 1, v);
  bytes_field(body, 5, summary);
  write_event(step, body);
}

void EventFileWriter::session_start(int64_t step) {
  std::string log, body;
  tag(log, 1, 0);
  varint(log, 1);  // START
  bytes_field(body, 7, log);
  write_event(step, body);
}

void EventFileWriter::write_event(int64_t step, const std::string& body) {
  if (!file_) return;
  std::string event;
  fixed_field(event, 1, wall_time());
  tag(event, 2, 0);
  varint(event, static_cast<uint64_t>(step));
  event += body;
  uint64_t length = event.size();
  uint32_t length_crc = masked(crc32c(&length, sizeof length)), data_crc = masked(crc32c(event.data(), event.size()));
  std::string record(reinterpret_cast<const char*>(&length), sizeof length);
  record.append(reinterpret_cast<const char*>(&length_crc), sizeof length_crc);
  record += event;
  record.append(reinterpret_cast<const char*>(&data_crc), sizeof data_crc);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) {
    log_warn("TensorBoard: writing " + path_ + " failed: " + std::strerror(errno) + "; no more events this run");
    std::fclose(file_);
    file_ = nullptr;
  }
}

void EventFileWriter::flush() {
  if (file_ && std::fflush(file_) != 0) {
    log_warn("TensorBoard: writing " + path_ + " failed: " + std::strerror(errno) + "; no more events this run");
    std::fclose(file_);
    file_ = nullptr;
  }
}

}  // namespace resumable
