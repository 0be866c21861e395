#include "resumable/checkpoint/checkpoint_file.h"
#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/util/errors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <random>
#include <unistd.h>

#include "../scratch_dir.h"

using namespace resumable;

namespace {

StateDict sample_state() {
  StateDict d = new_state_dict();
  d.insert("format_version", kCheckpointFormatVersion);
  d.insert("name", std::string("tiny"));
  d.insert("lr", 0.125);
  d.insert("flag", true);
  StateDict model = new_state_dict();
  model.insert("w", torch::arange(12, torch::kFloat).reshape({3, 4}));
  model.insert("b", torch::ones({4}, torch::kDouble));
  d.insert("model", model);
  c10::impl::GenericList l(c10::AnyType::get());
  l.push_back(int64_t{1});
  l.push_back(std::string("two"));
  d.insert("list", l);
  return d;
}

std::string temp_path(const std::string& name) {
  return scratch_path("ckfile_" + name);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The message of the CheckpointError that reading `path` raises ("" if it reads).
std::string read_error(const std::string& path) {
  try {
    read_checkpoint(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CheckpointFile, RoundTripsPlainValuesAndTensors) {
  auto path = temp_path("round.pt");
  WrittenCheckpoint w = write_checkpoint(sample_state(), {path});
  EXPECT_GT(w.bytes, 0u);
  EXPECT_EQ(w.checksum.rfind("xxh3:", 0), 0u);
  LoadedCheckpoint ck = read_checkpoint(path);
  EXPECT_EQ(ck.checksum, w.checksum);
  StateReader r(ck.root, path);
  EXPECT_EQ(r["name"].to_string(), "tiny");
  EXPECT_DOUBLE_EQ(r["lr"].to_double(), 0.125);
  EXPECT_TRUE(r["flag"].to_bool());
  EXPECT_TRUE(torch::equal(r["model"]["w"].to_tensor(torch::kFloat, 2), torch::arange(12, torch::kFloat).reshape({3, 4})));
  EXPECT_EQ(r["list"].items()[1].to_string(), "two");
}

TEST(CheckpointFile, SameStateGivesSameBytes) {
  EXPECT_EQ(serialize_checkpoint(sample_state()).bytes, serialize_checkpoint(sample_state()).bytes);
}

TEST(CheckpointFile, EveryTruncationIsRefusedWithTheFileName) {
  std::string bytes = serialize_checkpoint(sample_state()).bytes;
  auto path = temp_path("cut.pt");
  int tried = 0;
  for (size_t cut = 0; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 300)) {
    write_bytes(path, bytes.substr(0, cut));
    std::string e = read_error(path);
    ASSERT_NE(e, "") << "truncated at " << cut << " of " << bytes.size() << " was accepted";
    ASSERT_NE(e.find(path), std::string::npos) << e;
    ASSERT_EQ(e.find('\n'), std::string::npos) << e;
    ++tried;
  }
  EXPECT_GT(tried, 250);
}

TEST(CheckpointFile, EveryBitFlipInTheContentsIsRefused) {
  std::string bytes = serialize_checkpoint(sample_state()).bytes;
  auto path = temp_path("flip.pt");
  std::mt19937 rng(7);
  int refused = 0, tried = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string damaged = bytes;
    size_t pos = rng() % damaged.size();
    damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << (rng() % 8)));
    write_bytes(path, damaged);
    ++tried;
    std::string e = read_error(path);
    if (!e.empty()) {
      ++refused;
      ASSERT_NE(e.find(path), std::string::npos) << e;
      continue;
    }
    // A flip that still reads may only have hit bytes outside the contents (zip metadata such as
    // timestamps or the version record): what was loaded must equal what was written.
    StateReader r(read_checkpoint(path).root, path);
    ASSERT_TRUE(torch::equal(r["model"]["w"].to_tensor(), torch::arange(12, torch::kFloat).reshape({3, 4})))
        << "flip at " << pos << " changed the contents undetected";
    ASSERT_EQ(r["name"].to_string(), "tiny");
  }
  EXPECT_GT(refused, tried / 3);  // the rest hit zip padding and metadata
}

TEST(CheckpointFile, GarbageEmptyAndMissingFilesAreRefused) {
  auto path = temp_path("garbage.pt");
  write_bytes(path, "");
  EXPECT_NE(read_error(path).find("empty file"), std::string::npos);
  std::mt19937 rng(3);
  std::string junk(4096, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  write_bytes(path, junk);
  EXPECT_NE(read_error(path).find("not a checkpoint"), std::string::npos);
  write_bytes(path, "PK\x03\x04" + junk);  // a zip signature in front of junk
  // Said in the user's terms, not the zip reader's ("PytorchStreamReader failed reading ...").
  EXPECT_EQ(read_error(path), path + ": damaged checkpoint: its zip structure is broken (failed reading zip archive: "
                                     "failed finding central directory), as in a file cut short or overwritten");
  EXPECT_EQ(read_error(temp_path("missing.pt")), temp_path("missing.pt") + ": no such checkpoint file");
  EXPECT_NE(read_error(::testing::TempDir()).find("not a regular file"), std::string::npos);
}

TEST(CheckpointFile, NewerFormatAndMissingVersionAreRefused) {
  auto path = temp_path("future.pt");
  StateDict d = sample_state();
  d.insert_or_assign("format_version", kCheckpointFormatVersion + 1);
  write_checkpoint(d, {path});
  EXPECT_NE(read_error(path).find("newer than this trainer reads"), std::string::npos);
  EXPECT_EQ(d.erase("format_version"), 1u);
  write_checkpoint(d, {path});
  EXPECT_NE(read_error(path).find("format_version"), std::string::npos);
}

// A dict holding a 77-element tensor, pickled; BININT1 77 ("K\x4d") appears first as the storage's
// element count, then as the shape. Forgeries rewrite them and add a valid checksum on top.
struct Pickled {
  std::string pickle;
  std::vector<at::Tensor> storages;
};
Pickled pickle_with_77_floats() {
  StateDict d = new_state_dict();
  d.insert("format_version", kCheckpointFormatVersion);
  d.insert("t", torch::zeros({77}));
  Pickled out;
  torch::jit::Pickler p([&](const char* b, size_t n) { out.pickle.append(b, n); }, nullptr, nullptr, nullptr, nullptr, false);
  p.protocol();
  p.pushIValue(d);
  p.stop();
  out.storages = p.tensorData();
  return out;
}
const std::string kBinInt4096("M\x00\x10", 3);

TEST(CheckpointFile, TensorWhoseShapeLiesAboutItsStorageIsRefused) {
  Pickled forged = pickle_with_77_floats();
  auto pos = forged.pickle.rfind(std::string("K\x4d"));
  ASSERT_NE(pos, std::string::npos);
  forged.pickle.replace(pos, 2, kBinInt4096);
  auto path = temp_path("liar.pt");
  write_bytes(path, resumable::detail::assemble_archive(forged.pickle, forged.storages).bytes);
  std::string e;
  try {
    LoadedCheckpoint ck = read_checkpoint(path);
    StateReader(ck.root, path)["t"].to_tensor();
  } catch (const CheckpointError& err) {
    e = err.what();
  }
  EXPECT_NE(e.find(path), std::string::npos) << "a lying shape was accepted";
}

TEST(CheckpointFile, StorageLargerThanItsRecordIsRefused) {
  // Storage count and shape both say 4096 floats; the record holds 77. libtorch would size the
  // storage from the pickle and a read would run 16 KB past the 308-byte buffer.
  Pickled forged = pickle_with_77_floats();
  for (size_t pos; (pos = forged.pickle.find(std::string("K\x4d"))) != std::string::npos;)
    forged.pickle.replace(pos, 2, kBinInt4096);
  auto path = temp_path("big-storage.pt");
  write_bytes(path, resumable::detail::assemble_archive(forged.pickle, forged.storages).bytes);
  EXPECT_EQ(read_error(path), path + ": a tensor storage claims 16384 bytes, its record holds 308");
}

TEST(CheckpointFile, ForgedPickleNeverReachesTheUnpicklerWithAHugeMemoIndex) {
  // The fuzzer's find, behind a valid checksum: LONG_BINPUT 0x883e7cf0 makes libtorch's unpickler
  // resize its memo table to ~36 GB. The structural check refuses it first, naming the file.
  auto archive = resumable::detail::assemble_archive(std::string("\x80\x02}r\xf0\x7c\x3e\x88.", 9), {});
  auto path = temp_path("forged-memo.pt");
  write_bytes(path, archive.bytes);
  EXPECT_EQ(read_error(path), path + ": pickle record: memo index 2285796592 skips ahead of 0 entries at byte 3");
}

TEST(CheckpointFile, ChecksumRecordIsRequired) {
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter w([&](const void* d, size_t n) {
    bytes.append(static_cast<const char*>(d), n);
    return n;
  });
  std::string pkl = "\x80\x02}q\x00.";  // an empty dict
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  w.writeEndOfFile();
  auto path = temp_path("nosum.pt");
  write_bytes(path, bytes);
  EXPECT_NE(read_error(path).find("no checksum record"), std::string::npos);
}

TEST(CheckpointFile, WriteToAMissingDirectoryIsASaveError) {
  EXPECT_THROW(write_checkpoint(sample_state(), {"/nonexistent-dir/ck.pt"}), SaveError);
}

TEST(CheckpointFile, AStreamThatFailsMidwayThrowsItsErrorOnce) {
  // A disk that fills up in the middle of the archive: the sink's error comes out of the writer
  // (which must never see it: it would throw again from its destructor and terminate).
  const std::string pickle("\x80\x02}q\x00.", 6);
  const std::vector<at::Tensor> storages{torch::randn({4096})};
  std::string whole;
  resumable::detail::write_archive(pickle, storages, "",
                                   [&](const void* d, size_t n) { whole.append(static_cast<const char*>(d), n); });
  ASSERT_GT(whole.size(), 16384u);
  for (size_t limit : {size_t{0}, size_t{100}, whole.size() / 2, whole.size() - 1}) {
    size_t written = 0;
    int calls_after_failure = 0;
    bool failed = false;
    auto sink = [&](const void*, size_t n) {
      if (failed) ++calls_after_failure;
      if (written + n > limit) {
        failed = true;
        throw SaveError("ck.pt: cannot write: No space left on device", ENOSPC);
      }
      written += n;
    };
    try {
      resumable::detail::write_archive(pickle, storages, "", sink);
      ADD_FAILURE() << "no error at limit " << limit;
    } catch (const SaveError& e) {
      EXPECT_EQ(e.error_code(), ENOSPC) << e.what();
    }
    EXPECT_EQ(calls_after_failure, 0) << "the failed sink was called again";
  }
}
