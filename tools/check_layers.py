#!/usr/bin/env python3
"""Checks that ipcrpc's layers point only down (docs/DESIGN.md, "Layers").

    base  <-  transports  <-  wire  <-  runtime core, connect  <-  runtime:ipcrpc  <-  bridge

gRPC (grpcpp, Debian's gRPC C++) is a layer of its own that only bridge/ may
use: the core never links gRPC (docs/GRPC_BRIDGE.md).

Two checks, on the source tree given as the argument (default: this checkout):
  * includes: a file of a layer includes no header of a layer above it;
  * BUILD deps: a non-test rule of a layer names no target of a layer above it.
Tests, examples, bench/ and tools/ sit on top and may use anything. Bazel's
visibility already refuses most upward deps (base/ is visible to this
repository only; wire/ and connect/ only to the packages above them); this
check also covers runtime/, which must be public for generated code.

`check_layers.py --self-test` proves the check fails on an upward include and
an upward dep. Exit status 0: clean; 1: violations (each printed).
"""
import os
import re
import shutil
import sys
import tempfile

# What each layer may use besides itself, system headers, Abseil and protobuf.
# proto/ holds generated message headers and is usable by every layer.
ALLOWED = {
    "base": {"base"},
    "transports": {"base", "transports", "proto"},
    "wire": {"base", "transports", "wire", "proto"},
    "connect": {"base", "transports", "wire", "connect", "proto"},
    "runtime_core": {"base", "transports", "wire", "runtime_core", "proto"},
    "runtime": {"base", "transports", "wire", "connect", "runtime_core", "runtime", "proto"},
    "codegen": {"codegen"},
    "bridge": {"base", "transports", "wire", "connect", "runtime_core", "runtime", "proto",
               "bridge", "grpc"},
}
# Directories whose files and BUILD rules are checked.
CHECKED_DIRS = ("base", "transports", "wire", "connect", "runtime", "codegen", "bridge")
# gRPC's headers (<grpcpp/...>, <grpc/...>) and Bazel target.
GRPC_INCLUDE = re.compile(r'\s*#\s*include\s+[<"](grpcpp|grpc|grpc\+\+)/')
GRPC_LABELS = {"@ipcrpc_system//:grpcpp", "@system//:grpcpp"}
# runtime/ files that make up runtime:ipcrpc (the top: channels by address,
# ServerBuilder, config files); every other runtime/ file is the RPC core.
RUNTIME_TOP = {"runtime/ipcrpc.h", "runtime/ipcrpc.cc", "runtime/channel_schemes.h",
               "runtime/channel_schemes.cc", "runtime/config.h",
               "runtime/config.cc", "runtime/server.cc", "runtime/config_test.cc"}
RUNTIME_TOP_TARGETS = {"ipcrpc", "config_test"}


def layer_of_path(path):
    top = path.split("/", 1)[0]
    if top == "runtime":
        return "runtime" if path in RUNTIME_TOP else "runtime_core"
    return top if top in ALLOWED or top == "proto" else None


def layer_of_label(label):
    if label in GRPC_LABELS:
        return "grpc"
    m = re.match(r"//([^:]*)(?::(.*))?$", label)
    if not m:
        return None
    package = m.group(1)
    target = m.group(2) or package.rsplit("/", 1)[-1]
    top = package.split("/", 1)[0]
    if top == "runtime":
        return "runtime" if target in RUNTIME_TOP_TARGETS else "runtime_core"
    return top if top in ALLOWED or top == "proto" else top or None


def check_includes(root):
    problems = []
    for layer_dir in CHECKED_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, layer_dir)):
            for name in files:
                if not name.endswith((".h", ".cc")) or name.endswith("_test.cc"):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                layer = layer_of_path(path)
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    in_raw_string = False  # code generator templates: R"( ... )"
                    for number, line in enumerate(f, 1):
                        if in_raw_string:
                            in_raw_string = ')"' not in line
                            continue
                        if 'R"(' in line and ')"' not in line.split('R"(', 1)[1]:
                            in_raw_string = True
                            continue
                        if GRPC_INCLUDE.match(line) and "grpc" not in ALLOWED[layer]:
                            problems.append(f"{path}:{number}: {layer} includes gRPC ({line.strip()}); "
                                            "only bridge/ may")
                            continue
                        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                        if not m:
                            continue
                        used = layer_of_path(m.group(1))
                        if used is not None and used not in ALLOWED[layer]:
                            problems.append(f"{path}:{number}: {layer} includes {m.group(1)} ({used})")
    return problems


def check_build_deps(root):
    problems = []
    for layer_dir in CHECKED_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, layer_dir)):
            if "BUILD.bazel" not in files:
                continue
            build = os.path.join(dirpath, "BUILD.bazel")
            package = os.path.relpath(dirpath, root)
            text = open(build, encoding="utf-8").read()
            for rule in re.finditer(r"^(\w+)\(\n(.*?)^\)", text, re.S | re.M):
                kind, body = rule.group(1), rule.group(2)
                # visibility lists name who may use a target, not what it uses.
                body = re.sub(r"visibility = \[.*?\]", "", body, flags=re.S)
                if kind.endswith("_test") or "testonly = True" in body:
                    continue
                name = re.search(r'name = "([^"]+)"', body)
                target = name.group(1) if name else "?"
                layer = layer_of_label(f"//{package}:{target}")
                for label in re.findall(r'"((?://|@ipcrpc_system//|@system//)[^"]+)"', body):
                    if "visibility" in label or label.startswith("//visibility"):
                        continue
                    used = layer_of_label(label)
                    if (used in ALLOWED or used == "grpc") and used not in ALLOWED[layer]:
                        problems.append(f"{os.path.relpath(build, root)}: {target} ({layer}) depends on {label} ({used})")
    return problems


def run(root):
    return check_includes(root) + check_build_deps(root)


def self_test():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        for d in CHECKED_DIRS:
            shutil.copytree(os.path.join(here, d), os.path.join(tmp, d))
        clean = run(tmp)
        if clean:
            print("self-test: the tree itself is not clean:\n  " + "\n  ".join(clean))
            return 1
        with open(os.path.join(tmp, "transports/transport.h"), "a") as f:
            f.write('\n#include "runtime/channel.h"\n')
        with open(os.path.join(tmp, "runtime/channel.cc"), "a") as f:
            f.write('\n#include "connect/address.h"\n')
        with open(os.path.join(tmp, "wire/BUILD.bazel"), "a") as f:
            f.write('\ncc_library(\n    name = "upward",\n    deps = ["//runtime:core"],\n)\n')
        # gRPC in the core: an include and a dep.
        with open(os.path.join(tmp, "runtime/server_context.h"), "a") as f:
            f.write('\n#include <grpcpp/grpcpp.h>\n')
        with open(os.path.join(tmp, "runtime/BUILD.bazel"), "a") as f:
            f.write('\ncc_library(\n    name = "grpc_in_core",\n    deps = ["@ipcrpc_system//:grpcpp"],\n)\n')
        with open(os.path.join(tmp, "connect/BUILD.bazel"), "a") as f:
            f.write('\ncc_library(\n    name = "bridge_in_connect",\n    deps = ["//bridge:grpc_channel"],\n)\n')
        found = run(tmp)
        expected = ["transports/transport.h", "runtime/channel.cc", "wire/BUILD.bazel",
                    "runtime/server_context.h", "runtime/BUILD.bazel: grpc_in_core",
                    "connect/BUILD.bazel: bridge_in_connect"]
        missing = [e for e in expected if not any(p.startswith(e) for p in found)]
        if missing:
            print("self-test: upward uses not reported in " + ", ".join(missing))
            return 1
    print("self-test: upward includes and deps, and gRPC outside bridge/, are reported")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = run(root)
    for p in problems:
        print(p)
    if not problems:
        print("layers: every include and BUILD dep points down")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
