#include "runtime/generic_service.h"

#include <memory>

#include "runtime/codegen/method_handler.h"

namespace ipcrpc {

GenericService::GenericService()
    : method_{MethodDescriptor{"", RpcKind::kBidiStreaming},
              internal::MakeBidiStreamingHandler<ByteBuffer, ByteBuffer>(
                  [this](ServerContext* context, GenericServerReaderWriter* stream) {
                    return HandleCall(context, stream);
                  })} {}

}  // namespace ipcrpc
