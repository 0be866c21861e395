#include "resumable/checkpoint/checkpoint_file.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <torch/csrc/jit/serialization/unpickler.h>

#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"
#include "resumable/checkpoint/pickle_check.h"
#include "resumable/util/xxhash64.h"

namespace resumable {
namespace {

constexpr const char* kPickle = "data.pkl";
constexpr const char* kTensorDir = "data/";
constexpr const char* kChecksum = "checksum";
constexpr const char* kMeta = "meta";

// c10::Error text carries a C++ backtrace; users get its first line only.
std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  std::string line = nl == std::string::npos ? s : s.substr(0, nl);
  return line.size() > 200 ? line.substr(0, 197) + "..." : line;
}

std::string error_text(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

// What the zip reader says, in the user's terms: it names its own class ("PytorchStreamReader
// failed reading zip archive: failed finding central directory"), which tells a user nothing.
std::string unreadable_text(const std::exception& e) {
  static const std::string kReader = "PytorchStreamReader ";
  std::string raw = error_text(e);
  if (raw.rfind(kReader + "failed ", 0) != 0) return "unreadable checkpoint: " + raw;
  // Its first sentence says what failed; the rest ("This is an internal miniz error. If you are
  // seeing this error, ...") guesses at causes for the reader's own users.
  std::string what = raw.substr(kReader.size());
  what = what.substr(0, what.find(". "));
  return "damaged checkpoint: its zip structure is broken (" + what + "), as in a file cut short or overwritten";
}

// The checksum covers records by sorted name, each as name, size and bytes, so a record that is
// renamed, swapped, shortened or altered changes it. New files use XXH3; files written before it
// carry XXH64, and each is verified with the algorithm its checksum names.
class RecordDigest {
 public:
  void add(const std::string& name, const void* data, size_t size) { records_[name] = {data, size}; }
  template <class Hash>
  std::string finish(const char* algorithm) const {
    Hash h(0x7265'7375'6d61'626cULL);  // "resumabl"
    for (const auto& [name, rec] : records_) {
      uint64_t n = name.size(), s = rec.second;
      h.update(&n, sizeof n);
      h.update(name.data(), name.size());
      h.update(&s, sizeof s);
      h.update(rec.first, rec.second);
    }
    return std::string(algorithm) + ":" + hex64(h.digest());
  }
  std::string finish() const { return finish<XXH3>("xxh3"); }
  // The digest of the algorithm `stored` names; empty when this trainer does not know it.
  std::string finish_like(const std::string& stored) const {
    if (stored.rfind("xxh3:", 0) == 0) return finish<XXH3>("xxh3");
    if (stored.rfind("xxh64:", 0) == 0) return finish<XXH64>("xxh64");
    return "";
  }

 private:
  std::map<std::string, std::pair<const void*, size_t>> records_;
};

class MemoryReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

// Reads a file through its descriptor, so the size and the bytes come from the same open file.
// I/O errors cannot cross the zip reader (C code): they are kept here and reported afterwards.
class FdReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  FdReader(int fd, size_t size) : fd_(fd), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(pos + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) error_ = errno;
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  int error() const { return error_; }

 private:
  int fd_;
  size_t size_;
  mutable int error_ = 0;
};

// An open checkpoint file: descriptor and size from fstat on it (never a stat of the path, which
// may name another file by the time it is opened). Errors are the file system's: kUnreadable.
class OpenFile {
 public:
  explicit OpenFile(const std::string& path) : path_(path) {
    // O_NONBLOCK: a FIFO under a checkpoint's name must not block the open (regular files ignore it).
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) unreadable("cannot open checkpoint", errno);
    struct stat st;
    try {
      if (::fstat(fd_, &st) != 0) unreadable("cannot stat checkpoint", errno);
      if (!S_ISREG(st.st_mode)) throw CheckpointError(path + ": not a regular file");
      if (st.st_size == 0) throw CheckpointError(path + ": empty file (0 bytes), not a checkpoint");
    } catch (...) {
      ::close(fd_);  // no destructor runs for a constructor that throws
      throw;
    }
    size_ = static_cast<size_t>(st.st_size);
  }
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  size_t size() const { return size_; }
  [[noreturn]] void unreadable(const std::string& what, int err) const {
    if (err == ENOENT) throw CheckpointError(path_ + ": no such checkpoint file", CheckpointError::Kind::kUnreadable);
    throw CheckpointError(path_ + ": " + what + ": " + std::strerror(err) +
                              " (a file system error, not damage: the file is left as it is)",
                          CheckpointError::Kind::kUnreadable);
  }

 private:
  std::string path_;
  int fd_ = -1;
  size_t size_ = 0;
};

struct Record {
  at::DataPtr data;
  size_t size = 0;
};

CheckpointMeta parse_meta(const std::string& record, const std::string& origin) {
  auto bad = [&](const std::string& why) -> CheckpointError {
    return CheckpointError(origin + ": record 'meta': " + why);
  };
  auto nl = record.rfind('\n');
  if (nl == std::string::npos) throw bad("no checksum line");
  std::string text = record.substr(0, nl);
  if (record.substr(nl + 1) != "xxh64:" + hex64(xxhash64(text))) throw bad("checksum mismatch: the file is damaged");
  CheckpointMeta m;
  try {
    auto j = nlohmann::json::parse(text);
    m.step = j.at("step").get<int64_t>();
    m.epoch = j.at("epoch").get<int64_t>();
    m.segment = j.at("segment").get<int64_t>();
    m.saved_at = j.at("saved_at").get<int64_t>();
    if (j.contains("after_failure")) m.after_failure = j.at("after_failure").get<std::string>();
    for (const auto& a : j.at("resumed_from"))
      m.resumed_from.push_back({a.at("checksum").get<std::string>(), a.at("path").get<std::string>()});
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("unexpected contents (") + e.what() + ")");
  }
  if (m.step < 0 || m.epoch < 0 || m.segment < 0) throw bad("negative step, epoch or segment");
  return m;
}

// Every tensor's storage must lie inside the record it came from. libtorch sizes a storage by the
// element count written in the pickle, not by its record, so a forged count would let a later read
// run past the buffer. Iterative: a forged pickle may nest containers deeper than the C++ stack.
void check_storages(const c10::IValue& root, const std::map<const void*, size_t>& record_bytes, const std::string& origin) {
  std::vector<const c10::IValue*> todo{&root};
  while (!todo.empty()) {
    const c10::IValue* v = todo.back();
    todo.pop_back();
    if (v->isTensor()) {
      const at::Tensor& t = v->toTensor();
      if (!t.has_storage()) continue;
      size_t need = t.storage().nbytes();
      if (need == 0) continue;
      auto it = record_bytes.find(t.storage().data());
      size_t have = it == record_bytes.end() ? 0 : it->second;
      if (need > have)
        throw CheckpointError(origin + ": a tensor storage claims " + std::to_string(need) + " bytes, its record holds " +
                              std::to_string(have));
    } else if (v->isGenericDict()) {
      for (const auto& kv : v->toGenericDict()) {
        todo.push_back(&kv.key());
        todo.push_back(&kv.value());
      }
    } else if (v->isList()) {
      for (const c10::IValue& item : v->toListRef()) todo.push_back(&item);
    } else if (v->isTuple()) {
      for (const c10::IValue& item : v->toTupleRef().elements()) todo.push_back(&item);
    }
  }
}

// Unpickles the verified records: the pickle is walked first (check_pickle_structure), tensor
// records are handed over from memory (each once), and every storage is checked against its record.
c10::IValue unpickle(std::map<std::string, Record>& records, uint64_t version, const std::string& origin) {
  const Record& pickle = records.at(kPickle);  // parse_checkpoint has checked that it is there
  std::string_view text(static_cast<const char*>(pickle.data.get()), pickle.size);
  check_pickle_structure(text, origin);
  size_t pos = 0;
  auto read = [&](char* buf, size_t n) {
    n = std::min(n, text.size() - pos);
    std::memcpy(buf, text.data() + pos, n);
    pos += n;
    return n;
  };
  std::map<const void*, size_t> record_bytes;
  auto read_record = [&](const std::string& key) -> at::DataPtr {
    auto it = records.find(kTensorDir + key);
    if (it == records.end() || (it->second.size > 0 && !it->second.data))
      throw CheckpointError(origin + ": the pickle names tensor record '" + key + "', which is missing or used twice");
    record_bytes[it->second.data.get()] = it->second.size;
    return std::move(it->second.data);
  };
  auto no_classes = [&](const c10::QualifiedName& name) -> c10::StrongTypePtr {
    throw CheckpointError(origin + ": the pickle names class '" + name.qualifiedName() + "': not plain data");
  };
  torch::jit::Unpickler unpickler(read, no_classes, nullptr, read_record, at::Device(at::kCPU));
  unpickler.set_version(version);
  c10::IValue root = unpickler.parse_ivalue();
  check_storages(root, record_bytes, origin);
  return root;
}

}  // namespace

namespace {

// The pickle of `state` and the tensor storages it references.
struct Pickled {
  std::string pickle;
  std::vector<at::Tensor> storages;
};
Pickled pickle_state(const c10::IValue& state) {
  // Tensors leave the pickler as storages (tensor_table = nullptr) and containers untagged, the
  // two conditions for Python's weights_only loader (libtorch-facts.md).
  Pickled out;
  torch::jit::Pickler pickler([&](const char* d, size_t n) { out.pickle.append(d, n); }, nullptr, nullptr, nullptr,
                              nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(state);
  pickler.stop();
  out.storages = pickler.tensorData();
  return out;
}

}  // namespace

SerializedCheckpoint serialize_checkpoint(const c10::IValue& state, const CheckpointMeta* meta) {
  Pickled p = pickle_state(state);
  return detail::assemble_archive(p.pickle, p.storages, meta ? detail::meta_record_text(*meta) : "");
}

bool CheckpointMeta::descends_from(const std::string& checksum, const std::string& path) const {
  for (const auto& a : resumed_from)
    if ((!checksum.empty() && a.checksum == checksum) || (!path.empty() && a.path == path)) return true;
  return false;
}

namespace detail {

std::string meta_record_text(const CheckpointMeta& m) {
  nlohmann::json ancestors = nlohmann::json::array();
  for (const auto& a : m.resumed_from) ancestors.push_back({{"checksum", a.checksum}, {"path", a.path}});
  nlohmann::json j{{"step", m.step},
                   {"epoch", m.epoch},
                   {"segment", m.segment},
                   {"saved_at", m.saved_at},
                   {"resumed_from", ancestors}};
  if (!m.after_failure.empty()) j["after_failure"] = m.after_failure;  // absent: files stay as they were
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text + "\n" + "xxh64:" + hex64(xxhash64(text));
}

std::string write_archive(const std::string& pickle, const std::vector<at::Tensor>& storages,
                          const std::string& meta_text, const std::function<void(const void*, size_t)>& sink) {
  // The zip writer must never see a failed write: it is C underneath (no exception may cross
  // it), and a writer that failed throws again from its destructor, which terminates. The first
  // failure is kept, the rest of the archive goes nowhere, and the failure is thrown at the end.
  std::exception_ptr sink_error;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* d, size_t n) -> size_t {
    if (sink_error) return n;
    try {
      sink(d, n);
    } catch (...) {
      sink_error = std::current_exception();
    }
    return n;
  });
  RecordDigest digest;
  try {
    for (size_t i = 0; i < storages.size(); ++i) {
      at::Tensor t = storages[i].device().is_cpu() ? storages[i] : storages[i].cpu();
      std::string name = kTensorDir + std::to_string(i);
      const void* data = t.storage().data();
      size_t size = t.storage().nbytes();
      writer.writeRecord(name, data, size);
      digest.add(name, data, size);
    }
    writer.writeRecord(kPickle, pickle.data(), pickle.size());
    digest.add(kPickle, pickle.data(), pickle.size());
    std::string checksum = digest.finish();
    writer.writeRecord(kChecksum, checksum.data(), checksum.size());
    // Outside the main checksum (it has its own), so trainers that predate it still read the file.
    if (!meta_text.empty()) writer.writeRecord(kMeta, meta_text.data(), meta_text.size());
    writer.writeEndOfFile();
    if (sink_error) std::rethrow_exception(sink_error);
    return checksum;
  } catch (...) {
    if (sink_error) std::rethrow_exception(sink_error);
    throw;
  }
}

SerializedCheckpoint assemble_archive(const std::string& pickle, const std::vector<at::Tensor>& storages,
                                      const std::string& meta_text) {
  SerializedCheckpoint out;
  out.checksum = write_archive(pickle, storages, meta_text, [&](const void* d, size_t n) {
    out.bytes.append(static_cast<const char*>(d), n);
  });
  return out;
}

}  // namespace detail

WrittenCheckpoint write_checkpoint(const c10::IValue& state, const std::vector<std::string>& paths,
                                   const CheckpointMeta* meta) {
  auto start = std::chrono::steady_clock::now();
  Pickled p;
  try {
    p = pickle_state(state);
  } catch (const std::exception& e) {
    throw SaveError(paths.front() + ": cannot serialize checkpoint: " + error_text(e));
  }
  // Streamed into the file: no second copy of the tensors in memory, no buffer to grow.
  AtomicFileWriter file(paths.front(), AtomicFileWriter::Caching::kDirect);
  std::string checksum;
  try {
    checksum = detail::write_archive(p.pickle, p.storages, meta ? detail::meta_record_text(*meta) : "",
                                     [&](const void* d, size_t n) { file.write(d, n); });
  } catch (const SaveError&) {
    throw;
  } catch (const std::exception& e) {
    throw SaveError(paths.front() + ": cannot serialize checkpoint: " + error_text(e));
  }
  const size_t bytes = file.bytes_written();
  AtomicFileWriter::Published published = file.commit_as(paths);
  WrittenCheckpoint w;
  w.published = std::move(published.names);
  w.problems = std::move(published.problems);
  w.bytes = bytes;
  w.checksum = checksum;
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return w;
}

LoadedCheckpoint read_checkpoint(const std::string& path) {
  // Test-only switch: RESUMABLE_TEST_READ_DELAY_MS=N makes every full read take N ms longer, as on
  // a slow file system, so tests can show what the other ranks do while one reads. Unset in real runs.
  static const int delay_ms = [] {
    const char* v = std::getenv("RESUMABLE_TEST_READ_DELAY_MS");
    return v ? std::atoi(v) : 0;
  }();
  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  auto start = std::chrono::steady_clock::now();
  OpenFile file(path);
  std::string bytes(file.size(), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(file.fd(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) file.unreadable("read error after " + std::to_string(done) + " bytes", errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  // Shorter than fstat said: the file shrank under us (another writer); not damage of the file.
  if (done != bytes.size())
    throw CheckpointError(path + ": changed while being read (" + std::to_string(done) + " of " +
                              std::to_string(bytes.size()) + " bytes)",
                          CheckpointError::Kind::kUnreadable);
  LoadedCheckpoint ck = parse_checkpoint(std::move(bytes), path);
  ck.read_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return ck;
}

std::optional<CheckpointMeta> read_checkpoint_meta(const std::string& path) {
  OpenFile file(path);
  auto reader_input = std::make_shared<FdReader>(file.fd(), file.size());
  try {
    caffe2::serialize::PyTorchStreamReader reader(reader_input);
    if (!reader.hasRecord(kMeta)) return std::nullopt;
    if (reader.getRecordSize(kMeta) > (1u << 24)) throw CheckpointError(path + ": record 'meta' is implausibly large");
    auto [data, n] = reader.getRecord(kMeta);
    return parse_meta(std::string(static_cast<const char*>(data.get()), n), path);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    if (reader_input->error()) file.unreadable("read error", reader_input->error());
    throw CheckpointError(path + ": " + unreadable_text(e));
  }
}

LoadedCheckpoint parse_checkpoint(std::string bytes, const std::string& origin, ReadOptions options) {
  LoadedCheckpoint out;
  out.path = origin;
  out.bytes = bytes.size();
  if (bytes.size() < 22) throw CheckpointError(origin + ": " + std::to_string(bytes.size()) + " bytes, too short for a checkpoint");
  if (bytes.compare(0, 4, "PK\x03\x04") != 0)
    throw CheckpointError(origin + ": not a checkpoint (no zip signature; truncated at the start or another file type)");
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<MemoryReader>(bytes));
    if (!reader.hasRecord(kPickle)) throw CheckpointError(origin + ": no " + std::string(kPickle) + " record: not a PyTorch checkpoint");
    if (!reader.hasRecord(kChecksum))
      throw CheckpointError(origin + ": no checksum record: not written by this trainer, or damaged");
    // Records are read into memory once; a size beyond the file means a forged or damaged directory.
    std::map<std::string, Record> records;
    RecordDigest digest;
    std::string stored;
    for (const auto& name : reader.getAllRecords()) {
      size_t size = reader.getRecordSize(name);
      if (size > bytes.size())
        throw CheckpointError(origin + ": record '" + name + "' claims " + std::to_string(size) + " bytes, more than the file");
      auto [data, n] = reader.getRecord(name);
      if (name == kChecksum) {
        stored.assign(static_cast<const char*>(data.get()), n);
      } else if (name == kMeta) {
        out.meta = parse_meta(std::string(static_cast<const char*>(data.get()), n), origin);
      } else if (name == kPickle || name.rfind(kTensorDir, 0) == 0) {
        digest.add(name, data.get(), n);
        records[name] = Record{std::move(data), n};
      }
    }
    std::string actual = digest.finish_like(stored);
    if (actual.empty() && options.verify_checksum)
      throw CheckpointError(origin + ": checksum algorithm '" + first_line(stored.substr(0, stored.find(':')).substr(0, 20)) +
                                "' is not one this trainer knows (xxh3, xxh64): written by a newer trainer? upgrade the trainer",
                            CheckpointError::Kind::kIncompatible);
    if (actual.empty()) actual = digest.finish();
    if (options.verify_checksum && stored != actual)
      throw CheckpointError(origin + ": checksum mismatch (stored " + first_line(stored.substr(0, 40)) + ", contents give " +
                            actual + "): the file is damaged");
    out.checksum = actual;
    out.root = unpickle(records, reader.version(), origin);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(origin + ": " + unreadable_text(e));
  }
  if (!out.root.isGenericDict()) throw CheckpointError(origin + ": top level is not a dict");
  auto dict = out.root.toGenericDict();
  auto version = dict.find(std::string("format_version"));
  if (version == dict.end() || !version->value().isInt())
    throw CheckpointError(origin + ": field 'format_version': missing or not an integer");
  int64_t v = version->value().toInt();
  if (v > kCheckpointFormatVersion)
    throw CheckpointError(origin + ": format version " + std::to_string(v) + " is newer than this trainer reads (" +
                              std::to_string(kCheckpointFormatVersion) + "): upgrade the trainer",
                          CheckpointError::Kind::kIncompatible);
  if (v < 1) throw CheckpointError(origin + ": field 'format_version': expected >= 1, found " + std::to_string(v));
  return out;
}

}  // namespace resumable
