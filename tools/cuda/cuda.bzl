"""cuda_library: compiles .cu files with nvcc, shaped like rules_cuda's macro of the same name.

    load("//tools/cuda:cuda.bzl", "cuda_library")

    cuda_library(
        name = "rms_norm_cuda",
        srcs = ["rms_norm.cu"],          # .cu files; .cuh/.h/.hpp/.inl in srcs are private headers
        hdrs = ["rms_norm_cuda.h"],      # public headers, as in cc_library
        deps = ["//core:dtype"],         # cc targets whose headers the .cu files include
        copts = ["-lineinfo"],           # extra nvcc flags (e.g. --fmad=false, -lineinfo)
    )

`name` is a cc_library: any cc_library / cc_binary / cc_test can list it in `deps`. It links the
CUDA runtime statically (//tools/cuda:cudart) and makes the CUDA runtime headers
(<cuda_runtime.h>, ...) available to the .cc files of the targets that depend on it.

Every target it creates is tagged `gpu`: the default `bazel build //...` / `bazel test //...`
(`--build_tag_filters=-gpu` in .bazelrc) skips them; `--config=cuda` builds them. Any cc_* target
that depends on a cuda_library (or on //tools/cuda:cudart) must be tagged `gpu` as well.

Each source is compiled by its own nvcc action (whole-program compilation, no -rdc) with
    -std=c++17 -O3 -Xcompiler -fPIC -ccbin <the C++ toolchain's compiler, g++> -Xptxas -v
    -gencode=... for each entry of --//tools/cuda:archs (default sm_90a,compute_90)
followed by the include paths and defines of `deps`, then `copts`.

ptxas' report (registers, spills, shared memory per kernel) is written to
`bazel-bin/<package>/<name>.ptxas.txt` (demangled), built together with the library.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

CudaArchsInfo = provider(
    doc = "The GPU architectures to compile for (the value of --//tools/cuda:archs).",
    fields = {"archs": "list of strings: sm_XX[a] (machine code) or compute_XX[a] (PTX)"},
)

def _validate_arch(arch):
    for prefix in ("sm_", "compute_"):
        if arch.startswith(prefix) and arch[len(prefix):len(prefix) + 2].isdigit():
            return
    fail("--//tools/cuda:archs: '%s' is not sm_XX[a|f] or compute_XX[a|f] (e.g. sm_90a,compute_90)" % arch)

def _cuda_archs_flag_impl(ctx):
    archs = [a.strip() for a in ctx.build_setting_value if a.strip()]
    if not archs:
        fail("--//tools/cuda:archs is empty")
    for arch in archs:
        _validate_arch(arch)
    return [CudaArchsInfo(archs = archs)]

# A string-list build setting: `--//tools/cuda:archs=sm_90a,compute_90`.
cuda_archs_flag = rule(
    implementation = _cuda_archs_flag_impl,
    build_setting = config.string_list(flag = True),
)

def gencode_flags(archs):
    """nvcc's -gencode flags for a list of architectures.

    Args:
      archs: e.g. ["sm_90a", "compute_90"].

    Returns:
      sm_90a -> -gencode=arch=compute_90a,code=sm_90a (machine code);
      compute_90 -> -gencode=arch=compute_90,code=compute_90 (PTX).
    """
    flags = []
    for arch in archs:
        if arch.startswith("sm_"):
            version = arch[len("sm_"):]
            flags.append("-gencode=arch=compute_%s,code=sm_%s" % (version, version))
        else:
            flags.append("-gencode=arch=%s,code=%s" % (arch, arch))
    return flags

def _host_cxx_compiler(compiler_executable):
    # The auto-configured toolchain names the gcc (or clang) driver; nvcc wants the C++ driver.
    directory, _, base = compiler_executable.rpartition("/")
    cxx = {"cc": "c++", "clang": "clang++", "gcc": "g++"}.get(base, base)
    return (directory + "/" + cxx) if directory else cxx

def _object_stem(ctx, src):
    # a/b.cu in the target's package -> a/b; a .cu from elsewhere -> its basename without .cu.
    prefix = ctx.label.package + "/" if ctx.label.package else ""
    path = src.short_path[len(prefix):] if src.short_path.startswith(prefix) else src.basename
    return path[:-len(".cu")]

def _cuda_objects_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    host_cxx = _host_cxx_compiler(cc_toolchain.compiler_executable)
    dep_contexts = [dep[CcInfo].compilation_context for dep in ctx.attr.deps]

    cu_srcs = [f for f in ctx.files.srcs if f.extension == "cu"]
    private_hdrs = [f for f in ctx.files.srcs if f.extension != "cu"]
    if not cu_srcs:
        fail("cuda_library %s: srcs has no .cu file" % ctx.label)
    headers = depset(
        ctx.files.hdrs + private_hdrs,
        transitive = [c.headers for c in dep_contexts],
    )
    includes = depset(
        [".", ctx.genfiles_dir.path, ctx.bin_dir.path],
        transitive = [c.includes for c in dep_contexts] + [c.quote_includes for c in dep_contexts],
    )
    system_includes = depset(transitive = [c.system_includes for c in dep_contexts])
    defines = depset(transitive = [c.defines for c in dep_contexts])

    objects = []
    logs = []
    for src in cu_srcs:
        stem = _object_stem(ctx, src)
        obj = ctx.actions.declare_file("_objs/%s/%s.o" % (ctx.label.name, stem))
        log = ctx.actions.declare_file("_objs/%s/%s.ptxas.txt" % (ctx.label.name, stem))
        args = ctx.actions.args()
        args.add(log)
        args.add_all([
            "-std=c++17",
            "-O3",
            "-Xcompiler",
            "-fPIC",
            "-ccbin",
            host_cxx,
            "-Xptxas",
            "-v",
        ])
        args.add_all(gencode_flags(ctx.attr._archs[CudaArchsInfo].archs))
        args.add_all(includes, format_each = "-I%s", uniquify = True)
        args.add_all(system_includes, before_each = "-isystem", uniquify = True)
        args.add_all(defines, format_each = "-D%s", uniquify = True)
        args.add_all(ctx.attr.copts)
        args.add_all(["-c", src, "-o", obj])
        ctx.actions.run(
            executable = ctx.file._nvcc,
            arguments = [args],
            inputs = depset([src], transitive = [headers]),
            outputs = [obj, log],
            mnemonic = "CudaCompile",
            progress_message = "Compiling CUDA %s" % src.short_path,
            use_default_shell_env = True,  # PATH for -ccbin's helpers, CUDA_PATH via --action_env
        )
        objects.append(obj)
        logs.append(log)

    # One readable report per target: a header line per source, then ptxas' lines.
    report = ctx.outputs.ptxas_log
    ctx.actions.run_shell(
        outputs = [report],
        inputs = logs,
        command = "out=$1; shift; for f in \"$@\"; do src=${f#*/_objs/*/}; " +
                  "echo \"== ${src%.ptxas.txt}.cu\"; cat \"$f\"; done > \"$out\"",
        arguments = [report.path] + [log.path for log in logs],
        mnemonic = "CudaPtxasReport",
        progress_message = "Writing %s" % report.short_path,
    )
    return [
        DefaultInfo(files = depset(objects)),
        OutputGroupInfo(ptxas = depset([report] + logs)),
    ]

_cuda_objects = rule(
    implementation = _cuda_objects_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu", ".cuh", ".h", ".hh", ".hpp", ".inl"]),
        "hdrs": attr.label_list(allow_files = True),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "ptxas_log": attr.output(mandatory = True),
        "_nvcc": attr.label(default = Label("//tools/cuda:nvcc.sh"), allow_single_file = True),
        "_archs": attr.label(default = Label("//tools/cuda:archs"), providers = [CudaArchsInfo]),
        "_cc_toolchain": attr.label(default = Label("@bazel_tools//tools/cpp:current_cc_toolchain")),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    fragments = ["cpp"],
)

def _with_gpu_tag(tags):
    return tags if "gpu" in tags else tags + ["gpu"]

def cuda_library(
        name,
        srcs,
        hdrs = [],
        deps = [],
        copts = [],
        alwayslink = False,
        tags = [],
        visibility = None,
        testonly = None):
    """nvcc-compiled objects wrapped in a cc_library named `name` (see the file's docstring).

    Args:
      name: the cc_library's name.
      srcs: .cu files (each becomes one object); .cuh/.h/.hpp/.inl here are private headers.
      hdrs: public headers (also visible to the .cu files).
      deps: cc targets (CcInfo) whose headers and include paths the .cu files need; they are
        also deps of the resulting cc_library.
      copts: extra nvcc flags, appended after the defaults.
      alwayslink: as cc_library's (for objects reached only through static initialisers).
      tags: `gpu` is added.
      visibility: as usual.
      testonly: as usual.
    """
    tags = _with_gpu_tag(tags)
    objects = name + "_cu_objs"
    _cuda_objects(
        name = objects,
        srcs = srcs,
        hdrs = hdrs,
        deps = deps + ["//tools/cuda:cuda_headers"],
        copts = copts,
        ptxas_log = name + ".ptxas.txt",
        tags = tags,
        testonly = testonly,
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = [":" + objects] + [s for s in srcs if not s.endswith(".cu")],
        hdrs = hdrs,
        deps = deps + ["//tools/cuda:cudart"],
        # The ptxas report rides along as data, so building the library (or anything that
        # depends on it) leaves bazel-bin/<package>/<name>.ptxas.txt behind.
        data = [":" + name + ".ptxas.txt"],
        alwayslink = alwayslink,
        linkstatic = True,
        tags = tags,
        testonly = testonly,
        visibility = visibility,
    )

def _cuda_toolkit_headers_impl(ctx):
    out = ctx.actions.declare_directory(ctx.attr.name)
    ctx.actions.run_shell(
        outputs = [out],
        inputs = [ctx.file._nvcc],
        command = """set -e
root=$("$1" --toolkit-root)
mkdir -p "$2"
for entry in "$root"/include/*; do
  case "${entry##*/}" in cccl) continue ;; esac
  cp -rL "$entry" "$2"/
done
""",
        arguments = [ctx.file._nvcc.path, out.path],
        mnemonic = "CudaHeaders",
        progress_message = "Copying the CUDA toolkit's headers",
        use_default_shell_env = True,
    )
    return [
        DefaultInfo(files = depset([out])),
        CcInfo(compilation_context = cc_common.create_compilation_context(
            headers = depset([out]),
            system_includes = depset([out.path]),
        )),
    ]

# The toolkit's include/ (without cccl: CUB, Thrust and libcu++ are for .cu files, which nvcc
# compiles against the toolkit directly) copied into the output tree, because Bazel refuses
# absolute include paths in C++ compile actions. Not re-copied when the toolkit changes in place:
# `bazel clean` after upgrading CUDA.
cuda_toolkit_headers = rule(
    implementation = _cuda_toolkit_headers_impl,
    attrs = {
        "_nvcc": attr.label(default = Label("//tools/cuda:nvcc.sh"), allow_single_file = True),
    },
)
