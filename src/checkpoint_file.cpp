#include "resumable/checkpoint_file.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sys/stat.h>

#include <torch/csrc/jit/serialization/unpickler.h>

#include "resumable/atomic_file.h"
#include "resumable/errors.h"
#include "resumable/pickle_check.h"
#include "resumable/xxhash64.h"

namespace resumable {
namespace {

constexpr const char* kPickle = "data.pkl";
constexpr const char* kTensorDir = "data/";
constexpr const char* kChecksum = "checksum";

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

// The checksum covers records by sorted name, each as name, size and bytes, so a record that is
// renamed, swapped, shortened or altered changes it.
class RecordDigest {
 public:
  void add(const std::string& name, const void* data, size_t size) { records_[name] = {data, size}; }
  std::string finish() const {
    XXH64 h(0x7265'7375'6d61'626cULL);  // "resumabl"
    for (const auto& [name, rec] : records_) {
      uint64_t n = name.size(), s = rec.second;
      h.update(&n, sizeof n);
      h.update(name.data(), name.size());
      h.update(&s, sizeof s);
      h.update(rec.first, rec.second);
    }
    return "xxh64:" + hex64(h.digest());
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

struct Record {
  at::DataPtr data;
  size_t size = 0;
};

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

SerializedCheckpoint serialize_checkpoint(const c10::IValue& state) {
  // Tensors leave the pickler as storages (tensor_table = nullptr) and containers untagged, the
  // two conditions for Python's weights_only loader (libtorch-facts.md).
  std::string pickle;
  torch::jit::Pickler pickler([&](const char* d, size_t n) { pickle.append(d, n); }, nullptr, nullptr, nullptr,
                              nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(state);
  pickler.stop();
  return detail::assemble_archive(pickle, pickler.tensorData());
}

namespace detail {

SerializedCheckpoint assemble_archive(const std::string& pickle, const std::vector<at::Tensor>& storages) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* d, size_t n) {
    out.append(static_cast<const char*>(d), n);
    return n;
  });
  RecordDigest digest;
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
  writer.writeEndOfFile();
  return {std::move(out), checksum};
}

}  // namespace detail

WrittenCheckpoint write_checkpoint(const c10::IValue& state, const std::vector<std::string>& paths) {
  auto start = std::chrono::steady_clock::now();
  SerializedCheckpoint archive;
  try {
    archive = serialize_checkpoint(state);
  } catch (const std::exception& e) {
    throw SaveError(paths.front() + ": cannot serialize checkpoint: " + error_text(e));
  }
  AtomicFileWriter file(paths.front());
  file.write(archive.bytes.data(), archive.bytes.size());
  file.commit_as(paths);
  WrittenCheckpoint w;
  w.bytes = archive.bytes.size();
  w.checksum = archive.checksum;
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return w;
}

LoadedCheckpoint read_checkpoint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw CheckpointError(path + ": cannot open checkpoint: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw CheckpointError(path + ": not a regular file");
  if (st.st_size == 0) throw CheckpointError(path + ": empty file (0 bytes), not a checkpoint");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open checkpoint for reading");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    throw CheckpointError(path + ": read error after " + std::to_string(in.gcount()) + " bytes");
  return parse_checkpoint(std::move(bytes), path);
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
      } else if (name == kPickle || name.rfind(kTensorDir, 0) == 0) {
        digest.add(name, data.get(), n);
        records[name] = Record{std::move(data), n};
      }
    }
    std::string actual = digest.finish();
    if (options.verify_checksum && stored != actual)
      throw CheckpointError(origin + ": checksum mismatch (stored " + first_line(stored.substr(0, 40)) + ", contents give " +
                            actual + "): the file is damaged");
    out.checksum = actual;
    out.root = unpickle(records, reader.version(), origin);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(origin + ": unreadable checkpoint: " + error_text(e));
  }
  if (!out.root.isGenericDict()) throw CheckpointError(origin + ": top level is not a dict");
  auto dict = out.root.toGenericDict();
  auto version = dict.find(std::string("format_version"));
  if (version == dict.end() || !version->value().isInt())
    throw CheckpointError(origin + ": field 'format_version': missing or not an integer");
  int64_t v = version->value().toInt();
  if (v > kCheckpointFormatVersion)
    throw CheckpointError(origin + ": format version " + std::to_string(v) + " is newer than this trainer reads (" +
                          std::to_string(kCheckpointFormatVersion) + "): upgrade the trainer");
  if (v < 1) throw CheckpointError(origin + ": field 'format_version': expected >= 1, found " + std::to_string(v));
  return out;
}

}  // namespace resumable
