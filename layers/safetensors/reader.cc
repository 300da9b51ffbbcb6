#include "layers/safetensors/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

// Reads a non-negative integer that fits in uint64 (JSON floats, negatives and
// strings fail).
std::optional<uint64_t> AsUnsigned(const Json& j) {
  if (!j.is_number_unsigned()) return std::nullopt;
  return j.get<uint64_t>();
}

// The first key that repeats within one JSON object (a SAX handler).
class DuplicateKeyFinder {
 public:
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(Json::number_integer_t) { return true; }
  bool number_unsigned(Json::number_unsigned_t) { return true; }
  bool number_float(Json::number_float_t, const Json::string_t&) {
    return true;
  }
  bool string(Json::string_t&) { return true; }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(std::size_t) {
    open_objects_.emplace_back();
    return true;
  }
  bool key(Json::string_t& key) {
    if (!open_objects_.empty() && !open_objects_.back().insert(key).second &&
        duplicate_.empty()) {
      duplicate_ = key;
    }
    return true;
  }
  bool end_object() {
    if (!open_objects_.empty()) open_objects_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) {
    return false;
  }

  const std::string& duplicate() const { return duplicate_; }

 private:
  std::vector<absl::flat_hash_set<std::string>> open_objects_;
  std::string duplicate_;
};

struct Parsed {
  std::vector<TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
};

absl::StatusOr<Parsed> ParseHeader(absl::string_view header,
                                   const uint8_t* data, size_t data_len,
                                   absl::string_view source) {
  if (!NestingWithin(header, kMaxDepth)) {
    return Corrupt(
        source, absl::StrCat("header JSON is nested deeper than ", kMaxDepth));
  }
  // nlohmann keeps the last of duplicate keys silently, so a first pass of its
  // SAX parser looks at every key (a parse callback would do it in the same
  // pass, but nlohmann's callback parser walks the enclosing object at the
  // end of every nested one: quadratic in the number of tensors).
  DuplicateKeyFinder keys;
  if (!Json::sax_parse(header.begin(), header.end(), &keys)) {
    return Corrupt(source, "header is not valid JSON");
  }
  if (!keys.duplicate().empty()) {
    return Corrupt(source, absl::StrCat("header has duplicate key '",
                                        keys.duplicate(), "'"));
  }
  Json root = Json::parse(header.begin(), header.end(), /*cb=*/nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) return Corrupt(source, "header is not valid JSON");
  if (!root.is_object()) return Corrupt(source, "header JSON is not an object");

  Parsed out;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object())
        return Corrupt(source, "__metadata__ is not an object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          return Corrupt(source, absl::StrCat("__metadata__ value '", m.key(),
                                              "' is not a string"));
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (name.empty()) return Corrupt(source, "a tensor has an empty name");
    if (!value.is_object())
      return CorruptTensor(source, name, "entry is not an object");
    for (auto f = value.begin(); f != value.end(); ++f) {
      if (f.key() != "dtype" && f.key() != "shape" &&
          f.key() != "data_offsets") {
        return CorruptTensor(source, name,
                             absl::StrCat("unknown field '", f.key(), "'"));
      }
    }
    TensorEntry entry;
    entry.name = name;
    auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) {
      return CorruptTensor(source, name, "missing or non-string dtype");
    }
    entry.dtype_name = dtype->get<std::string>();
    const std::optional<size_t> element_size = ElementSize(entry.dtype_name);
    if (!element_size) {
      return CorruptTensor(
          source, name, absl::StrCat("unknown dtype '", entry.dtype_name, "'"));
    }
    entry.dtype = ToDType(entry.dtype_name);

    auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) {
      return CorruptTensor(source, name, "missing or non-array shape");
    }
    uint64_t numel = 1;
    for (const Json& d : *shape) {
      const std::optional<uint64_t> dim = AsUnsigned(d);
      if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) {
        return CorruptTensor(
            source, name,
            "shape has a dimension that is not a non-negative int64");
      }
      if (*dim != 0 && numel > UINT64_MAX / *dim) {
        return CorruptTensor(source, name, "element count overflows");
      }
      numel *= *dim;
      entry.shape.push_back(static_cast<int64_t>(*dim));
    }
    if (numel > UINT64_MAX / *element_size) {
      return CorruptTensor(source, name, "byte count overflows");
    }
    const uint64_t want_bytes = numel * *element_size;

    auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() ||
        offsets->size() != 2) {
      return CorruptTensor(source, name,
                           "data_offsets must be an array [begin, end]");
    }
    const std::optional<uint64_t> begin = AsUnsigned((*offsets)[0]);
    const std::optional<uint64_t> end = AsUnsigned((*offsets)[1]);
    if (!begin || !end) {
      return CorruptTensor(source, name,
                           "data_offsets are not non-negative integers");
    }
    if (*begin > *end || *end > data_len) {
      return CorruptTensor(
          source, name,
          absl::StrFormat(
              "data_offsets [%d, %d] outside the %d-byte data section", *begin,
              *end, data_len));
    }
    if (*end - *begin != want_bytes) {
      return CorruptTensor(
          source, name,
          absl::StrFormat(
              "data_offsets [%d, %d] hold %d bytes, but %s%s needs %d", *begin,
              *end, *end - *begin, entry.dtype_name, ShapeToString(entry.shape),
              want_bytes));
    }
    entry.data = data + *begin;
    entry.bytes = static_cast<size_t>(want_bytes);
    out.tensors.push_back(std::move(entry));
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
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(
        "safetensors ", path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(
        absl::StrCat("safetensors ", path, ": fstat: ", std::strerror(err)));
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
