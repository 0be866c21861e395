// A TensorBoard event file: the TFRecord framing (length, masked CRC-32C, payload, masked CRC-32C)
// of `Event` protocol buffers, encoded by hand for the three messages a trainer needs (scalar
// summaries, the file version, SessionLog START). TensorBoard's own reader is what the tests read
// it back with. Nothing here may stop training: a failed write is reported once and the file is
// then left alone.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace resumable {

class EventFileWriter {
 public:
  // Creates DIR/events.out.tfevents.<seconds>.<microseconds>.<host>.<pid>: names sort in the
  // order the files were started, which is the order TensorBoard reads a run's files in.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  // SessionLog START at `step`: TensorBoard drops every event of a step >= `step` read before it,
  // which is how a resumed run replaces what the killed one logged after its checkpoint.
  void session_start(int64_t step);
  void flush();

  const std::string& path() const { return path_; }
  bool ok() const { return file_ != nullptr; }

 private:
  void write_event(int64_t step, const std::string& body);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// CRC-32C (Castagnoli), as TFRecord frames use it; exposed for the tests.
uint32_t crc32c(const void* data, size_t size);

}  // namespace resumable
