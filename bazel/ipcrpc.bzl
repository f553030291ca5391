"""ipcrpc_cc_library: C++ messages and ipcrpc services from .proto files.

    load("@ipcrpc//bazel:ipcrpc.bzl", "ipcrpc_cc_library")

    ipcrpc_cc_library(
        name = "greeter",
        srcs = ["greeter.proto"],
        deps = ["//common:types"],  # ipcrpc_cc_library targets greeter.proto imports from
    )

    cc_binary(name = "server", srcs = ["server.cc"], deps = [":greeter", ...])

server.cc includes "path/to/greeter.pb.h" (messages) and
"path/to/greeter.ipcrpc.pb.h" (services), workspace-relative, also when ipcrpc is
an external repository. Imports in .proto files are workspace-relative in the same
way ("common/types.proto", or "google/protobuf/empty.proto" for a well-known type).
srcs must belong to the target's own package.

How it works: the rule `_ipcrpc_generate` runs protoc once with --cpp_out and
protoc-gen-ipcrpc over srcs, with every .proto of deps (IpcrpcProtoInfo) as
inputs; a cc_library compiles the four files per .proto, and `_ipcrpc_library`
makes that one target that carries both the CcInfo and the IpcrpcProtoInfo, so
`deps` needs no label rewriting.
"""

IpcrpcProtoInfo = provider(
    doc = "The .proto files of an ipcrpc_cc_library and of everything it depends on.",
    fields = {"transitive_sources": "depset of .proto Files"},
)

def _import_root(f):
    """The directory protoc resolves f's import path against (execroot-relative)."""
    parts = [p for p in [f.root.path, f.owner.workspace_root] if p]
    return "/".join(parts) if parts else "."

def _import_path(f):
    """How .proto files import f, e.g. "common/types.proto"."""
    root = _import_root(f)
    return f.path if root == "." else f.path[len(root) + 1:]

def _include_flag(f):
    return "-I" + _import_root(f)

def ipcrpc_protoc(ctx, suffixes, out_flags, plugin_flag, mnemonic, progress_message):
    """Runs protoc with ctx.executable.plugin over ctx.files.srcs (shared by the C++ and Python rules).

    Declares one output per src and suffix (next to the src, in this package),
    puts every .proto of ctx.attr.deps (IpcrpcProtoInfo) and the well-known
    types on the import path, and passes each of `out_flags` (e.g. "--cpp_out")
    the output root. Returns (outputs, the depset of every .proto involved).
    """
    package_root = ctx.label.package + "/" if ctx.label.package else ""
    outputs = []
    for src in ctx.files.srcs:
        if src.owner.workspace_root != ctx.label.workspace_root or src.owner.package != ctx.label.package:
            fail("%s: srcs must be in this package, %s is not" % (ctx.label, src.owner))
        stem = _import_path(src)[len(package_root):-len(".proto")]
        for suffix in suffixes:
            outputs.append(ctx.actions.declare_file(stem + suffix))

    protos = depset(
        ctx.files.srcs,
        transitive = [dep[IpcrpcProtoInfo].transitive_sources for dep in ctx.attr.deps],
    )
    well_known = ctx.files._well_known_protos
    out_dir = "/".join([p for p in [ctx.bin_dir.path, ctx.label.workspace_root] if p])

    args = ctx.actions.args()
    args.add(ctx.executable.plugin, format = plugin_flag + "=%s")
    for flag in out_flags:
        args.add(out_dir, format = flag + "=%s")
    args.add_all(protos, map_each = _include_flag, uniquify = True)
    if well_known:
        wkt = well_known[0].path  # .../include/google/protobuf/any.proto
        args.add(wkt[:wkt.rfind("/google/protobuf/")], format = "-I%s")

    # Sources by import path: protoc then finds each through its -I root.
    args.add_all(ctx.files.srcs, map_each = _import_path)

    ctx.actions.run(
        executable = ctx.file._protoc,
        arguments = [args],
        inputs = depset(well_known, transitive = [protos]),
        tools = [ctx.executable.plugin],
        outputs = outputs,
        mnemonic = mnemonic,
        progress_message = progress_message,
    )
    return outputs, protos

def ipcrpc_protoc_attrs(plugin):
    """The attributes a rule using ipcrpc_protoc needs, with `plugin` as the default plugin."""
    return {
        "srcs": attr.label_list(allow_files = [".proto"], mandatory = True),
        "deps": attr.label_list(providers = [IpcrpcProtoInfo]),
        "plugin": attr.label(default = plugin, executable = True, cfg = "exec"),
        "_protoc": attr.label(
            default = Label("@ipcrpc_system//:protoc"),
            allow_single_file = True,
            cfg = "exec",
        ),
        "_well_known_protos": attr.label(
            default = Label("@ipcrpc_system//:well_known_protos"),
            allow_files = [".proto"],
        ),
    }

def _ipcrpc_generate_impl(ctx):
    outputs, protos = ipcrpc_protoc(
        ctx,
        suffixes = [".pb.h", ".pb.cc", ".ipcrpc.pb.h", ".ipcrpc.pb.cc"],
        out_flags = ["--cpp_out", "--ipcrpc_out"],
        plugin_flag = "--plugin=protoc-gen-ipcrpc",
        mnemonic = "IpcrpcProtoc",
        progress_message = "Generating C++ messages and ipcrpc services for %s" % ctx.label,
    )
    return [
        DefaultInfo(files = depset(outputs)),
        OutputGroupInfo(
            headers = depset([f for f in outputs if f.extension == "h"]),
            sources = depset([f for f in outputs if f.extension == "cc"]),
        ),
        IpcrpcProtoInfo(transitive_sources = protos),
    ]

_ipcrpc_generate = rule(
    implementation = _ipcrpc_generate_impl,
    doc = "Runs protoc with --cpp_out and protoc-gen-ipcrpc over srcs.",
    attrs = ipcrpc_protoc_attrs(Label("//codegen:protoc-gen-ipcrpc")),
)

def _ipcrpc_library_impl(ctx):
    cc = ctx.attr.cc[DefaultInfo]
    return [
        ctx.attr.cc[CcInfo],
        ctx.attr.generated[IpcrpcProtoInfo],
        DefaultInfo(
            files = depset(transitive = [cc.files, ctx.attr.generated[DefaultInfo].files]),
            runfiles = cc.default_runfiles,
        ),
    ]

_ipcrpc_library = rule(
    implementation = _ipcrpc_library_impl,
    doc = "One target with the CcInfo of `cc` and the IpcrpcProtoInfo of `generated`.",
    attrs = {
        "cc": attr.label(providers = [CcInfo], mandatory = True),
        "generated": attr.label(providers = [IpcrpcProtoInfo], mandatory = True),
    },
)

# Attributes every target of the macro shares; the rest of **kwargs goes to the cc_library.
_SHARED_ATTRS = ["compatible_with", "tags", "target_compatible_with", "testonly"]

def ipcrpc_cc_library(name, srcs, deps = [], visibility = None, **kwargs):
    """C++ messages (foo.pb.h) and ipcrpc services (foo.ipcrpc.pb.h) for srcs.

    Args:
      name: the target to depend on from C++ (and from other ipcrpc_cc_library deps).
      srcs: .proto files of this package.
      deps: ipcrpc_cc_library targets whose .proto files srcs import.
      visibility: of `name`; the helper targets are private.
      **kwargs: passed to the cc_library (copts, linkstatic, ...); testonly, tags,
        compatible_with and target_compatible_with go to every target.
    """
    shared = {key: kwargs.pop(key) for key in _SHARED_ATTRS if key in kwargs}
    private = ["//visibility:private"]
    generated = name + "_ipcrpc_generated"
    _ipcrpc_generate(name = generated, srcs = srcs, deps = deps, visibility = private, **shared)
    for group in ["headers", "sources"]:
        native.filegroup(
            name = "%s_%s" % (generated, group),
            srcs = [":" + generated],
            output_group = group,
            visibility = private,
            **shared
        )
    native.cc_library(
        name = name + "_ipcrpc_cc",
        srcs = [":%s_sources" % generated],
        hdrs = [":%s_headers" % generated],
        deps = deps + [Label("//runtime:core"), Label("@ipcrpc_system//:protobuf")],
        visibility = private,
        **dict(kwargs, **shared)
    )
    _ipcrpc_library(
        name = name,
        cc = ":" + name + "_ipcrpc_cc",
        generated = ":" + generated,
        visibility = visibility,
        **shared
    )
