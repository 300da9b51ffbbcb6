#ifndef NORMGRAPH_AUDIT_DEMANGLE_H_
#define NORMGRAPH_AUDIT_DEMANGLE_H_

// Kernel names as people read them: cuFuncGetName gives the mangled symbol
// ("_ZN2at6native29vectorized_elementwise_kernel..."); Demangle gives
// "void at::native::vectorized_elementwise_kernel<4, ...>(int, ...)". Names
// that are not mangled C++ symbols (Triton's "triton_red_fused_..."), or that
// the demangler cannot read, come back unchanged.

#include <string>

namespace normgraph::audit {

std::string Demangle(const char* name);

}  // namespace normgraph::audit

#endif  // NORMGRAPH_AUDIT_DEMANGLE_H_
