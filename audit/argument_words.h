#ifndef NORMGRAPH_AUDIT_ARGUMENT_WORDS_H_
#define NORMGRAPH_AUDIT_ARGUMENT_WORDS_H_

// A kernel's argument buffer as 8-byte words.
//
// The argument buffer of a kernel launch is its parameters laid out at the
// offsets the compiler chose (cuFuncGetParamInfo gives offset and size of
// each). A pointer parameter, and a pointer inside a struct parameter, sits
// at an 8-byte-aligned offset, so reading every 8-byte word at an aligned
// offset inside a parameter reads every pointer the launch passes (along with
// integers and floats, which the caller tells apart).
//
// The values come either as one pointer per parameter (the kernelParams of a
// launch or of a graph kernel node) or as one packed buffer (the `extra`
// launch option CU_LAUNCH_PARAM_BUFFER_POINTER).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "audit/status.h"

namespace normgraph::audit {

struct ParamLayout {
  uint32_t offset;  // in the argument buffer
  uint32_t size;
};

struct ArgumentWord {
  int32_t param_index;
  uint32_t param_offset;
  uint32_t word_offset;  // absolute, in the argument buffer; a multiple of 8
  uint64_t value;
};

struct ArgumentValues {
  void* const* per_param = nullptr;  // one pointer per parameter, or
  const void* buffer = nullptr;      // the packed argument buffer
  size_t buffer_bytes = 0;
};

// The largest argument buffer CUDA accepts (32764 bytes since CUDA 12.1),
// rounded up: layouts beyond it are refused as corrupt.
inline constexpr uint32_t kMaxArgumentBytes = 32768;

// Appends every aligned word of every parameter. INVALID_ARGUMENT if a layout
// lies beyond kMaxArgumentBytes or the packed buffer, or if no values are
// given for a non-empty layout.
Status ReadArgumentWords(const std::vector<ParamLayout>& params,
                         const ArgumentValues& values,
                         std::vector<ArgumentWord>* out);

// Reads the `extra` option array of a launch (key, value pairs ended by
// CU_LAUNCH_PARAM_END) into `values`. INVALID_ARGUMENT if it has no buffer
// pointer, or a key this reader does not know.
Status ParseLaunchExtra(void* const* extra, ArgumentValues* values);

// The driver's values of the `extra` keys (cuda.h; checked against it where
// cuda.h is available).
inline constexpr uintptr_t kLaunchParamEnd = 0x00;
inline constexpr uintptr_t kLaunchParamBufferPointer = 0x01;
inline constexpr uintptr_t kLaunchParamBufferSize = 0x02;

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_ARGUMENT_WORDS_H_
