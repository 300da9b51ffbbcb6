"""cc_fuzz_test: one macro per fuzz target, following rules_fuzzing's conventions.

For `cc_fuzz_test(name = "foo", ...)` it defines:
  foo_lib              the target (LLVMFuzzerTestOneInput), a cc_library
  foo                  the fuzzer binary: with --config=fuzz a libFuzzer binary (clang,
                       -fsanitize=fuzzer,address,undefined); otherwise (g++) a plain binary whose
                       main replays the files or directories given on its command line
  foo_regression_test  runs `foo` over the checked-in seed corpus; tagged fuzz-test, part of
                       `bazel test //...`
  foo_run              `bazel run --config=fuzz //fuzz:foo_run -- [libFuzzer flags]`: fuzzes with
                       the seed corpus, dictionary and options, into fuzz/out/foo/ (persistent)
  foo_oss_fuzz         an OSS-Fuzz / ClusterFuzzLite package (tar): foo, foo_seed_corpus.zip,
                       foo.dict, foo.options
"""

def cc_fuzz_test(name, srcs, corpus, dict = None, deps = [], options = {}, tags = [], **kwargs):
    lib = name + "_lib"
    native.cc_library(
        name = lib,
        testonly = True,
        srcs = srcs,
        deps = deps,
        alwayslink = True,
        **kwargs
    )
    native.cc_binary(
        name = name,
        testonly = True,
        deps = [":" + lib] + select({
            "//tools/fuzz:use_libfuzzer": [],
            "//conditions:default": ["//tools/fuzz:replay_main"],
        }),
        linkopts = select({
            "//tools/fuzz:use_libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = tags,
    )
    corpus_group = name + "_corpus"
    native.filegroup(name = corpus_group, srcs = corpus, testonly = True)
    native.sh_test(
        name = name + "_regression_test",
        size = "medium",
        srcs = ["//tools/fuzz:regression_test.sh"],
        args = ["$(location :%s)" % name, "$(locations :%s)" % corpus_group],
        data = [":" + name, ":" + corpus_group],
        tags = ["fuzz-test"] + tags,
    )

    options_lines = ["[libfuzzer]"] + ["%s = %s" % (k, options[k]) for k in sorted(options)]
    if dict:
        options_lines.append("dict = %s.dict" % name)
    native.genrule(
        name = name + "_options",
        outs = [name + ".options"],
        cmd = "printf '%s\\n' > $@" % "\\n".join(options_lines),
        testonly = True,
    )
    dict_srcs = [dict] if dict else []
    native.sh_binary(
        name = name + "_run",
        srcs = ["//tools/fuzz:run_fuzzer.sh"],
        args = [
            name,
            "$(location :%s)" % name,
            "$(location :%s.options)" % name,
            "$(location %s)" % dict if dict else "-",
            "$(locations :%s)" % corpus_group,
        ],
        data = [":" + name, ":" + name + ".options", ":" + corpus_group] + dict_srcs,
        testonly = True,
        tags = tags,
    )
    native.genrule(
        name = name + "_oss_fuzz",
        srcs = [":" + name, ":" + name + ".options", ":" + corpus_group] + dict_srcs,
        outs = [name + "_oss_fuzz.tar"],
        cmd = " && ".join([
            "pkg=$$(mktemp -d)",
            "cp $(location :%s) $$pkg/%s" % (name, name),
            "cp $(location :%s.options) $$pkg/%s.options" % (name, name),
            ("cp $(location %s) $$pkg/%s.dict" % (dict, name)) if dict else "true",
            "zip -q -j $$pkg/%s_seed_corpus.zip $(locations :%s)" % (name, corpus_group),
            "tar -C $$pkg -cf $@ .",
            "rm -rf $$pkg",
        ]),
        testonly = True,
        tags = tags,
    )
