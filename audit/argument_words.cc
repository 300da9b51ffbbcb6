#include "audit/argument_words.h"

#include <cstring>
#include <string>

namespace normgraph::audit {

Status ReadArgumentWords(const std::vector<ParamLayout>& params,
                         const ArgumentValues& values,
                         std::vector<ArgumentWord>* out) {
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamLayout& p = params[i];
    const uint64_t end = uint64_t{p.offset} + p.size;
    if (end > kMaxArgumentBytes) {
      return InvalidArgument("parameter " + std::to_string(i) + " at offset " +
                             std::to_string(p.offset) + " (" +
                             std::to_string(p.size) +
                             " B) lies beyond the largest argument buffer");
    }
    if (p.size == 0) continue;
    const unsigned char* base = nullptr;  // the parameter's first byte
    if (values.per_param != nullptr) {
      base = static_cast<const unsigned char*>(values.per_param[i]);
    } else if (values.buffer != nullptr) {
      if (end > values.buffer_bytes) {
        return InvalidArgument("parameter " + std::to_string(i) +
                               " ends at byte " + std::to_string(end) +
                               " of a " + std::to_string(values.buffer_bytes) +
                               "-byte argument buffer");
      }
      base = static_cast<const unsigned char*>(values.buffer) + p.offset;
    }
    if (base == nullptr) {
      return InvalidArgument("no value for parameter " + std::to_string(i));
    }
    const uint32_t first_word = (p.offset + 7u) & ~7u;
    for (uint64_t word = first_word; word + 8 <= end; word += 8) {
      uint64_t value;
      std::memcpy(&value, base + (word - p.offset), sizeof value);
      out->push_back(ArgumentWord{static_cast<int32_t>(i), p.offset,
                                  static_cast<uint32_t>(word), value});
    }
  }
  return Status();
}

Status ParseLaunchExtra(void* const* extra, ArgumentValues* values) {
  *values = ArgumentValues();
  bool have_size = false;
  for (size_t i = 0;; i += 2) {
    const uintptr_t key = reinterpret_cast<uintptr_t>(extra[i]);
    if (key == kLaunchParamEnd) break;
    if (key == kLaunchParamBufferPointer) {
      values->buffer = extra[i + 1];
    } else if (key == kLaunchParamBufferSize) {
      if (extra[i + 1] == nullptr) {
        return InvalidArgument("launch option buffer size is null");
      }
      std::memcpy(&values->buffer_bytes, extra[i + 1], sizeof(size_t));
      have_size = true;
    } else {
      return InvalidArgument("unknown launch option " + std::to_string(key));
    }
  }
  if (values->buffer == nullptr || !have_size) {
    return InvalidArgument("launch options give no argument buffer and size");
  }
  return Status();
}

}  // namespace normgraph::audit
