"""ipcrpc_internal_proto: C++ for one of ipcrpc's own .proto files.

ipcrpc's own schemas (proto/ipcrpc/*.proto) import nothing but each other's
package-free names, so a genrule running Debian's protoc is enough; user
services use ipcrpc_cc_library (//bazel:ipcrpc.bzl) instead.
"""

def ipcrpc_internal_proto(name, src):
    """Generates and compiles `src` (e.g. "ipcrpc/wire.proto") as cc_library `name`."""
    stem = src[:-len(".proto")]
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = [stem + ".pb.h", stem + ".pb.cc"],
        cmd = ("src=$(location {src}); " +
               "protoc --proto_path=$${{src%/{src}}} --cpp_out=$(@D) $$src").format(src = src),
    )
    native.cc_library(
        name = name,
        srcs = [stem + ".pb.cc"],
        hdrs = [stem + ".pb.h"],
        # Include as "proto/ipcrpc/x.pb.h"; the generated .cc includes
        # "ipcrpc/x.pb.h", which this include path resolves.
        includes = ["."],
        copts = ["-Wno-error"],
        deps = ["@ipcrpc_system//:protobuf"],
    )
