#include "resumable/checkpoint/pickle_check.h"

#include <cstdint>
#include <cstdio>

#include "resumable/util/errors.h"

namespace resumable {
namespace {

// How each opcode's argument is laid out (pickletools' ArgumentDescriptor, reduced to sizes).
enum class Arg {
  kNone,
  kFixed,       // `size` bytes
  kCounted,     // a little-endian length of `size` bytes, then that many bytes
  kLine,        // text up to '\n'
  kTwoLines,    // module '\n' name '\n'
  kUnknown,
};
struct OpShape {
  Arg arg = Arg::kUnknown;
  int size = 0;
};

OpShape shape_of(uint8_t op) {
  switch (op) {
    // No argument.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b':
    case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u':
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91:
    case 0x92: case 0x93: case 0x94: case 0x97: case 0x98:  // 0x97/0x98: out-of-band buffers
      return {Arg::kNone, 0};
    case 0x80: case 'K': case 'q': case 'h': case 0x82: return {Arg::kFixed, 1};
    case 'M': case 0x83: return {Arg::kFixed, 2};
    case 'J': case 'r': case 'j': case 0x84: return {Arg::kFixed, 4};
    case 'G': case 0x95: return {Arg::kFixed, 8};
    case 'U': case 'C': case 0x8c: case 0x8a: return {Arg::kCounted, 1};
    case 'T': case 'X': case 'B': case 0x8b: return {Arg::kCounted, 4};
    case 0x8d: case 0x8e: case 0x96: return {Arg::kCounted, 8};
    case 'F': case 'I': case 'L': case 'P': case 'S': case 'V': case 'p': case 'g': return {Arg::kLine, 0};
    case 'c': case 'i': return {Arg::kTwoLines, 0};
    default: return {Arg::kUnknown, 0};
  }
}

uint64_t little_endian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

void check_pickle_structure(std::string_view pickle, const std::string& origin) {
  size_t pos = 0;
  auto fail = [&](const std::string& what) {
    throw CheckpointError(origin + ": pickle record: " + what + " at byte " + std::to_string(pos));
  };
  // Entries the memo holds so far; a valid pickle puts index n only once indices 0..n-1 exist.
  uint64_t memo_size = 0;
  auto put = [&](uint64_t index) {
    if (index > memo_size) fail("memo index " + std::to_string(index) + " skips ahead of " + std::to_string(memo_size) + " entries");
    if (index == memo_size) ++memo_size;
  };
  auto get = [&](uint64_t index) {
    if (index >= memo_size) fail("memo index " + std::to_string(index) + " read before it was stored");
  };
  auto line = [&](size_t from) -> std::string_view {
    size_t end = pickle.find('\n', from);
    if (end == std::string_view::npos) fail("unterminated text argument");
    return pickle.substr(from, end - from);
  };
  auto decimal = [&](std::string_view text) -> uint64_t {
    if (text.empty() || text.size() > 18) fail("bad memo index '" + std::string(text.substr(0, 20)) + "'");
    uint64_t v = 0;
    for (char c : text) {
      if (c < '0' || c > '9') fail("bad memo index '" + std::string(text) + "'");
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  };

  while (pos < pickle.size()) {
    const uint8_t op = static_cast<uint8_t>(pickle[pos]);
    const OpShape shape = shape_of(op);
    const size_t arg = pos + 1;
    const size_t left = pickle.size() - arg;
    size_t next = arg;
    switch (shape.arg) {
      case Arg::kUnknown: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unknown opcode ") + hex);
        break;
      }
      case Arg::kNone:
        if (op == '.') return;  // STOP: the unpickler reads no further
        if (op == 0x94) ++memo_size;  // MEMOIZE
        break;
      case Arg::kFixed: {
        if (left < static_cast<size_t>(shape.size)) fail("truncated argument");
        uint64_t v = little_endian(pickle.data() + arg, shape.size);
        if (op == 'q' || op == 'r') put(v);
        if (op == 'h' || op == 'j') get(v);
        next = arg + static_cast<size_t>(shape.size);
        break;
      }
      case Arg::kCounted: {
        if (left < static_cast<size_t>(shape.size)) fail("truncated length");
        uint64_t n = little_endian(pickle.data() + arg, shape.size);
        if (op == 0x8b && shape.size == 4 && n > INT32_MAX) fail("negative length");  // LONG4 is signed
        if (n > left - static_cast<size_t>(shape.size))
          fail("length " + std::to_string(n) + " runs past the end (" + std::to_string(left - shape.size) + " bytes left)");
        next = arg + static_cast<size_t>(shape.size) + static_cast<size_t>(n);
        break;
      }
      case Arg::kLine: {
        std::string_view text = line(arg);
        if (op == 'p') put(decimal(text));
        if (op == 'g') get(decimal(text));
        next = arg + text.size() + 1;
        break;
      }
      case Arg::kTwoLines: {
        std::string_view module = line(arg);
        std::string_view name = line(arg + module.size() + 1);
        next = arg + module.size() + name.size() + 2;
        break;
      }
    }
    pos = next;
  }
  fail("ends without STOP");
}

}  // namespace resumable
