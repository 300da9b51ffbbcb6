#include "layers/safetensors/writer.h"

#include <cstdio>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "layers/safetensors/format.h"
#include "nlohmann/json.hpp"

namespace normgraph::safetensors {

absl::StatusOr<std::string> Serialize(
    absl::Span<const NamedView> tensors,
    const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  absl::flat_hash_set<std::string> names;
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
    const size_t bytes = static_cast<size_t>(*numel) * DTypeSize(t.view.dtype);
    header[t.name] = {{"dtype", std::string(DTypeToName(t.view.dtype))},
                      {"shape", std::vector<int64_t>(t.view.shape.begin(),
                                                     t.view.shape.end())},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
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
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
    f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!f) return absl::DataLossError(absl::StrCat("short write to ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace normgraph::safetensors
