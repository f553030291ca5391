"""ipcrpc_py_library: Python messages and ipcrpc service stubs from .proto files.

    load("@ipcrpc//bazel:ipcrpc_py.bzl", "ipcrpc_py_library")

    ipcrpc_py_library(
        name = "greeter_py",
        srcs = ["greeter.proto"],
        deps = [],  # ipcrpc_py_library / ipcrpc_cc_library targets greeter.proto imports from
    )

generates greeter_pb2.py (protoc --python_out) and greeter_ipcrpc.py/.pyi
(protoc-gen-ipcrpc_python) and wraps them in a py_library that depends on
//python:ipcrpc. Python imports them by their path from the workspace root
(`from examples.greeter import greeter_pb2`), as protoc's own Python output
expects. srcs must be in the target's own package. The plugin runs on
Debian's /usr/bin/python3 (python3-protobuf 3.21, matching protoc 3.21.12).
"""

load("//bazel:ipcrpc.bzl", "IpcrpcProtoInfo")

def _import_root(f):
    parts = [p for p in [f.root.path, f.owner.workspace_root] if p]
    return "/".join(parts) if parts else "."

def _import_path(f):
    root = _import_root(f)
    return f.path if root == "." else f.path[len(root) + 1:]

def _include_flag(f):
    return "-I" + _import_root(f)

def _ipcrpc_py_generate_impl(ctx):
    package_root = ctx.label.package + "/" if ctx.label.package else ""
    outputs = []
    for src in ctx.files.srcs:
        if src.owner.workspace_root != ctx.label.workspace_root or src.owner.package != ctx.label.package:
            fail("%s: srcs must be in this package, %s is not" % (ctx.label, src.owner))
        stem = _import_path(src)[len(package_root):-len(".proto")]
        for suffix in ["_pb2.py", "_ipcrpc.py", "_ipcrpc.pyi"]:
            outputs.append(ctx.actions.declare_file(stem + suffix))
    protos = depset(
        ctx.files.srcs,
        transitive = [dep[IpcrpcProtoInfo].transitive_sources for dep in ctx.attr.deps],
    )
    well_known = ctx.files._well_known_protos
    out_dir = "/".join([p for p in [ctx.bin_dir.path, ctx.label.workspace_root] if p])

    args = ctx.actions.args()
    args.add(ctx.executable.plugin, format = "--plugin=protoc-gen-ipcrpc_python=%s")
    args.add(out_dir, format = "--python_out=%s")
    args.add(out_dir, format = "--ipcrpc_python_out=%s")
    args.add_all(protos, map_each = _include_flag, uniquify = True)
    if well_known:
        wkt = well_known[0].path
        args.add(wkt[:wkt.rfind("/google/protobuf/")], format = "-I%s")
    args.add_all(ctx.files.srcs, map_each = _import_path)
    ctx.actions.run(
        executable = ctx.file._protoc,
        arguments = [args],
        inputs = depset(well_known, transitive = [protos]),
        tools = [ctx.executable.plugin],
        outputs = outputs,
        mnemonic = "IpcrpcPyProtoc",
        progress_message = "Generating Python messages and ipcrpc stubs for %s" % ctx.label,
    )
    return [DefaultInfo(files = depset(outputs)), IpcrpcProtoInfo(transitive_sources = protos)]

ipcrpc_py_generate = rule(
    implementation = _ipcrpc_py_generate_impl,
    doc = "Runs protoc with --python_out and protoc-gen-ipcrpc_python over srcs.",
    attrs = {
        "srcs": attr.label_list(allow_files = [".proto"], mandatory = True),
        "deps": attr.label_list(providers = [IpcrpcProtoInfo]),
        "plugin": attr.label(
            default = Label("//python:protoc-gen-ipcrpc_python"),
            executable = True,
            cfg = "exec",
        ),
        "_protoc": attr.label(
            default = Label("@ipcrpc_system//:protoc"),
            allow_single_file = True,
            cfg = "exec",
        ),
        "_well_known_protos": attr.label(
            default = Label("@ipcrpc_system//:well_known_protos"),
            allow_files = [".proto"],
        ),
    },
)

def ipcrpc_py_library(name, srcs, deps = [], visibility = None, **kwargs):
    """Python messages (foo_pb2.py) and ipcrpc stubs (foo_ipcrpc.py) for srcs.

    Args:
      name: the py_library to depend on.
      srcs: .proto files of this package.
      deps: targets with IpcrpcProtoInfo (ipcrpc_py_library's `name + "_generated"`,
        or ipcrpc_cc_library) whose .proto files srcs import.
      visibility: of `name`.
      **kwargs: testonly, tags, ... for both targets.
    """
    ipcrpc_py_generate(
        name = name + "_generated",
        srcs = srcs,
        deps = deps,
        visibility = visibility,
        **kwargs
    )
    native.py_library(
        name = name,
        srcs = [":" + name + "_generated"],
        deps = [Label("//python:ipcrpc")],
        imports = [],
        visibility = visibility,
        **kwargs
    )
