#include "layers/checkpoint_dir.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/small_file.h"
#include "core/storage.h"
#include "layers/safetensors/format.h"
#include "layers/safetensors/reader.h"
#include "nlohmann/json.hpp"

namespace normgraph {
namespace {

using Json = nlohmann::json;

constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr char kSingleName[] = "model.safetensors";
constexpr char kIndexSuffix[] = ".safetensors.index.json";
constexpr char kSafetensorsSuffix[] = ".safetensors";
constexpr size_t kMaxListedProblems = 20;
constexpr char kNothingChanged[] = "no weight was changed";

enum class FileType { kMissing, kFile, kDirectory, kOther };

FileType TypeOf(const std::string& path, int* err = nullptr) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (err != nullptr) *err = errno;
    return FileType::kMissing;
  }
  if (S_ISREG(st.st_mode)) return FileType::kFile;
  if (S_ISDIR(st.st_mode)) return FileType::kDirectory;
  return FileType::kOther;
}

std::string Join(const std::string& dir, absl::string_view name) {
  if (dir.empty() || dir == ".") return std::string(name);
  return absl::StrCat(dir, absl::EndsWith(dir, "/") ? "" : "/", name);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", dir,
                     ": cannot list the directory: ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end(),
            [](const std::string& a, const std::string& b) {
              return NaturalLess(a, b);
            });
  return names;
}

// A shard name from an index must be a plain file name: no directories, no
// "..", nothing that could leave the checkpoint's directory.
bool PlainFileName(absl::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos &&
         name.find('\\') == absl::string_view::npos &&
         name.find('\0') == absl::string_view::npos;
}

// A SAX pass that finds the first key repeated within one object, which a
// JSON document keeps only the last of (so an index could name a tensor twice,
// and the value that loses is never checked). A hash set per open object:
// linear however many keys or objects a hostile index holds.
class DuplicateKeyPass {
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
    keys_.emplace_back();
    return true;
  }
  bool key(Json::string_t& key) {
    if (!keys_.back().insert(key).second && !duplicate_) duplicate_ = key;
    return true;
  }
  bool end_object() {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) {
    return false;
  }
  const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  std::vector<absl::flat_hash_set<std::string>> keys_;
  std::optional<std::string> duplicate_;
};

absl::Status ReadIndex(CheckpointLocation& loc) {
  absl::StatusOr<std::string> text =
      ReadSmallFile(loc.path, kMaxIndexJsonBytes, "checkpoint index");
  if (!text.ok()) return text.status();
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat("checkpoint index ", loc.path, ": ", what));
  };
  // nlohmann's parser would stop at a NUL byte, accepting whatever follows.
  if (text->find('\0') != std::string::npos) {
    return corrupt("not valid JSON (it holds a NUL byte)");
  }
  DuplicateKeyPass keys;
  if (!Json::sax_parse(text->begin(), text->end(), &keys)) {
    return corrupt("not valid JSON");
  }
  if (keys.duplicate()) {
    return corrupt(absl::StrCat("key '", *keys.duplicate(),
                                "' appears twice in one object"));
  }
  Json root = Json::parse(text->begin(), text->end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) return corrupt("not valid JSON");
  if (!root.is_object()) return corrupt("not a JSON object");
  auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) {
    return corrupt(
        "no \"weight_map\" object (a sharded checkpoint's index maps every "
        "tensor name to its shard file)");
  }
  if (map->empty()) return corrupt("\"weight_map\" is empty");
  std::set<std::string, bool (*)(absl::string_view, absl::string_view)> files(
      &NaturalLess);
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it.value().is_string()) {
      return corrupt(absl::StrCat("weight_map['", it.key(),
                                  "'] is not a file name string"));
    }
    const std::string shard = it.value().get<std::string>();
    if (!PlainFileName(shard)) {
      return corrupt(absl::StrCat(
          "weight_map['", it.key(), "'] = '", shard,
          "' is not a plain file name in the checkpoint's directory"));
    }
    if (it.key().empty()) return corrupt("weight_map has an empty name");
    loc.weight_map.emplace(it.key(), shard);
    files.insert(shard);
  }
  for (const std::string& shard : files) {
    const std::string path = Join(loc.directory, shard);
    const FileType type = TypeOf(path);
    if (type != FileType::kFile) {
      return absl::NotFoundError(absl::StrCat(
          "checkpoint index ", loc.path, " names shard '", shard,
          "', which is ", type == FileType::kMissing ? "missing" : "not a file",
          " (looked at ", path, ")"));
    }
    loc.files.push_back(path);
  }
  return absl::OkStatus();
}

// The NaN and infinite values of a contiguous host tensor; `first` gets the
// index of the first.
int64_t CountNonFinite(const Tensor& t, int64_t* first) {
  int64_t n = 0;
  const size_t size = DTypeSize(t.dtype());
  const auto* data = static_cast<const uint8_t*>(t.data());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint8_t* p = data + i * size;
    bool finite = true;
    if (t.dtype() == DType::kF32) {
      float f;
      std::memcpy(&f, p, 4);
      finite = std::isfinite(f);
    } else {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      finite = t.dtype() == DType::kBF16 ? ((bits >> 7) & 0xFF) != 0xFF
                                         : ((bits >> 10) & 0x1F) != 0x1F;
    }
    if (!finite) {
      if (n == 0) *first = i;
      ++n;
    }
  }
  return n;
}

std::string ProblemList(std::vector<std::string> problems) {
  const size_t n = problems.size();
  if (n > kMaxListedProblems) {
    problems.resize(kMaxListedProblems);
    problems.push_back(
        absl::StrCat("... and ", n - kMaxListedProblems, " more"));
  }
  return absl::StrJoin(problems, "\n  ");
}

}  // namespace

const std::vector<std::string>& KnownTextModelPrefixes() {
  static const auto* prefixes = new std::vector<std::string>{
      "model.language_model.",  // transformers 5 multimodal
      "model.",                 // *ForCausalLM
      "language_model.model.",  // older multimodal checkpoints
      "model.text_model.",      //
      "language_model.",        //
      "",                       // a saved base model (*Model)
  };
  return *prefixes;
}

bool NaturalLess(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (absl::ascii_isdigit(a[i]) && absl::ascii_isdigit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && absl::ascii_isdigit(a[ie])) ++ie;
      while (je < b.size() && absl::ascii_isdigit(b[je])) ++je;
      // Compare the numbers without leading zeros: by length, then digits.
      size_t iz = i, jz = j;
      while (iz + 1 < ie && a[iz] == '0') ++iz;
      while (jz + 1 < je && b[jz] == '0') ++jz;
      const absl::string_view x = a.substr(iz, ie - iz);
      const absl::string_view y = b.substr(jz, je - jz);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      if (ie - i != je - j) return ie - i < je - j;  // fewer leading zeros
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

std::string SummarizeNames(const std::vector<std::string>& names,
                           size_t max_groups) {
  // Pattern -> count; numeric path components become '*'.
  std::map<std::string, int64_t> groups;
  for (const std::string& name : names) {
    std::vector<std::string> parts = absl::StrSplit(name, '.');
    for (std::string& part : parts) {
      if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
            return absl::ascii_isdigit(c);
          })) {
        part = "*";
      }
    }
    const std::string pattern = absl::StrJoin(parts, ".");
    ++groups[pattern];
  }
  std::vector<std::pair<std::string, int64_t>> sorted(groups.begin(),
                                                      groups.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& x, const auto& y) {
                     if (x.second != y.second) return x.second > y.second;
                     return NaturalLess(x.first, y.first);
                   });
  std::vector<std::string> parts;
  size_t shown = 0;
  int64_t rest = 0;
  for (const auto& [pattern, count] : sorted) {
    if (shown < max_groups) {
      parts.push_back(count > 1 ? absl::StrCat(pattern, " (x", count, ")")
                                : pattern);
      ++shown;
    } else {
      rest += count;
    }
  }
  std::string out = absl::StrJoin(parts, ", ");
  if (rest > 0) absl::StrAppend(&out, ", ... and ", rest, " more");
  return out;
}

absl::StatusOr<std::string> DetectPrefix(
    const std::vector<std::string>& names) {
  static constexpr absl::string_view kAnchor = ".input_layernorm.weight";
  std::set<std::string> found;
  for (const std::string& name : names) {
    if (!absl::EndsWith(name, kAnchor)) continue;
    // name = PREFIX "layers." digits kAnchor
    absl::string_view head(name.data(), name.size() - kAnchor.size());
    size_t d = head.size();
    while (d > 0 && absl::ascii_isdigit(head[d - 1])) --d;
    if (d == head.size()) continue;  // no layer number
    head = head.substr(0, d);
    if (!absl::EndsWith(head, "layers.")) continue;
    head.remove_suffix(7);
    if (!head.empty() && head.back() != '.') continue;
    found.insert(std::string(head));
  }
  if (found.empty()) return std::string(kModelPrefix);
  if (found.size() == 1) return *found.begin();
  for (const std::string& known : KnownTextModelPrefixes()) {
    if (found.count(known)) return known;
  }
  std::vector<std::string> quoted;
  for (const std::string& p : found)
    quoted.push_back(absl::StrCat("'", p, "'"));
  return absl::InvalidArgumentError(
      absl::StrCat("cannot tell which prefix holds the text model's layers: ",
                   absl::StrJoin(quoted, ", "), " all do; name one (prefix)"));
}

absl::StatusOr<CheckpointLocation> LocateCheckpoint(const std::string& path) {
  CheckpointLocation loc;
  loc.given = path;
  if (path.empty()) {
    return absl::InvalidArgumentError("checkpoint: empty path");
  }
  int err = 0;
  const FileType type = TypeOf(path, &err);
  if (type == FileType::kMissing) {
    return absl::NotFoundError(absl::StrCat(
        "checkpoint ", path, ": ",
        err == ENOENT ? "no such file or directory" : std::strerror(err)));
  }
  if (type == FileType::kOther) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path, ": not a file or a directory"));
  }
  if (type == FileType::kDirectory) {
    loc.from_directory = true;
    loc.directory = path;
    std::string chosen;
    bool sharded = false;
    // transformers' order (modeling_utils): the single file first, so an
    // index left over from an earlier sharded save does not win over it.
    if (TypeOf(Join(path, kSingleName)) == FileType::kFile) {
      chosen = kSingleName;
    } else if (TypeOf(Join(path, kIndexName)) == FileType::kFile) {
      chosen = kIndexName;
      sharded = true;
    } else {
      absl::StatusOr<std::vector<std::string>> entries = ListDirectory(path);
      if (!entries.ok()) return entries.status();
      std::vector<std::string> indexes, files;
      for (const std::string& e : *entries) {
        if (TypeOf(Join(path, e)) != FileType::kFile) continue;
        if (absl::EndsWith(e, kIndexSuffix)) indexes.push_back(e);
        if (absl::EndsWith(e, kSafetensorsSuffix)) files.push_back(e);
      }
      if (indexes.size() == 1) {
        chosen = indexes[0];
        sharded = true;
      } else if (indexes.empty() && files.size() == 1) {
        chosen = files[0];
      } else {
        std::string found =
            indexes.empty() && files.empty()
                ? "there is neither"
                : absl::StrCat("found ", absl::StrJoin(indexes, ", "),
                               indexes.empty() || files.empty() ? "" : ", ",
                               absl::StrJoin(files, ", "),
                               ", and cannot tell which to load");
        return absl::NotFoundError(absl::StrCat(
            "checkpoint ", path,
            ": no checkpoint in this directory: looked "
            "for ",
            kSingleName, ", then ", kIndexName, ", then a single *",
            kIndexSuffix, " or *", kSafetensorsSuffix, "; ", found));
      }
    }
    loc.path = Join(path, chosen);
    loc.kind = sharded ? CheckpointLocation::Kind::kSharded
                       : CheckpointLocation::Kind::kFile;
  } else {
    loc.path = path;
    loc.directory = DirName(path);
    loc.kind = absl::EndsWith(path, ".json")
                   ? CheckpointLocation::Kind::kSharded
                   : CheckpointLocation::Kind::kFile;
  }
  if (loc.kind == CheckpointLocation::Kind::kSharded) {
    absl::Status s = ReadIndex(loc);
    if (!s.ok()) return s;
  } else {
    loc.files = {loc.path};
  }
  const std::string config = Join(loc.directory, "config.json");
  if (TypeOf(config) == FileType::kFile) loc.config_json = config;
  return loc;
}

absl::StatusOr<PreparedCheckpoint> PrepareCheckpoint(
    Module& model, const CheckpointLocation& location,
    const CheckpointOptions& options) {
  PreparedCheckpoint prepared;
  CheckpointReport& report = prepared.report;
  report.source = location.path;
  const bool sharded = location.kind == CheckpointLocation::Kind::kSharded;
  auto unchanged = [&](const absl::Status& s) {
    return absl::Status(s.code(),
                        absl::StrCat(s.message(), "; ", kNothingChanged));
  };

  // A location made by hand rather than by LocateCheckpoint may name no file
  // (or, for a single file, more than one).
  if (location.files.empty() || (!sharded && location.files.size() != 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", location.path.empty() ? "(no path)" : location.path,
        ": the location names ", location.files.size(), " files for a ",
        location.kind_name(), " checkpoint (LocateCheckpoint fills it); ",
        kNothingChanged));
  }
  std::map<std::string, Parameter*> params;
  model.ForEachParameter(
      [&](const std::string& name, Parameter& p) { params[name] = &p; });

  // Open every file; checkpoint names, for prefix detection, come from the
  // index (sharded) or the one file.
  std::vector<safetensors::SafetensorsFile> files;
  files.reserve(location.files.size());
  for (size_t i = 0; i < location.files.size(); ++i) {
    absl::StatusOr<safetensors::SafetensorsFile> f =
        safetensors::SafetensorsFile::Open(location.files[i]);
    if (!f.ok()) {
      return unchanged(absl::Status(
          f.status().code(),
          sharded ? absl::StrCat("checkpoint ", location.path, ": shard ",
                                 i + 1, " of ", location.files.size(), ": ",
                                 f.status().message())
                  : std::string(f.status().message())));
    }
    files.push_back(*std::move(f));
  }
  report.shards = static_cast<int>(files.size());

  // The index must describe the shards exactly.
  std::vector<std::string> names;
  if (sharded) {
    absl::flat_hash_map<std::string, std::string> seen;  // name -> shard
    std::vector<std::string> problems;
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string shard =
          location.files[i].substr(location.files[i].rfind('/') + 1);
      for (const safetensors::TensorEntry& e : files[i].tensors()) {
        auto it = location.weight_map.find(e.name);
        if (it == location.weight_map.end()) {
          problems.push_back(absl::StrCat("'", e.name, "' is in shard ", shard,
                                          " but not in the index"));
        } else if (it->second != shard) {
          problems.push_back(absl::StrCat("'", e.name, "' is in shard ", shard,
                                          " but the index says ", it->second));
        }
        auto [where, inserted] = seen.emplace(e.name, shard);
        if (!inserted) {
          problems.push_back(absl::StrCat("'", e.name, "' is in shards ",
                                          where->second, " and ", shard));
        }
      }
    }
    for (const auto& [name, shard] : location.weight_map) {
      if (!seen.contains(name)) {
        problems.push_back(absl::StrCat("the index puts '", name, "' in shard ",
                                        shard, ", which does not hold it"));
      }
      names.push_back(name);
    }
    if (!problems.empty()) {
      return absl::DataLossError(absl::StrCat(
          "checkpoint ", location.path, ": the index and the shards disagree; ",
          kNothingChanged, ":\n  ", ProblemList(std::move(problems))));
    }
  } else {
    for (const safetensors::TensorEntry& e : files[0].tensors()) {
      names.push_back(e.name);
    }
  }
  report.tensors = static_cast<int64_t>(names.size());

  // The prefix.
  if (options.prefix == kAutoPrefix) {
    absl::StatusOr<std::string> detected = DetectPrefix(names);
    if (!detected.ok()) {
      return unchanged(absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", location.path, ": ", detected.status().message())));
    }
    report.prefix = *detected;
    report.prefix_detected = true;
  } else {
    report.prefix = options.prefix;
    if (!report.prefix.empty() && report.prefix.back() != '.') {
      report.prefix += '.';
    }
  }

  // Classify every tensor; check and copy the norm weights.
  std::vector<std::string> problems;
  std::vector<std::string> unexpected;
  absl::flat_hash_set<std::string> selected;
  NamedTensors copies;
  for (const safetensors::SafetensorsFile& file : files) {
    for (const safetensors::TensorEntry& e : file.tensors()) {
      if (!absl::StartsWith(e.name, report.prefix)) {
        unexpected.push_back(e.name);
        continue;
      }
      const std::string mapped = absl::StrCat(
          kModelPrefix, absl::string_view(e.name).substr(report.prefix.size()));
      auto it = params.find(mapped);
      if (it == params.end()) {
        unexpected.push_back(e.name);
        continue;
      }
      if (!selected.insert(mapped).second) {
        problems.push_back(
            absl::StrCat(mapped, ": appears more than once in the checkpoint"));
        continue;
      }
      if (!e.dtype) {
        problems.push_back(absl::StrCat(e.name, ": dtype ", e.dtype_name,
                                        " is not a float type (F32, BF16, "
                                        "F16)"));
        continue;
      }
      const HostView view = e.view();
      absl::Status loadable = it->second->CheckLoadable(
          mapped, view, options.allow_dtype_conversion);
      if (!loadable.ok()) {
        problems.push_back(std::string(loadable.message()));
        continue;
      }
      const DType target = it->second->tensor().dtype();
      // The copy the load will read, in the parameter's dtype: checked
      // below, so what is checked is what is loaded (a file rewritten under
      // the mapping cannot slip values past the check).
      absl::StatusOr<Tensor> copy =
          Tensor::Empty(CpuAllocator(), e.shape, target);
      absl::Status copied = copy.ok() ? CopyInto(view, *copy) : copy.status();
      if (!copied.ok()) {
        return absl::Status(
            copied.code(),
            absl::StrCat("reading ", e.name, " from ", file.source(), ": ",
                         copied.message(), "; no weight was changed"));
      }
      if (options.check_finite) {
        // After the conversion: a finite value can round to infinity in a
        // narrower dtype (70000 in F16).
        int64_t first = 0;
        const int64_t bad = CountNonFinite(*copy, &first);
        if (bad > 0) {
          problems.push_back(absl::StrCat(
              e.name, ": ", bad, " of ", copy->numel(),
              " values are NaN or infinite",
              target == *e.dtype
                  ? ""
                  : absl::StrCat(" in ", safetensors::DTypeToName(target)),
              " (the first at index ", first, ")"));
          continue;
        }
      }
      if (*e.dtype != target) {
        ++report.conversions[absl::StrCat(e.dtype_name, " -> ",
                                          safetensors::DTypeToName(target))];
      }
      report.bytes += static_cast<int64_t>(e.bytes);
      copies.emplace_back(mapped, *std::move(copy));
    }
  }
  std::vector<std::string> missing;
  for (const auto& [name, p] : params) {
    if (!selected.contains(name)) missing.push_back(name);
  }
  std::sort(missing.begin(), missing.end(),
            [](const std::string& a, const std::string& b) {
              return NaturalLess(a, b);
            });
  if (options.allow_missing) {
    report.load.missing = missing;
  } else if (missing.size() > 5) {
    problems.push_back(absl::StrCat(
        missing.size(), " parameters missing from the checkpoint",
        report.prefix == kModelPrefix
            ? ""
            : absl::StrCat(" (looked for them under '", report.prefix, "')"),
        ": ", SummarizeNames(missing)));
  } else {
    for (const std::string& name : missing) {
      problems.push_back(absl::StrCat(
          name, ": missing from the checkpoint",
          report.prefix == kModelPrefix
              ? ""
              : absl::StrCat(" (looked for '", report.prefix,
                             name.substr(kModelPrefix.size()), "')")));
    }
  }
  std::sort(unexpected.begin(), unexpected.end(),
            [](const std::string& a, const std::string& b) {
              return NaturalLess(a, b);
            });
  if (!unexpected.empty()) {
    if (options.ignore_unexpected) {
      report.ignored = std::move(unexpected);
    } else {
      problems.insert(
          problems.begin(),
          absl::StrCat(unexpected.size(),
                       unexpected.size() == 1 ? " tensor" : " tensors",
                       " the model has no parameter for (ignore_unexpected "
                       "skips them): ",
                       SummarizeNames(unexpected)));
    }
  }
  if (!problems.empty()) {
    const size_t n = problems.size();
    std::string prefix_note;
    if (report.prefix != kModelPrefix) {
      prefix_note = absl::StrCat(" (checkpoint names are '", report.prefix,
                                 "' + the model's names without 'model.')");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", location.path, prefix_note, ": ", n,
                     n == 1 ? " problem" : " problems", "; ", kNothingChanged,
                     ":\n  ", ProblemList(std::move(problems))));
  }
  std::sort(copies.begin(), copies.end(), [](const auto& a, const auto& b) {
    return NaturalLess(a.first, b.first);
  });
  absl::StatusOr<WeightSet> set = WeightSet::FromTensors(std::move(copies));
  if (!set.ok()) return set.status();
  prepared.weights = *std::move(set);
  return prepared;
}

absl::StatusOr<CheckpointReport> LoadPrepared(
    Module& model, const PreparedCheckpoint& prepared,
    const CheckpointOptions& options) {
  // The copies are in the dtypes of the model they were prepared against, and
  // their values were checked there: a model whose parameters differ would
  // convert them a second time, unchecked (70000 prepared for F32 is infinite
  // in F16) and rounded twice.
  absl::flat_hash_map<absl::string_view, DType> prepared_dtypes;
  for (const SourceTensor& t : prepared.weights.tensors())
    prepared_dtypes.emplace(t.name, t.view.dtype);
  std::vector<std::string> mismatched;
  std::string example;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    auto it = prepared_dtypes.find(name);
    if (it == prepared_dtypes.end() || it->second == p.tensor().dtype()) return;
    if (mismatched.empty()) {
      example = absl::StrCat(
          name, " was prepared as ", safetensors::DTypeToName(it->second),
          ", the model's is ", safetensors::DTypeToName(p.tensor().dtype()));
    }
    mismatched.push_back(name);
  });
  if (!mismatched.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", prepared.report.source, " was prepared for a model ",
        "with other parameter dtypes (", example, "; ", mismatched.size(),
        " in all: ", SummarizeNames(mismatched),
        "): prepare it for this model; ", kNothingChanged));
  }
  // The copies were converted when prepared: with conversion off now, that
  // is a conversion all the same.
  if (!options.allow_dtype_conversion && !prepared.report.conversions.empty()) {
    std::vector<std::string> conversions;
    for (const auto& [conversion, n] : prepared.report.conversions)
      conversions.push_back(absl::StrCat(conversion, " (", n, ")"));
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", prepared.report.source,
                     " was prepared with dtype conversions (",
                     absl::StrJoin(conversions, ", "),
                     ") and conversion is off; ", kNothingChanged));
  }
  LoadOptions load;
  load.ignore_unexpected = false;  // the prepared set holds only parameters
  load.allow_missing = options.allow_missing;
  load.allow_dtype_conversion = options.allow_dtype_conversion;
  absl::StatusOr<LoadReport> loaded =
      LoadWeights(model, prepared.weights, load);
  if (!loaded.ok()) {
    return absl::Status(
        loaded.status().code(),
        absl::StrReplaceAll(
            loaded.status().message(),
            {{prepared.weights.source(),
              absl::StrCat("checkpoint ", prepared.report.source)}}));
  }
  CheckpointReport report = prepared.report;
  report.load = *loaded;
  // The prepared copies were converted to the parameters' dtypes already
  // (PrepareCheckpoint checks the converted values): count those conversions
  // from the file's dtypes.
  report.load.converted = 0;
  for (const auto& [conversion, n] : report.conversions)
    report.load.converted += n;
  return report;
}

absl::StatusOr<CheckpointReport> LoadCheckpointFrom(
    Module& model, const CheckpointLocation& location,
    const CheckpointOptions& options) {
  absl::StatusOr<PreparedCheckpoint> prepared =
      PrepareCheckpoint(model, location, options);
  if (!prepared.ok()) return prepared.status();
  return LoadPrepared(model, *prepared, options);
}

}  // namespace normgraph
