"""Thin wrappers over Bazel 4.2.3's native C++ rules.

Bazel's own @bazel_tools loads @rules_cc//cc:defs.bzl; upstream rules_cc cannot be
downloaded here and Debian's package is too new for Bazel 4.2.3, so this file
provides exactly the symbols that are loaded.
"""

def cc_library(**attrs):
    native.cc_library(**attrs)

def cc_binary(**attrs):
    native.cc_binary(**attrs)

def cc_test(**attrs):
    native.cc_test(**attrs)

def cc_import(**attrs):
    native.cc_import(**attrs)

def cc_proto_library(**attrs):
    native.cc_proto_library(**attrs)

def cc_toolchain(**attrs):
    native.cc_toolchain(**attrs)

def cc_toolchain_suite(**attrs):
    native.cc_toolchain_suite(**attrs)

def objc_library(**attrs):
    native.objc_library(**attrs)

def objc_import(**attrs):
    native.objc_import(**attrs)
