#include "layers/safetensors/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/errno_status.h"
#include "layers/safetensors/format.h"
#include "nlohmann/json.hpp"

namespace normgraph::safetensors {
namespace {

using Json = nlohmann::json;

// JSON nesting deeper than this cannot be a valid header (root -> entry ->
// shape array).
constexpr int kMaxDepth = 4;

absl::Status Corrupt(absl::string_view source, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("safetensors ", source, ": ", what));
}

absl::Status CorruptTensor(absl::string_view source, absl::string_view name,
                           absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("safetensors ", source, ": tensor '", name, "': ", what));
}

// Rejects headers nested deeper than kMaxDepth before the JSON parser sees
// them.
bool NestingWithin(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// The kind of a JSON value the header pass saw (it builds none): a field's
// value, an array element.
enum class ValueKind : uint8_t { kAbsent, kUnsigned, kString, kArray, kOther };

// One entry of the header's root object as the pass saw it, before it is
// validated: the fields the format knows (their values' kinds, the dtype
// string, the array elements that are integers of uint64, nullopt for any
// other element) and the smallest unknown field name.
struct RawEntry {
  std::string name;
  bool is_object = false;
  ValueKind dtype_kind = ValueKind::kAbsent;
  std::string dtype;
  ValueKind shape_kind = ValueKind::kAbsent;
  std::vector<std::optional<uint64_t>> shape;
  ValueKind offsets_kind = ValueKind::kAbsent;
  std::vector<std::optional<uint64_t>> offsets;
  std::optional<std::string> first_unknown_field;
};

// One pass of nlohmann's SAX parser over the header that keeps what the
// reader needs, instead of a JSON document (whose map nodes cost a multiple
// of the parse) and a second pass for duplicate keys. It records whether the
// header is valid JSON (the parse's result), the first key that repeats within
// any one object (nlohmann's document would keep the last silently), whether
// the root is an object, its entries (RawEntry) and __metadata__ (each value
// a string, or nullopt). Validation happens afterwards, in the order the
// checks have always run (entries by name), so a header with several faults
// reports the same one.
class HeaderPass {
 public:
  bool null() {
    // `"__metadata__": null` is no metadata (the reference's Option).
    if (depth_ == 1 && Top().role == Role::kRoot && IsMetadata()) {
      metadata_is_null_ = true;
    }
    return Value(ValueKind::kOther);
  }
  bool boolean(bool) { return Value(ValueKind::kOther); }
  bool number_integer(Json::number_integer_t) {
    return Value(ValueKind::kOther);
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    return Value(ValueKind::kUnsigned, v);
  }
  bool number_float(Json::number_float_t, const Json::string_t&) {
    return Value(ValueKind::kOther);
  }
  bool string(Json::string_t& v) { return Value(ValueKind::kString, 0, &v); }
  bool binary(Json::binary_t&) { return Value(ValueKind::kOther); }
  bool start_object(std::size_t) {
    Role role = Role::kIgnored;
    if (depth_ == 0) {
      role = Role::kRoot;
      root_is_object_ = true;
    } else if (Top().role == Role::kRoot) {
      role = IsMetadata() ? Role::kMetadata : Role::kEntry;
      if (role == Role::kEntry) entries_.back().is_object = true;
      if (role == Role::kMetadata) metadata_is_object_ = true;
    } else {
      Value(ValueKind::kOther);
    }
    Push(role);
    return true;
  }
  bool key(Json::string_t& key) {
    Frame& frame = Top();
    // A hash set per object, however many keys a hostile header gives it.
    if (!frame.keys.insert(key).second) NoteDuplicate(key);
    if (frame.role == Role::kRoot) {
      if (key == kMetadataKey) {
        metadata_seen_ = true;
      } else {
        entries_.emplace_back();
        entries_.back().name = key;
      }
    }
    frame.key = key;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    Role role = Role::kIgnored;
    if (depth_ > 0 && Top().role == Role::kEntry) {
      if (Top().key == "shape") role = Role::kShape;
      if (Top().key == "data_offsets") role = Role::kOffsets;
    }
    Value(ValueKind::kArray);
    Push(role);
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) {
    return false;
  }

  static constexpr absl::string_view kMetadataKey = "__metadata__";

  const std::optional<std::string>& duplicate() const { return duplicate_; }
  bool root_is_object() const { return root_is_object_; }
  std::vector<RawEntry>& entries() { return entries_; }
  bool metadata_seen() const { return metadata_seen_; }
  bool metadata_is_object() const { return metadata_is_object_; }
  bool metadata_is_null() const { return metadata_is_null_; }
  std::vector<std::pair<std::string, std::optional<std::string>>>& metadata() {
    return metadata_;
  }

 private:
  enum class Role : uint8_t {
    kRoot,
    kEntry,
    kMetadata,
    kShape,
    kOffsets,
    kIgnored
  };
  struct Frame {
    Role role = Role::kIgnored;
    std::string key;                        // an object's current key
    absl::flat_hash_set<std::string> keys;  // its keys so far
  };

  // The open containers, innermost last: frames_[0, depth_), whose storage
  // (keys' strings) is reused from one entry to the next.
  Frame& Top() { return frames_[depth_ - 1]; }
  void Push(Role role) {
    if (depth_ == frames_.size()) frames_.emplace_back();
    Frame& frame = frames_[depth_++];
    frame.role = role;
    frame.key.clear();
    frame.keys.clear();
  }
  bool IsMetadata() { return Top().key == kMetadataKey; }

  void NoteDuplicate(const std::string& key) {
    if (!duplicate_) duplicate_ = key;
  }

  // A value (or the start of a container: kArray, or kOther for an object
  // that is not an entry) inside the innermost open container.
  bool Value(ValueKind kind, uint64_t number = 0,
             const std::string* text = nullptr) {
    if (depth_ == 0) return true;  // a root that is not an object
    Frame& frame = Top();
    switch (frame.role) {
      case Role::kRoot:
        // An entry or __metadata__ that is not an object: is_object and
        // metadata_is_object stay false.
        break;
      case Role::kMetadata:
        metadata_.emplace_back(frame.key,
                               kind == ValueKind::kString
                                   ? std::optional<std::string>(*text)
                                   : std::nullopt);
        break;
      case Role::kEntry: {
        RawEntry& entry = entries_.back();
        if (frame.key == "dtype") {
          entry.dtype_kind = kind;
          if (kind == ValueKind::kString) entry.dtype = *text;
        } else if (frame.key == "shape") {
          entry.shape_kind = kind;
        } else if (frame.key == "data_offsets") {
          entry.offsets_kind = kind;
        } else if (!entry.first_unknown_field ||
                   frame.key < *entry.first_unknown_field) {
          entry.first_unknown_field = frame.key;
        }
        break;
      }
      case Role::kShape:
      case Role::kOffsets: {
        std::vector<std::optional<uint64_t>>& elements =
            frame.role == Role::kShape ? entries_.back().shape
                                       : entries_.back().offsets;
        elements.push_back(kind == ValueKind::kUnsigned
                               ? std::optional<uint64_t>(number)
                               : std::nullopt);
        break;
      }
      case Role::kIgnored:
        break;
    }
    return true;
  }

  std::vector<Frame> frames_;
  size_t depth_ = 0;
  std::optional<std::string> duplicate_;
  bool root_is_object_ = false;
  std::vector<RawEntry> entries_;
  bool metadata_seen_ = false;
  bool metadata_is_object_ = false;
  bool metadata_is_null_ = false;
  std::vector<std::pair<std::string, std::optional<std::string>>> metadata_;
};

struct Parsed {
  std::vector<TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
};

// Validates one entry and, if it is well formed, returns it.
absl::StatusOr<TensorEntry> ValidateEntry(RawEntry& raw, const uint8_t* data,
                                          size_t data_len,
                                          absl::string_view source) {
  const std::string& name = raw.name;
  if (name.empty()) return Corrupt(source, "a tensor has an empty name");
  if (!raw.is_object) {
    return CorruptTensor(source, name, "entry is not an object");
  }
  if (raw.first_unknown_field) {
    return CorruptTensor(
        source, name,
        absl::StrCat("unknown field '", *raw.first_unknown_field, "'"));
  }
  TensorEntry entry;
  entry.name = std::move(raw.name);
  if (raw.dtype_kind != ValueKind::kString) {
    return CorruptTensor(source, entry.name, "missing or non-string dtype");
  }
  entry.dtype_name = std::move(raw.dtype);
  const std::optional<size_t> element_bits = ElementBits(entry.dtype_name);
  if (!element_bits) {
    return CorruptTensor(
        source, entry.name,
        absl::StrCat("unknown dtype '", entry.dtype_name, "'"));
  }
  entry.dtype = ToDType(entry.dtype_name);

  if (raw.shape_kind != ValueKind::kArray) {
    return CorruptTensor(source, entry.name, "missing or non-array shape");
  }
  uint64_t numel = 1;
  entry.shape.reserve(raw.shape.size());
  for (const std::optional<uint64_t>& dim : raw.shape) {
    if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) {
      return CorruptTensor(
          source, entry.name,
          "shape has a dimension that is not a non-negative int64");
    }
    if (*dim != 0 && numel > UINT64_MAX / *dim) {
      return CorruptTensor(source, entry.name, "element count overflows");
    }
    numel *= *dim;
    entry.shape.push_back(static_cast<int64_t>(*dim));
  }
  if (numel > UINT64_MAX / *element_bits) {
    return CorruptTensor(source, entry.name, "byte count overflows");
  }
  if (numel * *element_bits % 8 != 0) {
    return CorruptTensor(
        source, entry.name,
        absl::StrFormat("%d elements of %s (%d bits each) do not fill whole "
                        "bytes",
                        numel, entry.dtype_name, *element_bits));
  }
  const uint64_t want_bytes = numel * *element_bits / 8;

  if (raw.offsets_kind != ValueKind::kArray || raw.offsets.size() != 2) {
    return CorruptTensor(source, entry.name,
                         "data_offsets must be an array [begin, end]");
  }
  const std::optional<uint64_t> begin = raw.offsets[0];
  const std::optional<uint64_t> end = raw.offsets[1];
  if (!begin || !end) {
    return CorruptTensor(source, entry.name,
                         "data_offsets are not non-negative integers");
  }
  if (*begin > *end || *end > data_len) {
    return CorruptTensor(
        source, entry.name,
        absl::StrFormat(
            "data_offsets [%d, %d] outside the %d-byte data section", *begin,
            *end, data_len));
  }
  if (*end - *begin != want_bytes) {
    return CorruptTensor(
        source, entry.name,
        absl::StrFormat(
            "data_offsets [%d, %d] hold %d bytes, but %s%s needs %d", *begin,
            *end, *end - *begin, entry.dtype_name, ShapeToString(entry.shape),
            want_bytes));
  }
  entry.data = data + *begin;
  entry.bytes = static_cast<size_t>(want_bytes);
  return entry;
}

absl::StatusOr<Parsed> ParseHeader(absl::string_view header,
                                   const uint8_t* data, size_t data_len,
                                   absl::string_view source) {
  if (!NestingWithin(header, kMaxDepth)) {
    return Corrupt(
        source, absl::StrCat("header JSON is nested deeper than ", kMaxDepth));
  }
  // The format's header begins with '{' and is JSON to its last byte (spaces
  // pad it). nlohmann's parser would skip a UTF-8 byte order mark and stop
  // at a NUL byte, accepting whatever follows.
  if (header.empty() || header.front() != '{') {
    return Corrupt(source, "header does not begin with '{'");
  }
  if (const size_t nul = header.find('\0'); nul != header.npos) {
    return Corrupt(source, absl::StrCat("header holds a NUL byte at offset ",
                                        8 + nul, " (not JSON)"));
  }
  HeaderPass pass;
  if (!Json::sax_parse(header.begin(), header.end(), &pass)) {
    return Corrupt(source, "header is not valid JSON");
  }
  if (pass.duplicate()) {
    return Corrupt(source, absl::StrCat("header has duplicate key '",
                                        *pass.duplicate(), "'"));
  }
  if (!pass.root_is_object()) {
    return Corrupt(source, "header JSON is not an object");
  }

  // Names in the order of their bytes, as a JSON document's map keeps them:
  // the first faulty entry in that order is the one reported. __metadata__
  // takes its place in that order too.
  std::vector<RawEntry>& entries = pass.entries();
  std::sort(
      entries.begin(), entries.end(),
      [](const RawEntry& a, const RawEntry& b) { return a.name < b.name; });
  Parsed out;
  out.tensors.reserve(entries.size());
  bool metadata_done = !pass.metadata_seen();
  auto take_metadata = [&]() -> absl::Status {
    metadata_done = true;
    if (pass.metadata_is_null()) return absl::OkStatus();
    if (!pass.metadata_is_object()) {
      return Corrupt(source, "__metadata__ is not an object");
    }
    auto& metadata = pass.metadata();
    std::sort(metadata.begin(), metadata.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [key, value] : metadata) {
      if (!value) {
        return Corrupt(source, absl::StrCat("__metadata__ value '", key,
                                            "' is not a string"));
      }
      out.metadata[key] = std::move(*value);
    }
    return absl::OkStatus();
  };
  for (RawEntry& raw : entries) {
    if (!metadata_done && !(raw.name < HeaderPass::kMetadataKey)) {
      absl::Status status = take_metadata();
      if (!status.ok()) return status;
    }
    absl::StatusOr<TensorEntry> entry =
        ValidateEntry(raw, data, data_len, source);
    if (!entry.ok()) return entry.status();
    out.tensors.push_back(*std::move(entry));
  }
  if (!metadata_done) {
    absl::Status status = take_metadata();
    if (!status.ok()) return status;
  }

  // The tensors must tile the data section exactly: no overlaps, no gaps.
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) {
              return a.data != b.data ? a.data < b.data : a.bytes < b.bytes;
            });
  size_t expected = 0;
  for (const TensorEntry& t : out.tensors) {
    const size_t begin = static_cast<size_t>(t.data - data);
    if (begin < expected) {
      return CorruptTensor(
          source, t.name,
          absl::StrFormat(
              "data at byte %d overlaps the previous tensor (ends at %d)",
              begin, expected));
    }
    if (begin > expected) {
      return CorruptTensor(
          source, t.name,
          absl::StrFormat(
              "gap in the data section: bytes [%d, %d) belong to no "
              "tensor",
              expected, begin));
    }
    expected = begin + t.bytes;
  }
  if (expected != data_len) {
    return Corrupt(
        source,
        absl::StrFormat("data section is %d bytes but the tensors cover %d",
                        data_len, expected));
  }
  return out;
}

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(
    absl::Span<const uint8_t> bytes, std::shared_ptr<const void> keep_alive,
    std::string source) {
  if (bytes.size() < 8) {
    return Corrupt(
        source, absl::StrFormat(
                    "file is %d bytes, shorter than the 8-byte header length",
                    bytes.size()));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  // Text where the binary length belongs: not a safetensors file at all (a
  // Git LFS pointer left by a clone without LFS, an HTML error page).
  if (header_len > kMaxHeaderBytes &&
      std::all_of(bytes.begin(), bytes.begin() + 8, [](uint8_t c) {
        return (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\r' || c == '\t';
      })) {
    const absl::string_view start(reinterpret_cast<const char*>(bytes.data()),
                                  std::min<size_t>(bytes.size(), 40));
    const bool lfs = absl::StartsWith(start, "version https://git-lfs");
    return Corrupt(
        source, absl::StrCat("not a safetensors file: it begins with text (\"",
                             absl::CEscape(start), "...\")",
                             lfs ? "; a Git LFS pointer: fetch the file itself "
                                   "(git lfs pull)"
                                 : ""));
  }
  if (header_len > kMaxHeaderBytes) {
    return Corrupt(source,
                   absl::StrFormat("header length %d exceeds the %d-byte limit",
                                   header_len, kMaxHeaderBytes));
  }
  if (header_len > bytes.size() - 8) {
    return Corrupt(source, absl::StrFormat(
                               "header length %d exceeds the %d bytes after it",
                               header_len, bytes.size() - 8));
  }
  const absl::string_view header(
      reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  const uint8_t* data = bytes.data() + 8 + header_len;
  const size_t data_len = bytes.size() - 8 - header_len;
  absl::StatusOr<Parsed> parsed = ParseHeader(header, data, data_len, source);
  if (!parsed.ok()) return parsed.status();

  SafetensorsFile file;
  file.keep_alive_ = std::move(keep_alive);
  file.source_ = std::move(source);
  file.tensors_ = std::move(parsed->tensors);
  file.metadata_ = std::move(parsed->metadata);
  for (size_t i = 0; i < file.tensors_.size(); ++i)
    file.index_[file.tensors_[i].name] = i;
  return file;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBytes(
    std::shared_ptr<const std::string> bytes, absl::string_view source) {
  if (bytes == nullptr)
    return absl::InvalidArgumentError("safetensors: null bytes");
  absl::Span<const uint8_t> span(
      reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
  return Parse(span, std::move(bytes), std::string(source));
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  // O_NONBLOCK: a FIFO in a file's place must not block the open (it is
  // refused below, as anything but a regular file is).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    return ErrnoStatus(err,
                       absl::StrCat("safetensors ", path,
                                    ": cannot open: ", std::strerror(err)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(
        absl::StrCat("safetensors ", path, ": fstat: ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors ", path, ": not a regular file (",
        S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket", ")"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Corrupt(
        path,
        absl::StrFormat(
            "file is %d bytes, shorter than the 8-byte header length", size));
  }
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (mapped == MAP_FAILED) {
    return absl::InternalError(absl::StrCat(
        "safetensors ", path, ": mmap: ", std::strerror(map_errno)));
  }
  std::shared_ptr<const void> mapping(
      mapped, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  absl::Span<const uint8_t> span(static_cast<const uint8_t*>(mapped), size);
  return Parse(span, std::move(mapping), path);
}

const TensorEntry* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace normgraph::safetensors
