#include "layers/safetensors/writer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "layers/safetensors/format.h"

namespace normgraph::safetensors {
namespace {

// The largest data section written: 256 TiB, past any real checkpoint (the
// bytes are in memory), far below where a size_t count wraps.
constexpr size_t kMaxDataBytes = size_t{1} << 48;

// Appends `s` as a JSON string, as nlohmann::json's dump() writes one (which
// is what this writer used; the bytes are unchanged): '"', '\\' and control
// characters escaped (\b \t \n \f \r, else \u00xx), everything else as is.
// Returns false for invalid UTF-8 (overlong forms, surrogates, code points
// past U+10FFFF, truncated sequences), which nlohmann refused by throwing.
bool AppendJsonString(absl::string_view s, std::string& out) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\r':
          out += "\\r";
          break;
        default:
          if (c <= 0x1F) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xF]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // A multi-byte sequence (Unicode 15, table 3-7): its length and the
    // range of its second byte.
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
    }
    out.append(s.data() + i, n);
    i += n;
  }
  out.push_back('"');
  return true;
}

absl::Status NotUtf8(absl::string_view what, absl::string_view s) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors writer: ", what,
                                                 " '", absl::CHexEscape(s),
                                                 "' is not valid UTF-8"));
}

}  // namespace

absl::StatusOr<std::string> Serialize(
    absl::Span<const NamedView> tensors,
    const std::map<std::string, std::string>& metadata) {
  // The header is written directly (compact JSON, tensors in the order
  // given, the metadata first and sorted by key): the same bytes a JSON
  // library's dump() gives, without building a document of it first.
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) json.push_back(',');
      first = false;
      if (!AppendJsonString(key, json)) return NotUtf8("metadata key", key);
      json.push_back(':');
      if (!AppendJsonString(value, json)) {
        return NotUtf8("metadata value", value);
      }
    }
    json.push_back('}');
  }
  absl::flat_hash_set<absl::string_view> names;
  size_t offset = 0;
  for (const NamedView& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors writer: bad name '", t.name, "'"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors writer: duplicate tensor '", t.name, "'"));
    }
    absl::StatusOr<int64_t> numel = CheckedNumel(t.view.shape, t.name);
    if (!numel.ok()) return numel.status();
    size_t bytes = 0;
    // The data section in checked arithmetic: a wrapped count would write a
    // header its own reader refuses.
    if (__builtin_mul_overflow(static_cast<size_t>(*numel),
                               DTypeSize(t.view.dtype), &bytes) ||
        offset + bytes < offset || offset + bytes > kMaxDataBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors writer: tensor '", t.name, "' (", *numel,
          " elements) takes the data section past ", kMaxDataBytes, " bytes"));
    }
    if (json.size() > 1) json.push_back(',');
    if (!AppendJsonString(t.name, json)) return NotUtf8("tensor name", t.name);
    absl::StrAppend(&json, ":{\"dtype\":\"", DTypeToName(t.view.dtype),
                    "\",\"shape\":[");
    for (size_t d = 0; d < t.view.shape.size(); ++d) {
      absl::StrAppend(&json, d > 0 ? "," : "", t.view.shape[d]);
    }
    absl::StrAppend(&json, "],\"data_offsets\":[", offset, ",", offset + bytes,
                    "]}");
    offset += bytes;
  }
  json.push_back('}');
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out += json;
  for (const NamedView& t : tensors) {
    const size_t bytes =
        static_cast<size_t>(*CheckedNumel(t.view.shape, t.name)) *
        DTypeSize(t.view.dtype);
    if (bytes > 0) out.append(static_cast<const char*>(t.view.data), bytes);
  }
  return out;
}

absl::Status WriteFile(const std::string& path,
                       absl::Span<const NamedView> tensors,
                       const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::string> bytes = Serialize(tensors, metadata);
  if (!bytes.ok()) return bytes.status();
  // A temporary name of its own beside `path` (concurrent writers do not
  // share one), written, flushed to disk and closed with every error checked,
  // then renamed over `path`: readers see the old file or the new one, never
  // a part. On any error the temporary file is removed.
  std::string tmp = path + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create a temporary file beside ", path, ": ",
                     std::strerror(errno)));
  }
  auto fail = [&](absl::string_view what, int err) {
    ::unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat(what, " ", tmp, " (for ", path,
                                            "): ", std::strerror(err)));
  };
  size_t done = 0;
  while (done < bytes->size()) {
    const ssize_t n = ::write(fd, bytes->data() + done, bytes->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return fail("writing", err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail("flushing", err);
  }
  if (::close(fd) != 0) return fail("closing", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("renaming", errno);
  }
  return absl::OkStatus();
}

}  // namespace normgraph::safetensors
