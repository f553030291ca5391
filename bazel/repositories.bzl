"""Repositories ipcrpc needs, for its own WORKSPACE and for any workspace that uses it.

Usage from another workspace (Bazel 4.2.3, offline):

    local_repository(name = "ipcrpc", path = "/path/to/ipcrpc")
    load("@ipcrpc//bazel:repositories.bzl", "ipcrpc_repositories")
    ipcrpc_repositories(ipcrpc_path = "/path/to/ipcrpc")

`ipcrpc_path` is the same path given to local_repository (absolute, or relative
to the calling workspace's root). Nothing is downloaded: rules_cc and
remote_coverage_tools come from ipcrpc's third_party/, rules_java from Debian's
bazel-rules-java, and protobuf, Abseil and GoogleTest from Debian's /usr.
"""

def ipcrpc_repositories(ipcrpc_path = "."):
    """Declares every repository ipcrpc's BUILD files and Bazel 4.2.3 itself need."""
    existing = native.existing_rules()
    if "rules_cc" not in existing:
        native.local_repository(
            name = "rules_cc",
            path = ipcrpc_path + "/third_party/rules_cc",
        )
    if "remote_coverage_tools" not in existing:
        native.local_repository(
            name = "remote_coverage_tools",
            path = ipcrpc_path + "/third_party/remote_coverage_tools",
        )
    if "rules_java" not in existing:
        native.local_repository(
            name = "rules_java",
            path = "/usr/share/bazel/rules/java",
        )
    if "ipcrpc_system" not in existing:
        native.new_local_repository(
            name = "ipcrpc_system",
            path = "/usr",
            build_file = "@ipcrpc//third_party/system:BUILD.system",
        )
