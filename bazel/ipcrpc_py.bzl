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

load("//bazel:ipcrpc.bzl", "IpcrpcProtoInfo", "ipcrpc_protoc", "ipcrpc_protoc_attrs")

def _ipcrpc_py_generate_impl(ctx):
    outputs, protos = ipcrpc_protoc(
        ctx,
        suffixes = ["_pb2.py", "_ipcrpc.py", "_ipcrpc.pyi"],
        out_flags = ["--python_out", "--ipcrpc_python_out"],
        plugin_flag = "--plugin=protoc-gen-ipcrpc_python",
        mnemonic = "IpcrpcPyProtoc",
        progress_message = "Generating Python messages and ipcrpc stubs for %s" % ctx.label,
    )
    return [DefaultInfo(files = depset(outputs)), IpcrpcProtoInfo(transitive_sources = protos)]

ipcrpc_py_generate = rule(
    implementation = _ipcrpc_py_generate_impl,
    doc = "Runs protoc with --python_out and protoc-gen-ipcrpc_python over srcs.",
    attrs = ipcrpc_protoc_attrs(Label("//python:protoc-gen-ipcrpc_python")),
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
