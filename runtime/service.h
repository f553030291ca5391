// ipcrpc: the base class of every generated service.
//
// Generated code derives `<ServiceName>::Service` from ipcrpc::Service and,
// in its constructor, registers one handler per method; every method's
// default implementation returns UNIMPLEMENTED. Users derive from the
// generated class, override the methods they serve, and register an instance
// with a ServerBuilder.
//
// Thread-safety: handlers may run concurrently on several server threads, so
// the user's overrides must be thread-safe. Lifetime: a registered service
// must outlive the Server it is registered with.

#ifndef IPCRPC_RUNTIME_SERVICE_H_
#define IPCRPC_RUNTIME_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "runtime/codegen/method_handler.h"
#include "runtime/method.h"

namespace ipcrpc {

class Service {
 public:
  virtual ~Service() = default;
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Full service name, e.g. "demo.Greeter".
  absl::string_view name() const { return name_; }

  struct RegisteredMethod {
    MethodDescriptor descriptor;
    std::unique_ptr<internal::MethodHandler> handler;
  };
  const std::vector<RegisteredMethod>& methods() const { return methods_; }

 protected:
  explicit Service(absl::string_view name) : name_(name) {}

  // Called by generated constructors, once per method. `descriptor.name`
  // must outlive the service (generated code passes string literals);
  // ServerContext::method() refers to it.
  void AddMethod(const MethodDescriptor& descriptor,
                 std::unique_ptr<internal::MethodHandler> handler) {
    methods_.push_back({descriptor, std::move(handler)});
  }
  // Called by generated WithCallbackMethod_X constructors: method `index`
  // (in AddMethod order) is served by `handler` instead of its sync handler.
  void ReplaceMethodHandler(size_t index, std::unique_ptr<internal::MethodHandler> handler) {
    methods_[index].handler = std::move(handler);
  }

 private:
  std::string name_;
  std::vector<RegisteredMethod> methods_;
};

}  // namespace ipcrpc

#endif  // IPCRPC_RUNTIME_SERVICE_H_
