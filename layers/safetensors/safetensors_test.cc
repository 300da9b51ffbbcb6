#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/safetensors/format.h"
#include "layers/safetensors/reader.h"
#include "layers/safetensors/writer.h"
#include "nlohmann/json.hpp"

namespace normgraph::safetensors {
namespace {

using ::testing::HasSubstr;

// A file from a literal header and a data section.
std::shared_ptr<const std::string> Build(const std::string& header,
                                         const std::string& data) {
  auto out = std::make_shared<std::string>();
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out->push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  *out += header;
  *out += data;
  return out;
}

absl::Status ParseError(const std::string& header, const std::string& data) {
  return SafetensorsFile::FromBytes(Build(header, data), "test.safetensors")
      .status();
}

TEST(SafetensorsTest, RoundTripThroughWriterAndReader) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {3, 5}, DType::kBF16);
  Tensor b = *Tensor::Empty(CpuAllocator(), {7}, DType::kF32);
  Tensor c = *Tensor::Empty(CpuAllocator(), {0}, DType::kF16);
  ASSERT_TRUE(FillNormal(a, 1, 0, 1).ok());
  ASSERT_TRUE(FillNormal(b, 2, 0, 1).ok());
  absl::StatusOr<std::string> bytes =
      Serialize({{"model.layers.0.input_layernorm.weight", ViewOf(a)},
                 {"model.norm.weight", ViewOf(b)},
                 {"empty", ViewOf(c)}},
                {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Header padded so the data section starts 8-byte aligned.
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ(header_len % 8, 0u);

  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::FromBytes(std::make_shared<std::string>(*bytes));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->tensors().size(), 3u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  const TensorEntry* ea = file->Find("model.layers.0.input_layernorm.weight");
  ASSERT_NE(ea, nullptr);
  EXPECT_EQ(ea->dtype_name, "BF16");
  EXPECT_EQ(ea->shape, Shape({3, 5}));
  Tensor back = *Tensor::Empty(CpuAllocator(), {3, 5}, DType::kBF16);
  ASSERT_TRUE(CopyInto(ea->view(), back).ok());
  EXPECT_TRUE(BitwiseEqual(a, back));
  const TensorEntry* eb = file->Find("model.norm.weight");
  ASSERT_NE(eb, nullptr);
  EXPECT_EQ(std::memcmp(eb->data, b.data(), 28), 0);
  EXPECT_EQ(file->Find("missing"), nullptr);
}

TEST(SafetensorsTest, OpenMemoryMapsAFile) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {4}, DType::kF16);
  ASSERT_TRUE(FillNormal(a, 3, 0, 1).ok());
  const std::string path =
      absl::StrCat(testing::TempDir(), "/open_test.safetensors");
  ASSERT_TRUE(WriteFile(path, {{"w", ViewOf(a)}}).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE(file->Find("w"), nullptr);
  EXPECT_EQ(std::memcmp(file->Find("w")->data, a.data(), 8), 0);
  EXPECT_EQ(file->source(), path);

  absl::Status missing = SafetensorsFile::Open(path + ".nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("open_test.safetensors.nope"));
}

// Only regular files are read: a directory or a FIFO in a file's place is
// refused at once (a FIFO would otherwise block the open forever).
TEST(SafetensorsTest, OpenRefusesWhatIsNotARegularFile) {
  const std::string dir = absl::StrCat(testing::TempDir(), "/a_directory");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST, true);
  absl::Status s = SafetensorsFile::Open(dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a regular file (a directory)"));
  const std::string fifo = absl::StrCat(testing::TempDir(), "/a_fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  s = SafetensorsFile::Open(fifo).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("a_fifo: not a regular file"));
}

// The writer reports what failed and leaves no temporary file behind; a
// written file is complete and alone in its directory.
TEST(SafetensorsTest, WriterFailsCleanlyAndLeavesNoTemporaryFile) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {4}, DType::kF32);
  ASSERT_TRUE(Fill(a, 1.5f).ok());
  const std::string dir = absl::StrCat(testing::TempDir(), "/writer_dir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST, true);
  const std::string path = dir + "/w.safetensors";
  ASSERT_TRUE(WriteFile(path, {{"w", ViewOf(a)}}).ok());
  ASSERT_TRUE(WriteFile(path, {{"w", ViewOf(a)}}).ok());  // over the old one
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  EXPECT_THAT(names, ::testing::ElementsAre("w.safetensors"));
  EXPECT_TRUE(SafetensorsFile::Open(path).ok());

  absl::Status s =
      WriteFile(dir + "/no/such/dir/w.safetensors", {{"w", ViewOf(a)}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no/such/dir/w.safetensors"));
}

TEST(SafetensorsTest, RejectsShortFiles) {
  for (size_t n = 0; n < 8; ++n) {
    absl::Status s = SafetensorsFile::FromBytes(
                         std::make_shared<std::string>(n, '\0'), "short")
                         .status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(s.message(),
                HasSubstr("shorter than the 8-byte header length"));
  }
}

TEST(SafetensorsTest, RejectsHeaderLengthPastTheEnd) {
  auto bytes = Build("{}", "");
  (*std::const_pointer_cast<std::string>(bytes))[0] =
      3;  // claims 3 bytes, 2 follow
  absl::Status s = SafetensorsFile::FromBytes(bytes, "x").status();
  EXPECT_THAT(s.message(),
              HasSubstr("header length 3 exceeds the 2 bytes after it"));
  std::string huge(8, '\xFF');
  s = SafetensorsFile::FromBytes(std::make_shared<std::string>(huge), "x")
          .status();
  EXPECT_THAT(s.message(), HasSubstr("exceeds the 100000000-byte limit"));
}

// Text where the header length belongs is named as such: a Git LFS pointer
// (a clone without LFS) with what to do, any other text with its start.
TEST(SafetensorsTest, TextIsNotASafetensorsFile) {
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\noid sha256:0123\n"
      "size 123456\n";
  absl::Status s =
      SafetensorsFile::FromBytes(std::make_shared<std::string>(pointer),
                                 "model.safetensors")
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("model.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("not a safetensors file"));
  EXPECT_THAT(s.message(), HasSubstr("git lfs pull"));
  s = SafetensorsFile::FromBytes(
          std::make_shared<std::string>("<!DOCTYPE html><html>"), "x")
          .status();
  EXPECT_THAT(s.message(), HasSubstr("not a safetensors file: it begins with "
                                     "text (\"<!DOCTYPE html><html>"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("git lfs")));
}

TEST(SafetensorsTest, RejectsEveryMalformedHeaderWithANamedError) {
  static constexpr char kNulThenGarbage[] = "{}\0\xFF\xFE not json {{{";
  const std::string ok_entry =
      R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\0');
  struct Bad {
    std::string header;
    std::string data;
    std::string message;
  };
  const Bad cases[] = {
      {"{not json", data8, "not valid JSON"},
      {"[1,2]", "", "header does not begin with '{'"},
      // What nlohmann's parser alone would accept: a byte order mark or a
      // space before the object, bytes after a NUL.
      {"\xEF\xBB\xBF{}", "", "header does not begin with '{'"},
      {" {}", "", "header does not begin with '{'"},
      {std::string(kNulThenGarbage, sizeof(kNulThenGarbage) - 1), "",
       "header holds a NUL byte at offset 10"},
      {"{\"a\":" + ok_entry + ",\"a\":" + ok_entry + "}", data8,
       "duplicate key 'a'"},
      {R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})",
       data8, "duplicate key 'dtype'"},
      {R"({"a":[[[[[1]]]]]})", "", "nested deeper"},
      {R"({"a":5})", "", "tensor 'a': entry is not an object"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", data8,
       "tensor 'a': missing or non-string dtype"},
      {R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data8,
       "unknown dtype 'Q4'"},
      {R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", data8,
       "non-array shape"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8,
       "not a non-negative int64"},
      {R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8,
       "not a non-negative int64"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
       data8, "overflows"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8,
       "[begin, end]"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8,
       "outside"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data8,
       "outside the 8-byte data section"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8,
       "hold 8 bytes, but F32[3] needs 12"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})",
       data8, "unknown field 'extra'"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       data8, "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8,
       "gap in the data section"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data8,
       "data section is 8 bytes but the tensors cover 4"},
      {R"({"__metadata__":{"k":1}})", "",
       "__metadata__ value 'k' is not a string"},
      {R"({"__metadata__":[]})", "", "__metadata__ is not an object"},
      {R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8,
       "empty name"},
      // An empty key repeated is a duplicate too (once accepted silently in
      // __metadata__, the last value kept).
      {R"({"__metadata__":{"":"x","":"y"}})", "", "duplicate key ''"},
      {"{\"\":" + ok_entry + ",\"\":" + ok_entry + "}", data8,
       "duplicate key ''"},
      // Of several faults, the one of the first entry in byte order of the
      // names, __metadata__ among them ('Z' < '_' < 'a'), and within an entry
      // the checks' order: unknown field, dtype, shape, data_offsets.
      {R"({"b":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
       data8, "tensor 'a': shape has a dimension"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":1},"Z":5})",
       data8, "tensor 'Z': entry is not an object"},
      {R"({"z":5,"__metadata__":{"k":1,"j":2}})", "",
       "__metadata__ value 'j' is not a string"},
      {R"({"a":{"zz":1,"dtype":"Q4","yy":2,"shape":[2],"data_offsets":[0,8]}})",
       data8, "unknown field 'yy'"},
      {R"({"a":{"data_offsets":[0],"shape":2,"dtype":"Q4"}})", data8,
       "unknown dtype 'Q4'"},
      {R"({"a":{"data_offsets":[0],"shape":[[2]],"dtype":"F32"}})", data8,
       "not a non-negative int64"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,{"x":8}]}})", data8,
       "not non-negative integers"},
  };
  for (const Bad& bad : cases) {
    absl::Status s = ParseError(bad.header, bad.data);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << bad.header;
    EXPECT_THAT(s.message(), HasSubstr(bad.message)) << bad.header;
    EXPECT_THAT(s.message(), HasSubstr("test.safetensors")) << bad.header;
  }
}

// A duplicate among many keys of a nested object is found, in time linear in
// the keys (a hostile header may give any object hundreds of thousands; a
// scan of the earlier keys per key would take minutes here).
TEST(SafetensorsTest, FindsADuplicateAmongManyNestedKeys) {
  std::string header = R"({"__metadata__":{)";
  constexpr int kKeys = 200000;
  for (int i = 0; i < kKeys; ++i) {
    absl::StrAppend(&header, "\"k", i, "\":\"\",");
  }
  absl::StrAppend(&header, "\"k", kKeys / 2, "\":\"\"}}");
  absl::Status s = ParseError(header, "");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("duplicate key 'k", kKeys / 2, "'")));
}

// `"__metadata__": null` is a file without metadata, as the reference reads
// it (an optional field).
TEST(SafetensorsTest, AcceptsNullMetadata) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(Build(
      R"({"__metadata__":null,"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
      std::string(8, '\0')));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->metadata().empty());
  ASSERT_EQ(file->tensors().size(), 1u);
}

TEST(SafetensorsTest, AcceptsPaddedHeaderAndNonFloatDtypes) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(
      Build(R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}     )",
            std::string(8, 'x')));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->Find("ids")->dtype.has_value());
  EXPECT_EQ(file->Find("ids")->dtype_name, "I64");
}

// The dtypes of quantized checkpoints (MX formats, FNUZ float8, complex):
// the file opens with its sizes checked in bits (F4 two to a byte, F6 four to
// three bytes), and its normgraph-dtype tensors load; a sub-byte tensor that
// does not fill whole bytes is corrupt, named.
TEST(SafetensorsTest, AcceptsQuantizedCheckpointDtypes) {
  struct Entry {
    const char* dtype;
    int elements;
    int bytes;
  };
  const Entry kEntries[] = {{"F4", 2, 1},          {"F6_E2M3", 4, 3},
                            {"F6_E3M2", 4, 3},     {"F8_E8M0", 4, 4},
                            {"F8_E4M3FNUZ", 4, 4}, {"F8_E5M2FNUZ", 4, 4},
                            {"C64", 2, 16}};
  std::string header = "{";
  int offset = 0;
  for (const Entry& e : kEntries) {
    absl::StrAppend(&header, "\"", e.dtype, "\":{\"dtype\":\"", e.dtype,
                    "\",\"shape\":[", e.elements, "],\"data_offsets\":[",
                    offset, ",", offset + e.bytes, "]},");
    offset += e.bytes;
  }
  absl::StrAppend(&header, R"("norm.weight":{"dtype":"BF16","shape":[2],)",
                  R"("data_offsets":[)", offset, ",", offset + 4, "]}}");
  std::string data(offset, '\x11');
  data += std::string("\x80\x3f\x00\x40", 4);  // bf16 1.0, 2.0
  absl::StatusOr<SafetensorsFile> file =
      SafetensorsFile::FromBytes(Build(header, data));
  ASSERT_TRUE(file.ok()) << file.status();
  for (const Entry& e : kEntries) {
    const TensorEntry* t = file->Find(e.dtype);
    ASSERT_NE(t, nullptr) << e.dtype;
    EXPECT_FALSE(t->dtype.has_value()) << e.dtype;
    EXPECT_EQ(t->bytes, static_cast<size_t>(e.bytes)) << e.dtype;
  }
  const TensorEntry* norm = file->Find("norm.weight");
  ASSERT_NE(norm, nullptr);
  ASSERT_EQ(norm->dtype, DType::kBF16);
  EXPECT_EQ(norm->bytes, 4u);

  EXPECT_THAT(
      ParseError(R"({"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})",
                 std::string(2, 'x'))
          .message(),
      ::testing::AllOf(
          HasSubstr("tensor 'q'"),
          HasSubstr("3 elements of F4 (4 bits each) do not fill whole "
                    "bytes")));
  EXPECT_THAT(
      ParseError(
          R"({"q":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,4]}})",
          std::string(4, 'x'))
          .message(),
      HasSubstr("tensor 'q'"));
}

TEST(SafetensorsTest, WriterRejectsDuplicateNames) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {1}, DType::kF32);
  EXPECT_FALSE(Serialize({{"x", ViewOf(a)}, {"x", ViewOf(a)}}).ok());
  EXPECT_FALSE(Serialize({{"__metadata__", ViewOf(a)}}).ok());
}

// A view whose byte count wraps (2^62 f32 elements: 2^64 bytes, 0 once
// wrapped) or passes the data section's limit is refused by name, never
// written with a header its reader refuses.
TEST(SafetensorsTest, WriterRefusesByteCountsThatWrap) {
  float d = 0;
  for (const int64_t n : {int64_t{1} << 62, (int64_t{1} << 61) + 1}) {
    absl::StatusOr<std::string> s =
        Serialize({{"w", HostView{&d, DType::kF32, {n}}}});
    ASSERT_FALSE(s.ok()) << n;
    EXPECT_THAT(s.status().message(), HasSubstr("tensor 'w'"));
  }
}

// The header the writer writes directly is the one nlohmann::ordered_json
// dump()s for the same document (what the writer built before), byte for
// byte, with names that need escaping; names that are not UTF-8 are refused
// (dump() throws on them).
TEST(SafetensorsTest, WriterHeaderIsTheJsonLibrarysDump) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {3, 5}, DType::kBF16);
  Tensor b = *Tensor::Empty(CpuAllocator(), {7}, DType::kF32);
  Tensor c = *Tensor::Empty(CpuAllocator(), {0}, DType::kF16);
  Tensor d = *Tensor::Empty(CpuAllocator(), {}, DType::kF32);
  for (const Tensor* t : {&a, &b, &c, &d}) {
    ASSERT_TRUE(Fill(*t, 0.5f).ok());
  }
  const std::vector<std::string> names = {
      "model.layers.0.input_layernorm.weight",
      "quote\"back\\slash/",
      std::string("ctl\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f", 13) + "end",
      "\xc3\xbcnic\xc3\xb8"
      "de \xe6\xbc\xa2 \xf0\x9f\x98\x80 \xef\xbf\xbf",
      std::string("nul\0in", 6),
      "x"};
  std::vector<NamedView> views;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"k\"ey\n", "v\\al\x02ue \xc3\xa9"}, {"", ""}};
  header["__metadata__"] = metadata;
  size_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const Tensor& t = *std::vector<const Tensor*>{&a, &b, &c, &d}[i % 4];
    views.push_back({names[i], ViewOf(t)});
    const size_t bytes = t.numel() * DTypeSize(t.dtype());
    header[names[i]] = {
        {"dtype", std::string(DTypeToName(t.dtype()))},
        {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
        {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  absl::StatusOr<std::string> bytes = Serialize(views, metadata);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->substr(8, json.size()), json);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes->data(), 8);
  EXPECT_EQ(header_len, json.size());
  EXPECT_EQ(bytes->size(), 8 + json.size() + offset);
  // No metadata: no "__metadata__" entry; no tensors: "{}".
  nlohmann::ordered_json plain = nlohmann::ordered_json::object();
  plain["x"] = {{"dtype", std::string("F32")},
                {"shape", std::vector<int64_t>{7}},
                {"data_offsets", std::vector<size_t>{0, 28}}};
  EXPECT_EQ(Serialize({{"x", ViewOf(b)}})->substr(8, plain.dump().size()),
            plain.dump());
  EXPECT_EQ(Serialize({})->substr(8), "{}      ");

  for (const std::string& bad :
       {std::string("\xff"), std::string("a\xc0\x80"),
        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
        std::string("\xe2\x82"), std::string("\xc3"), std::string("\x80")}) {
    const absl::StatusOr<std::string> refused = Serialize({{bad, ViewOf(b)}});
    EXPECT_FALSE(refused.ok()) << absl::CHexEscape(bad);
    EXPECT_THAT(refused.status().message(), HasSubstr("not valid UTF-8"));
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j[bad] = 1;
    EXPECT_ANY_THROW(j.dump()) << absl::CHexEscape(bad);
    EXPECT_FALSE(Serialize({{"ok", ViewOf(b)}}, {{"k", bad}}).ok());
  }
}

// Every prefix of a valid file is rejected cleanly (ASan checks nothing reads
// past the buffer).
TEST(SafetensorsTest, EveryTruncationIsACleanError) {
  Tensor a = *Tensor::Empty(CpuAllocator(), {6}, DType::kBF16);
  ASSERT_TRUE(FillNormal(a, 4, 0, 1).ok());
  const std::string full = *Serialize({{"a", ViewOf(a)}, {"b", ViewOf(a)}});
  for (size_t n = 0; n < full.size(); ++n) {
    // Copy into an exactly-sized heap buffer so ASan catches any read past its
    // end.
    auto prefix = std::make_shared<std::string>(full.substr(0, n));
    prefix->shrink_to_fit();
    EXPECT_FALSE(SafetensorsFile::FromBytes(prefix).ok()) << n;
  }
  EXPECT_TRUE(
      SafetensorsFile::FromBytes(std::make_shared<std::string>(full)).ok());
}

}  // namespace
}  // namespace normgraph::safetensors
