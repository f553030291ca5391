#include "runtime/byte_buffer.h"

#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/parse_context.h"

namespace ipcrpc {

std::string ByteBuffer::GetTypeName() const { return "ipcrpc.ByteBuffer"; }

ByteBuffer* ByteBuffer::New(google::protobuf::Arena* arena) const {
  return google::protobuf::Arena::Create<ByteBuffer>(arena);
}

void ByteBuffer::CheckTypeAndMergeFrom(const google::protobuf::MessageLite& other) {
  if (const auto* bytes = dynamic_cast<const ByteBuffer*>(&other)) {
    data_.append(bytes->data_);
  } else {
    other.AppendToString(&data_);  // a message merged in is its serialization appended
  }
}

const char* ByteBuffer::_InternalParse(const char* ptr,
                                       google::protobuf::internal::ParseContext* ctx) {
  // The whole input is this message: take everything up to the limit, which
  // for flat input is the end of the buffer.
  return ctx->AppendString(ptr, ctx->BytesUntilLimit(ptr), &data_);
}

uint8_t* ByteBuffer::_InternalSerialize(uint8_t* target,
                                        google::protobuf::io::EpsCopyOutputStream* stream) const {
  return stream->WriteRaw(data_.data(), static_cast<int>(data_.size()), target);
}

}  // namespace ipcrpc
